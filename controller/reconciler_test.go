package controller

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

func testSet(replicas int32) *v1alpha1.PetSet {
	return &v1alpha1.PetSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db", UID: "uid-db", Generation: 1},
		Spec: v1alpha1.PetSetSpec{
			Replicas:    &replicas,
			ServiceName: "db",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1"}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}},
		},
	}
}

// The reconciler over a fake API: claims before pods, one pet at a time,
// names and labels, status, and scale-down from the top, keeping claims.
func TestReconcile(t *testing.T) {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	v1alpha1.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.PetSet{}).WithObjects(testSet(2)).Build()
	rec := events.NewFakeRecorder(100)
	r := &Reconciler{Client: c, Pets: NewPetControl(c, rec)}
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "ns", Name: "db"}
	reconcile := func() {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
	}
	podNames := func() []string {
		var list corev1.PodList
		c.List(ctx, &list)
		var out []string
		for _, p := range list.Items {
			out = append(out, p.Name)
		}
		slices.Sort(out)
		return out
	}
	markReady := func(name string) {
		t.Helper()
		var p corev1.Pod
		c.Get(ctx, types.NamespacedName{Namespace: "ns", Name: name}, &p)
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if err := c.Status().Update(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}

	reconcile()
	if got := podNames(); !slices.Equal(got, []string{"db-0"}) {
		t.Fatalf("pods %v, want only db-0 before it is ready", got)
	}
	var pod corev1.Pod
	c.Get(ctx, types.NamespacedName{Namespace: "ns", Name: "db-0"}, &pod)
	if pod.Spec.Hostname != "db-0" || pod.Spec.Subdomain != "db" || pod.Labels[LabelPodIndex] != "0" || pod.Labels["app"] != "db" {
		t.Errorf("db-0: hostname %q subdomain %q labels %v", pod.Spec.Hostname, pod.Spec.Subdomain, pod.Labels)
	}
	if ref := metav1.GetControllerOf(&pod); ref == nil || ref.UID != "uid-db" {
		t.Errorf("db-0 controller %v", ref)
	}
	var claim corev1.PersistentVolumeClaim
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ns", Name: "data-db-0"}, &claim); err != nil {
		t.Fatalf("claim data-db-0: %v", err)
	}
	if v := pod.Spec.Volumes; len(v) != 1 || v[0].PersistentVolumeClaim.ClaimName != "data-db-0" {
		t.Errorf("db-0 volumes %+v", v)
	}

	// The pass that made db-0 counts it in the status it writes, as the
	// StatefulSet controller does; the next pass, which sees db-0 in the
	// cache, then has nothing to write.
	var first v1alpha1.PetSet
	c.Get(ctx, key, &first)
	if st := first.Status; st.Replicas != 1 || st.ReadyReplicas != 0 || len(st.Members) != 1 || st.Members[0].Pod != "db-0" {
		t.Errorf("status after creating db-0: %+v", st)
	}
	reconcile() // still not ready: nothing new
	if got := podNames(); len(got) != 1 {
		t.Fatalf("pods %v after a second pass", got)
	}
	var second v1alpha1.PetSet
	c.Get(ctx, key, &second)
	if second.ResourceVersion != first.ResourceVersion {
		t.Errorf("second pass wrote status again:\nbefore %+v\nafter  %+v", first.Status, second.Status)
	}
	markReady("db-0")
	reconcile()
	if got := podNames(); !slices.Equal(got, []string{"db-0", "db-1"}) {
		t.Fatalf("pods %v, want db-0 and db-1", got)
	}
	markReady("db-1")
	reconcile()
	var ps v1alpha1.PetSet
	c.Get(ctx, key, &ps)
	if ps.Status.Replicas != 2 || ps.Status.ReadyReplicas != 2 || len(ps.Status.Members) != 2 || ps.Status.Members[1].Claims[0] != "data-db-1" {
		t.Errorf("status %+v", ps.Status)
	}
	if ps.Status.Selector != "app=db" || ps.Status.UpdateRevision == "" || ps.Status.CurrentRevision != ps.Status.UpdateRevision {
		t.Errorf("status selector %q revisions %q %q", ps.Status.Selector, ps.Status.CurrentRevision, ps.Status.UpdateRevision)
	}

	// Scale to zero: db-1 goes first, the claims stay.
	ps.Spec.Replicas = ptrTo(int32(0))
	if err := c.Update(ctx, &ps); err != nil {
		t.Fatal(err)
	}
	reconcile()
	if got := podNames(); !slices.Equal(got, []string{"db-0"}) {
		t.Fatalf("pods %v, want db-1 deleted first", got)
	}
	reconcile()
	if got := podNames(); len(got) != 0 {
		t.Fatalf("pods %v, want none", got)
	}
	var claims corev1.PersistentVolumeClaimList
	c.List(ctx, &claims, client.InNamespace("ns"))
	if len(claims.Items) != 2 {
		t.Fatalf("%d claims left, want both kept", len(claims.Items))
	}

	var seen []string
	for len(rec.Events) > 0 {
		seen = append(seen, <-rec.Events)
	}
	joined := strings.Join(seen, "\n")
	for _, want := range []string{"SuccessfulCreate pod db-0 with claim data-db-0", "SuccessfulDelete pod db-1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no event %q in:\n%s", want, joined)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// Every template gets a ControllerRevision; a rollback renumbers the old
// one; revisions no pet uses are pruned past revisionHistoryLimit.
func TestControllerRevisions(t *testing.T) {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	v1alpha1.AddToScheme(scheme)
	ps := testSet(0)
	ps.Spec.RevisionHistoryLimit = ptrTo(int32(0))
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.PetSet{}).WithObjects(ps).Build()
	r := &Reconciler{Client: c, Pets: NewPetControl(c, events.NewFakeRecorder(100))}
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "ns", Name: "db"}
	revisions := func() map[string]int64 {
		var list appsv1.ControllerRevisionList
		c.List(ctx, &list)
		out := map[string]int64{}
		for _, cr := range list.Items {
			out[cr.Name] = cr.Revision
		}
		return out
	}
	setImage := func(image string) string {
		t.Helper()
		var cur v1alpha1.PetSet
		c.Get(ctx, key, &cur)
		cur.Spec.Template.Spec.Containers[0].Image = image
		if err := c.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
		return Revision(&cur)
	}
	r1 := setImage("db:1")
	r2 := setImage("db:2")
	if got := revisions(); len(got) != 2 || got[r1] != 1 || got[r2] != 2 {
		t.Fatalf("revisions %v, want %s=1 and %s=2", got, r1, r2)
	}
	r3 := setImage("db:3")
	if got := revisions(); len(got) != 2 || got[r3] != 3 {
		t.Fatalf("revisions %v, want the one neither current nor updated pruned (limit 0)", got)
	}
	if back := setImage("db:2"); back != r2 || revisions()[r2] != 4 {
		t.Fatalf("rollback: revisions %v, want %s renumbered 4", revisions(), r2)
	}
}
