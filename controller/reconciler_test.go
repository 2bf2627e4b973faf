package controller

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

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

// StatefulSet's TestStatefulSetControllerRespectsTermination: Terminating pods
// are not replaced, deleted again or counted as current or updated while they
// exist, and under OrderedReady nothing above a Terminating pet moves.
func TestTerminatingPodsRespected(t *testing.T) {
	var objs []client.Object
	ps := testSet(3)
	ps.Spec.VolumeClaimTemplates = nil
	objs = append(objs, ps)
	rev := Revision(ps)
	for o := range 5 {
		p := NewPod(ps, o, rev)
		p.UID = types.UID("uid-" + p.Name)
		p.OwnerReferences = []metav1.OwnerReference{*setRef(ps.UID)}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		if o >= 3 {
			p.DeletionTimestamp, p.Finalizers = &metav1.Time{Time: time.Now()}, []string{"test/hold"}
		}
		objs = append(objs, p)
	}
	f, w := failingFixture(t, interceptor.Funcs{}, objs...)
	for range 2 {
		f.mustReconcile()
	}
	if w.n["create Pod"]+w.n["delete Pod"] != 0 {
		t.Errorf("writes %v with only Terminating pods to wait for", w.n)
	}
	st := f.set().Status
	if st.Replicas != 5 || st.UpdatedReplicas != 3 || st.CurrentReplicas != 3 {
		t.Errorf("replicas %d updated %d current %d, want 5 (all that exist), 3 and 3 (Terminating not counted)", st.Replicas, st.UpdatedReplicas, st.CurrentReplicas)
	}
	if c := meta.FindStatusCondition(st.Conditions, "Ready"); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "db-4") && !strings.Contains(c.Message, "4 to terminate") {
		t.Errorf("Ready %+v, want False waiting for 4 to terminate", c)
	}

	// db-3 and db-4 go; db-1 is deleted and held Terminating.
	release := func(name string) {
		t.Helper()
		p := f.pod(name)
		p.Finalizers = nil
		if err := f.c.Update(f.ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	release("db-3")
	release("db-4")
	db1 := f.pod("db-1")
	db1.Finalizers = []string{"test/hold"}
	if err := f.c.Update(f.ctx, db1); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Delete(f.ctx, f.pod("db-1")); err != nil {
		t.Fatal(err)
	}
	w.n = map[string]int{}
	for range 2 {
		f.mustReconcile()
	}
	if w.n["create Pod"]+w.n["delete Pod"] != 0 {
		t.Errorf("writes %v while wanted pet db-1 is Terminating", w.n)
	}
	if p := f.pod("db-1"); p == nil || p.UID != "uid-db-1" {
		t.Fatalf("db-1 replaced while Terminating: %v", p)
	}
	if st := f.set().Status; st.Replicas != 3 || st.UpdatedReplicas != 2 {
		t.Errorf("replicas %d updated %d, want 3 and 2", st.Replicas, st.UpdatedReplicas)
	}
	release("db-1")
	f.mustReconcile()
	if p := f.pod("db-1"); p == nil || p.UID == "uid-db-1" {
		t.Errorf("db-1 not made again once gone: %v", p)
	}
}

// A status write that meets a conflict is not dropped: Reconcile returns
// it, so the set is requeued, and the next pass writes the status. Every
// error of a pass is returned, not only the first.
func TestReconcileReturnsEveryError(t *testing.T) {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	v1alpha1.AddToScheme(scheme)
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	statusConflicts, podFailures := 1, 1
	boom := errors.New("boom")
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.PetSet{}).WithObjects(ps).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				if _, ok := obj.(*v1alpha1.PetSet); ok && statusConflicts > 0 {
					statusConflicts--
					return apierrors.NewConflict(schema.GroupResource{Group: "petset.dev", Resource: "petsets"}, obj.GetName(), errors.New("the object has been modified"))
				}
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if _, ok := obj.(*corev1.Pod); ok && podFailures > 0 {
					podFailures--
					return boom
				}
				return c.Create(ctx, obj, opts...)
			},
		}).Build()
	r := &Reconciler{Client: c, Pets: NewPetControl(c, events.NewFakeRecorder(100))}
	ctx := context.Background()
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ps)}

	_, err := r.Reconcile(ctx, req)
	if err == nil {
		t.Fatal("no error from a pass whose pod create and status write failed")
	}
	if !errors.Is(err, boom) {
		t.Errorf("error %v does not carry the pod create failure", err)
	}
	if !apierrors.IsConflict(err) {
		t.Errorf("error %v does not carry the status conflict", err)
	}
	var got v1alpha1.PetSet
	c.Get(ctx, req.NamespacedName, &got)
	if got.Status.UpdateRevision != "" {
		t.Fatalf("status written despite the conflict: %+v", got.Status)
	}

	// The requeued pass makes the pod and writes the status.
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	c.Get(ctx, req.NamespacedName, &got)
	if got.Status.UpdateRevision == "" || got.Status.ObservedGeneration != got.Generation {
		t.Errorf("status after the retry: %+v", got.Status)
	}
	var pod corev1.Pod
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "db-0"}, &pod); err != nil {
		t.Errorf("db-0 after the retry: %v", err)
	}
}

// A set being deleted is left to the garbage collector: no pod is deleted,
// nothing adopted, and the set's finalizers are left alone.
func TestDeletionLeftToGC(t *testing.T) {
	deleting := testSet(2)
	deleting.Finalizers = []string{"orphan"}
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	f := newFixture(t, deleting,
		testPod("db-0", "db:1", map[string]string{"app": "db"}, setRef("uid-db")),
		testPod("db-1", "db:1", map[string]string{"app": "db"}, nil))
	f.mustReconcile()
	if ps := f.set(); len(ps.Finalizers) != 1 || ps.Finalizers[0] != "orphan" {
		t.Errorf("finalizers %v, want only the garbage collector's orphan", ps.Finalizers)
	}
	if f.pod("db-0") == nil {
		t.Error("db-0 deleted by the controller")
	}
	if p := f.pod("db-1"); len(p.OwnerReferences) != 0 {
		t.Errorf("db-1 adopted by a set being deleted: %v", p.OwnerReferences)
	}
}

// A pass waits until the cache shows the pods it made or deleted: over a cache
// that shows a write only from its fourth read, two passes make one pod (not a
// second, answered AlreadyExists), and two passes of a scale-down delete once.
func TestPassWaitsForItsWritesInCache(t *testing.T) {
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	lag := map[string]int{} // reads of a pod that still show it as it was
	stale := map[string]*corev1.Pod{}
	f, w := failingFixture(t, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			err := c.Create(ctx, obj, opts...)
			if _, ok := obj.(*corev1.Pod); ok && err == nil {
				lag[obj.GetName()] = 3
			}
			return err
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if pod, ok := obj.(*corev1.Pod); ok {
				lag[pod.Name], stale[pod.Name] = 3, pod.DeepCopy()
			}
			return c.Delete(ctx, obj, opts...)
		},
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if pod, ok := obj.(*corev1.Pod); ok && lag[key.Name] > 0 {
				lag[key.Name]--
				if stale[key.Name] == nil {
					return apierrors.NewNotFound(corev1.Resource("pods"), key.Name)
				}
				stale[key.Name].DeepCopyInto(pod)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := c.List(ctx, list, opts...); err != nil {
				return err
			}
			if pods, ok := list.(*corev1.PodList); ok {
				pods.Items = slices.DeleteFunc(pods.Items, func(p corev1.Pod) bool {
					if lag[p.Name] > 0 {
						lag[p.Name]--
						return true
					}
					return false
				})
				for name, p := range stale {
					if lag[name] > 0 {
						lag[name]--
						pods.Items = append(pods.Items, *p)
					}
				}
			}
			return nil
		},
	}, ps)
	f.mustReconcile()
	f.mustReconcile()
	if n := w.n["create Pod"]; n != 1 || f.pod("db-0") == nil {
		t.Fatalf("%d pod creates over two passes, want 1", n)
	}

	f.markReady("db-0")
	cur := f.set()
	cur.Spec.Replicas = ptrTo(int32(0))
	if err := f.c.Update(f.ctx, cur); err != nil {
		t.Fatal(err)
	}
	f.mustReconcile()
	f.mustReconcile()
	if n := w.n["delete Pod"]; n != 1 {
		t.Errorf("%d pod deletes over two passes, want 1", n)
	}
}
