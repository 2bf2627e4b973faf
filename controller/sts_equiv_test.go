package controller

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// Unit equivalents of StatefulSet controller tests (stateful_set_test.go,
// stateful_set_control_test.go, stateful_pod_control_test.go), adapted to
// PetSet, over a fake client whose interceptors inject failures and count
// writes.

// writes counts the writes a fake client was asked for, by verb and kind.
type writes struct{ n map[string]int }

func (w *writes) add(verb string, obj client.Object) {
	w.n[verb+" "+typeName(obj)]++
}

// failingFixture is a fixture whose client runs funcs, counting creates
// and deletes in w.
func failingFixture(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) (*fixture, *writes) {
	t.Helper()
	w := &writes{n: map[string]int{}}
	create, del := funcs.Create, funcs.Delete
	funcs.Create = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		w.add("create", obj)
		if create != nil {
			return create(ctx, c, obj, opts...)
		}
		return c.Create(ctx, obj, opts...)
	}
	funcs.Delete = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
		w.add("delete", obj)
		if del != nil {
			return del(ctx, c, obj, opts...)
		}
		return c.Delete(ctx, obj, opts...)
	}
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithStatusSubresource(&v1alpha1.PetSet{}).
		WithObjects(objs...).WithInterceptorFuncs(funcs).Build()
	rec := events.NewFakeRecorder(100)
	return &fixture{t: t, c: c, rec: rec, ctx: context.Background(),
		r: &Reconciler{Client: c, APIReader: c, Recorder: rec, Pets: NewPetControl(c, rec)}}, w
}

// StatefulSet's TestStatefulPodControlCreatePodPVCError and
// TestStatefulPodControlCreatePodPvcGetFailure: a claim that cannot be
// read or made fails the pass, with a Warning event for a failed create,
// and no pod is made without its claims; once the API answers, the pet
// is made.
func TestClaimFailureMakesNoPod(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name  string
		funcs func(fail *bool) interceptor.Funcs
		event string
	}{
		{"claim create fails", func(fail *bool) interceptor.Funcs {
			return interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if _, ok := obj.(*corev1.PersistentVolumeClaim); ok && *fail {
					return boom
				}
				return c.Create(ctx, obj, opts...)
			}}
		}, "Warning FailedCreate claim data-db-0 for pod db-0: boom"},
		{"claim get fails", func(fail *bool) interceptor.Funcs {
			return interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.PersistentVolumeClaim); ok && *fail {
					return apierrors.NewInternalError(boom)
				}
				return c.Get(ctx, key, obj, opts...)
			}}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fail := true
			f, w := failingFixture(t, tc.funcs(&fail), testSet(1))
			err := f.reconcile()
			if err == nil || !strings.Contains(err.Error(), "boom") {
				t.Fatalf("reconcile error %v, want the claim failure", err)
			}
			if f.pod("db-0") != nil || w.n["create Pod"] != 0 {
				t.Fatalf("a pod was made without its claim (%d pod creates)", w.n["create Pod"])
			}
			if ev := f.events(); tc.event != "" && !strings.Contains(ev, tc.event) {
				t.Errorf("no event %q in:\n%s", tc.event, ev)
			}
			fail = false
			f.mustReconcile()
			if f.pod("db-0") == nil || f.claim("data-db-0") == nil {
				t.Errorf("db-0 and its claim not made once the API answers")
			}
		})
	}
}

// StatefulSet's TestStatefulSetControllerRespectsTermination: Terminating
// pods are neither replaced nor deleted again nor counted as current or
// updated while they exist. Condemned pets db-3 and db-4, Terminating,
// are waited for; a wanted pet db-1, Terminating, is not made again until
// it is gone, and nothing above it moves meanwhile under OrderedReady.
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

// StatefulSet's TestOverlappingStatefulSets: two sets whose selectors
// overlap (here, the same selector) keep their own pets; neither adopts,
// deletes nor releases the other's, and an orphan goes to the set whose
// pet's name it has. Set names that prefix each other ("db", "db-x")
// too: db-x-0 is not pet "x-0" of db.
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

// StatefulSet's TestStatefulSetHonorRevisionHistoryLimit, with revisions
// still in use by pets: old revisions past revisionHistoryLimit are
// deleted, oldest first, but never the current or update revision nor
// one a pet is at, whatever the limit.
func TestRevisionHistoryLimitKeepsRevisionsInUse(t *testing.T) {
	ps := testSet(3)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.UpdateStrategy.Type = v1alpha1.OnDeleteStrategy
	ps.Spec.RevisionHistoryLimit = ptrTo(int32(1))
	f := newRevFixture(t, ps)
	f.converge()
	r1 := f.set().Status.UpdateRevision
	// Under OnDelete each deleted pet comes back at the newest template:
	// db-2 at image 2, db-1 at image 3; db-0 stays at image 1 (current).
	f.setImage("db:2")
	f.converge()
	r2 := f.set().Status.UpdateRevision
	f.deletePod("db-2")
	f.converge()
	f.setImage("db:3")
	f.converge()
	r3 := f.set().Status.UpdateRevision
	f.deletePod("db-1")
	f.converge()
	// Two unused revisions in a row: image 4 and image 5 (update).
	f.setImage("db:4")
	f.converge()
	r4 := f.set().Status.UpdateRevision
	f.setImage("db:5")
	f.converge()
	r5 := f.set().Status.UpdateRevision
	f.setImage("db:6")
	f.converge()
	r6 := f.set().Status.UpdateRevision

	got := keys(f.revisions())
	slices.Sort(got)
	// r1 current (db-0), r2 (db-2) and r3 (db-1) in use, r6 the update
	// revision; of the unused r4 and r5 the limit keeps one, the newer.
	want := []string{r1, r2, r3, r5, r6}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("revisions %v, want %v (r4 %s pruned)", got, want, r4)
	}
	for name, rev := range map[string]string{"db-0": r1, "db-1": r3, "db-2": r2} {
		if p := f.pod(name); p == nil || p.Labels[LabelRevision] != rev {
			t.Errorf("%s at %v, want %s", name, p, rev)
		}
	}
	// Limit 0: every unused old revision goes, the ones in use stay.
	cur := f.set()
	cur.Spec.RevisionHistoryLimit = ptrTo(int32(0))
	if err := f.c.Update(f.ctx, cur); err != nil {
		t.Fatal(err)
	}
	f.converge()
	got = keys(f.revisions())
	slices.Sort(got)
	want = []string{r1, r2, r3, r6}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("limit 0: revisions %v, want %v", got, want)
	}
}

// Claim expansion through the reconciler: growing the claim template's
// storage request raises the request of each bound claim whose
// StorageClass allows expansion (ClaimsResized False, Resizing, until the
// volume grows), and touches no claim whose class forbids it (False,
// ExpansionNotAllowed, naming it) or that has no class.
func TestReconcileExpandsClaims(t *testing.T) {
	for _, tc := range []struct {
		name    string
		class   *storagev1.StorageClass
		grown   bool
		reason  string
		message string
	}{
		{"expandable class", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: "x", AllowVolumeExpansion: ptrTo(true)},
			true, "Resizing", "waiting for the volumes of data-db-0 to grow"},
		{"class forbids expansion", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: "x", AllowVolumeExpansion: ptrTo(false)},
			false, "ExpansionNotAllowed", "the StorageClass of data-db-0 does not allow volume expansion"},
		{"class unset on the class", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: "x"},
			false, "ExpansionNotAllowed", "the StorageClass of data-db-0 does not allow volume expansion"},
		{"no such class", nil, false, "ExpansionNotAllowed", "the StorageClass of data-db-0 does not allow volume expansion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := testSet(1)
			ps.Spec.VolumeClaimTemplates[0].Spec.StorageClassName = ptrTo("sc")
			ps.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
			objs := []client.Object{ps}
			if tc.class != nil {
				objs = append(objs, tc.class)
			}
			f, _ := failingFixture(t, interceptor.Funcs{}, objs...)
			f.mustReconcile()
			claim := f.claim("data-db-0")
			claim.Status.Phase = corev1.ClaimBound
			claim.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
			if err := f.c.Status().Update(f.ctx, claim); err != nil {
				t.Fatal(err)
			}
			f.markReady("db-0")
			f.mustReconcile()
			if c := meta.FindStatusCondition(f.set().Status.Conditions, ConditionClaimsResized); c == nil || c.Status != metav1.ConditionTrue {
				t.Fatalf("ClaimsResized %+v before the change, want True", c)
			}

			cur := f.set()
			cur.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
			if err := f.c.Update(f.ctx, cur); err != nil {
				t.Fatal(err)
			}
			f.mustReconcile()
			req := f.claim("data-db-0").Spec.Resources.Requests[corev1.ResourceStorage]
			if grown := req.Cmp(resource.MustParse("2Gi")) == 0; grown != tc.grown {
				t.Errorf("claim request %s, want grown %v", req.String(), tc.grown)
			}
			if !tc.grown && req.Cmp(resource.MustParse("1Gi")) != 0 {
				t.Errorf("claim request %s changed, want 1Gi", req.String())
			}
			c := meta.FindStatusCondition(f.set().Status.Conditions, ConditionClaimsResized)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tc.reason || c.Message != tc.message {
				t.Errorf("ClaimsResized %+v, want False %s %q", c, tc.reason, tc.message)
			}
			if tc.grown {
				// The volume grows: the condition turns True.
				claim := f.claim("data-db-0")
				claim.Status.Capacity[corev1.ResourceStorage] = resource.MustParse("2Gi")
				if err := f.c.Status().Update(f.ctx, claim); err != nil {
					t.Fatal(err)
				}
				f.mustReconcile()
				if c := meta.FindStatusCondition(f.set().Status.Conditions, ConditionClaimsResized); c == nil || c.Status != metav1.ConditionTrue {
					t.Errorf("ClaimsResized %+v after the volume grew, want True", c)
				}
				if ev := f.events(); !strings.Contains(ev, "Normal SuccessfulUpdate claim data-db-0 from 1Gi to 2Gi") {
					t.Errorf("no expansion event in:\n%s", ev)
				}
			}
		})
	}
}

func reconcileRequest(key client.ObjectKey) ctrl.Request { return ctrl.Request{NamespacedName: key} }
