package controller

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// ControllerRefManager's rules for pets: matching orphans named like pets are
// adopted and labelled, owned pods that stop matching released; pods being
// deleted, named otherwise or of others are left alone.
func TestAdoptAndRelease(t *testing.T) {
	app := map[string]string{"app": "db"}
	gone := testPod("db-1", "db:1", app, nil)
	gone.DeletionTimestamp, gone.Finalizers = &metav1.Time{Time: time.Now()}, []string{"test/hold"}
	foreign := testPod("db-4", "db:1", app, &metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "uid-x", Controller: ptrTo(true)})
	f := newFixture(t, testSet(3),
		stsPod(), // orphan, a StatefulSet's pet of the same spec
		gone,     // orphan being deleted
		testPod("db-2", "db:1", map[string]string{"app": "other", LabelSetName: "db"}, setRef("uid-db")), // ours (so labelled as a pet), no longer matching
		testPod("db-3", "db:0", app, nil), // orphan, other image
		foreign,                           // another controller's
		testPod("db-x", "db:1", app, nil), // not a pet's name
		testPod("web-0", "db:1", map[string]string{"app": "web"}, nil), // not ours at all
	)
	if err := f.reconcile(); err != nil {
		t.Logf("reconcile: %v", err) // the plan may fail on the fake; ownership is what is checked
	}
	rev := Revision(testSet(3))
	db0 := f.pod("db-0")
	if controllerUID(db0) != "uid-db" || db0.UID != "uid-db-0" {
		t.Errorf("db-0 not adopted in place: uid %s controller %v", db0.UID, metav1.GetControllerOf(db0))
	}
	if db0.Labels[LabelRevision] != rev || db0.Labels[LabelPodIndex] != "0" || db0.Labels[LabelSetName] != "db" || db0.Labels[LabelPodName] != "db-0" || db0.Labels["app"] != "db" {
		t.Errorf("db-0 labels %v, want pet labels at revision %s", db0.Labels, rev)
	}
	if ref := metav1.GetControllerOf(db0); ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion || ref.Kind != "PetSet" || ref.APIVersion != "petset.dev/v1alpha1" {
		t.Errorf("db-0 controller ref %+v", ref)
	}
	if p := f.pod("db-1"); len(p.OwnerReferences) != 0 {
		t.Errorf("db-1, being deleted, was adopted: %v", p.OwnerReferences)
	}
	if p := f.pod("db-2"); controllerUID(p) != "" {
		t.Errorf("db-2 no longer matches and was not released: %v", p.OwnerReferences)
	}
	db3 := f.pod("db-3")
	if controllerUID(db3) != "uid-db" {
		t.Errorf("db-3 not adopted: %v", db3.OwnerReferences)
	}
	if _, ok := db3.Labels[LabelRevision]; ok {
		t.Errorf("db-3 runs other containers and got revision label %q", db3.Labels[LabelRevision])
	}
	if p := f.pod("db-4"); controllerUID(p) != "uid-x" || len(p.OwnerReferences) != 1 {
		t.Errorf("db-4 of another controller touched: %v", p.OwnerReferences)
	}
	for _, name := range []string{"db-x", "web-0"} {
		if p := f.pod(name); len(p.OwnerReferences) != 0 {
			t.Errorf("%s adopted: %v", name, p.OwnerReferences)
		}
	}
	ev := f.events()
	for _, want := range []string{"Normal SuccessfulAdopt pod db-0", "Normal SuccessfulAdopt pod db-3", "Normal SuccessfulRelease pod db-2", "Normal WaitForPod orphan pod db-1 is being deleted"} {
		if !strings.Contains(ev, want) {
			t.Errorf("no event %q in:\n%s", want, ev)
		}
	}
}

// Adoption reads the set afresh first: a set replaced by another of the
// same name, or being deleted, adopts nothing, and the reconcile fails.
func TestAdoptRechecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fresh func(*v1alpha1.PetSet)
		want  string
	}{
		{"replaced", func(ps *v1alpha1.PetSet) { ps.UID = "uid-new" }, "is gone"},
		{"deleting", func(ps *v1alpha1.PetSet) {
			ps.DeletionTimestamp, ps.Finalizers = &metav1.Time{Time: time.Now()}, []string{"test/hold"}
		}, "being deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, testSet(1), testPod("db-0", "db:1", map[string]string{"app": "db"}, nil))
			fresh := testSet(1)
			tc.fresh(fresh)
			f.r.APIReader = freshSet{Reader: f.c, set: fresh}
			err := f.reconcile()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("reconcile error %v, want one saying %q", err, tc.want)
			}
			if p := f.pod("db-0"); len(p.OwnerReferences) != 0 {
				t.Errorf("db-0 adopted: %v", p.OwnerReferences)
			}
		})
	}
}

// A pod with a pet's name that another controller owns, or that does not match
// the selector, holds the pet back (Warning event, PetsOwned False, no create);
// once it goes, the pet is made.
func TestPodConflict(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"foreign controller", testPod("db-0", "db:1", map[string]string{"app": "db"},
			&metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "uid-x", Controller: ptrTo(true)}),
			"pod db-0 is controlled by ConfigMap x"},
		{"selector mismatch", testPod("db-0", "db:1", map[string]string{"app": "web"}, nil),
			"pod db-0 exists and does not match the selector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, testSet(1), tc.pod)
			if _, ok := tc.pod.Labels["app"]; ok && tc.pod.Labels["app"] != "db" {
				// Outside the cache and not matching the selector, so
				// not listed: the create finds it (outside_test.go).
				if err := f.reconcile(); !apierrors.IsAlreadyExists(err) {
					t.Fatalf("first pass: %v, want AlreadyExists", err)
				}
			}
			f.mustReconcile()
			if p := f.pod("db-0"); p.UID != tc.pod.UID || controllerUID(p) == "uid-db" {
				t.Fatalf("db-0 taken over: %+v", p.ObjectMeta)
			}
			if ev := f.events(); !strings.Contains(ev, "Warning PodConflict "+tc.want) {
				t.Errorf("no PodConflict event %q in:\n%s", tc.want, ev)
			}
			st := f.set().Status
			c := meta.FindStatusCondition(st.Conditions, ConditionPetsOwned)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "PodConflict" || !strings.Contains(c.Message, tc.want) {
				t.Errorf("PetsOwned condition %+v", c)
			}
			if r := meta.FindStatusCondition(st.Conditions, "Ready"); r == nil || !strings.Contains(r.Message, tc.want) {
				t.Errorf("Ready condition %+v, want its message to say why", r)
			}
			// Once said, not said again on every pass.
			f.mustReconcile()
			if ev := f.events(); strings.Contains(ev, "PodConflict") {
				t.Errorf("PodConflict event again on an unchanged conflict:\n%s", ev)
			}

			if err := f.c.Delete(f.ctx, tc.pod); err != nil {
				t.Fatal(err)
			}
			f.mustReconcile()
			if p := f.pod("db-0"); p == nil || controllerUID(p) != "uid-db" {
				t.Fatalf("db-0 not made once the other pod went: %+v", p)
			}
			c = meta.FindStatusCondition(f.set().Status.Conditions, ConditionPetsOwned)
			if c == nil || c.Status != metav1.ConditionTrue {
				t.Errorf("PetsOwned condition %+v after the conflict cleared", c)
			}
		})
	}
}

// An orphan pod brings back the sets whose selector matches it or whose
// pets' names it takes; an owned pod brings back its set only.
func TestPodSets(t *testing.T) {
	web := testSet(1)
	web.Name, web.UID = "web", "uid-web"
	web.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	f := newFixture(t, testSet(1), web)
	names := func(o client.Object) string {
		var out []string
		for _, r := range f.r.podSets(f.ctx, o) {
			out = append(out, r.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{testPod("x", "i", map[string]string{"app": "db"}, nil), "db"},
		{testPod("web-3", "i", map[string]string{"app": "db"}, nil), "db,web"},
		{testPod("web-3", "i", nil, &metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "u", Controller: ptrTo(true)}), "web"},
		{testPod("x", "i", map[string]string{"app": "web"}, setRef("uid-db")), "db"},
		{testPod("y", "i", map[string]string{"app": "none"}, nil), ""},
	} {
		if got := names(tc.pod); got != tc.want {
			t.Errorf("pod %s %v: sets %q, want %q", tc.pod.Name, tc.pod.Labels, got, tc.want)
		}
	}
}

// StatefulSet's TestOverlappingStatefulSets: sets with the same selector, and
// names that prefix each other ("db", "db-x"), keep their own pets; an orphan
// goes to the set whose pet's name it has.
func TestOverlappingSets(t *testing.T) {
	a := testSet(2)
	a.Spec.VolumeClaimTemplates = nil
	b := testSet(2)
	b.Name, b.UID = "db-x", "uid-db-x"
	b.Spec.VolumeClaimTemplates = nil
	orphan := NewPod(b, 1, Revision(b))
	orphan.UID = "uid-orphan"
	orphan.Labels = map[string]string{"app": "db"}
	f, _ := failingFixture(t, interceptor.Funcs{}, a, b, orphan)
	bKey := client.ObjectKeyFromObject(b)
	reconcileB := func() {
		t.Helper()
		if _, err := f.r.Reconcile(f.ctx, reconcileRequest(bKey)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		f.mustReconcile()
		reconcileB()
		var list corev1.PodList
		f.c.List(f.ctx, &list)
		for _, p := range list.Items {
			if !PodReady(&p) {
				f.markReady(p.Name)
			}
		}
	}
	var list corev1.PodList
	f.c.List(f.ctx, &list)
	owners := map[string]types.UID{}
	for i := range list.Items {
		owners[list.Items[i].Name] = controllerUID(&list.Items[i])
	}
	want := map[string]types.UID{"db-0": "uid-db", "db-1": "uid-db", "db-x-0": "uid-db-x", "db-x-1": "uid-db-x"}
	if len(owners) != len(want) {
		t.Errorf("pods %v, want %v", owners, want)
	}
	for name, uid := range want {
		if owners[name] != uid {
			t.Errorf("%s controlled by %q, want %q (all: %v)", name, owners[name], uid, owners)
		}
	}
	if p := f.pod("db-x-1"); p == nil || p.UID != "uid-orphan" {
		t.Errorf("the orphan db-x-1 was replaced rather than adopted by db-x: %v", p != nil)
	}
	for _, key := range []client.ObjectKey{setKey, bKey} {
		var ps v1alpha1.PetSet
		f.c.Get(f.ctx, key, &ps)
		if ps.Status.Replicas != 2 || len(ps.Status.Members) != 2 {
			t.Errorf("%s status replicas %d members %v, want its own 2", key.Name, ps.Status.Replicas, ps.Status.Members)
		}
		if c := meta.FindStatusCondition(ps.Status.Conditions, ConditionPetsOwned); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("%s PetsOwned %+v, want True: the other's pods hold none of its names", key.Name, c)
		}
	}
	// Scaling one down touches only its own.
	a = f.set()
	a.Spec.Replicas = ptrTo(int32(0))
	if err := f.c.Update(f.ctx, a); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.mustReconcile()
	}
	if f.pod("db-0") != nil || f.pod("db-1") != nil || f.pod("db-x-0") == nil || f.pod("db-x-1") == nil {
		t.Errorf("after scaling db to 0: db-0 %v db-1 %v db-x-0 %v db-x-1 %v", f.pod("db-0") != nil, f.pod("db-1") != nil, f.pod("db-x-0") != nil, f.pod("db-x-1") != nil)
	}
}
