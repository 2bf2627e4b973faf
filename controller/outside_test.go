package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// labelCache is the manager's cache as CacheOptions makes it: reads of pods,
// claims and revisions see only those labelled LabelSetName; writes go through.
// The fixtures give it to the reconciler as Client, the fake as APIReader.
type labelCache struct{ client.Client }

func labelSelected(obj runtime.Object) bool {
	switch obj.(type) {
	case *corev1.Pod, *corev1.PersistentVolumeClaim, *appsv1.ControllerRevision,
		*corev1.PodList, *corev1.PersistentVolumeClaimList, *appsv1.ControllerRevisionList:
		return true
	}
	return false
}

func (c labelCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := c.Client.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	if _, ok := obj.GetLabels()[LabelSetName]; labelSelected(obj) && !ok {
		gvk, _ := c.Client.GroupVersionKindFor(obj)
		return apierrors.NewNotFound(schema.GroupResource{Group: gvk.Group, Resource: strings.ToLower(gvk.Kind) + "s"}, key.Name)
	}
	return nil
}

func (c labelCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := c.Client.List(ctx, list, opts...); err != nil || !labelSelected(list) {
		return err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	var kept []runtime.Object
	for _, o := range items {
		if _, ok := o.(metav1.Object).GetLabels()[LabelSetName]; ok {
			kept = append(kept, o)
		}
	}
	return meta.SetList(list, kept)
}

// countingReader counts the reads that bypass the cache.
type countingReader struct {
	client.Reader
	gets, lists int
	classGets   int // gets of StorageClasses
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	if _, ok := obj.(*storagev1.StorageClass); ok {
		c.classGets++
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// freshSet is an API reader whose PetSet is set (as a fresh read would
// find it) and whose other objects are the underlying reader's.
type freshSet struct {
	client.Reader
	set *v1alpha1.PetSet
}

func (r freshSet) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if ps, ok := obj.(*v1alpha1.PetSet); ok {
		r.set.DeepCopyInto(ps)
		return nil
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.lists++
	return c.Reader.List(ctx, list, opts...)
}

func (f *fixture) reconcileResult() ctrl.Result {
	f.t.Helper()
	res, err := f.r.Reconcile(f.ctx, ctrl.Request{NamespacedName: setKey})
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// A StatefulSet's orphans, outside the cache, are found by the set's first
// uncached list and adopted in place and labelled; the set makes only the
// missing pet, with no AlreadyExists on the way.
func TestAdoptOutsideCache(t *testing.T) {
	app := map[string]string{"app": "db"}
	ps := testSet(3)
	ps.Spec.VolumeClaimTemplates = nil
	f := newFixture(t, ps, testPod("db-0", "db:1", app, nil), testPod("db-1", "db:1", app, nil))
	cached := &corev1.PodList{}
	if err := f.r.List(f.ctx, cached); err != nil || len(cached.Items) != 0 {
		t.Fatalf("the cache holds %d pods before adoption, want 0 (%v)", len(cached.Items), err)
	}
	f.mustReconcile()
	for _, name := range []string{"db-0", "db-1"} {
		p := f.pod(name)
		if p.UID != types.UID("uid-"+name) || controllerUID(p) != "uid-db" || p.Labels[LabelSetName] != "db" {
			t.Errorf("%s not adopted in place and labelled: uid %s controller %s labels %v", name, p.UID, controllerUID(p), p.Labels)
		}
	}
	if p := f.pod("db-2"); p == nil || controllerUID(p) != "uid-db" {
		t.Fatalf("db-2 not made: %+v", p)
	}
	if err := f.r.List(f.ctx, cached); err != nil || len(cached.Items) != 3 {
		t.Errorf("the cache holds %d pods after adoption, want 3 (%v)", len(cached.Items), err)
	}
	if ev := f.events(); !strings.Contains(ev, "SuccessfulAdopt pod db-0") || !strings.Contains(ev, "SuccessfulAdopt pod db-1") {
		t.Errorf("adoption events missing:\n%s", ev)
	}
	// The adopted pods are in the cache now: nothing is left to read
	// outside it, and the set is not requeued for that.
	f.markReady("db-2")
	if res := f.reconcileResult(); res.RequeueAfter != 0 {
		t.Errorf("requeued after %v with every pet in the cache", res.RequeueAfter)
	}
}

// The uncached list is made once per generation of the set, not on every
// pass: a pass that changes nothing reads only the cache.
func TestUncachedListOncePerGeneration(t *testing.T) {
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	f := newFixture(t, ps)
	reads := &countingReader{Reader: f.c}
	f.r.APIReader = reads
	f.mustReconcile()
	f.markReady("db-0")
	f.mustReconcile()
	f.mustReconcile()
	if reads.lists != 1 || reads.gets != 0 {
		t.Errorf("3 passes of one generation: %d uncached lists and %d gets, want 1 and 0", reads.lists, reads.gets)
	}
	cur := f.set()
	cur.Spec.Replicas = ptrTo(int32(2))
	cur.Generation = 2
	if err := f.c.Update(f.ctx, cur); err != nil {
		t.Fatal(err)
	}
	f.mustReconcile()
	if reads.lists != 2 {
		t.Errorf("a new generation: %d uncached lists, want 2", reads.lists)
	}
	// A new process (a restart, a new leader) lists again.
	f.r = &Reconciler{Client: f.r.Client, APIReader: reads, Recorder: f.r.Recorder, Pets: f.r.Pets}
	f.mustReconcile()
	if reads.lists != 3 {
		t.Errorf("a new reconciler: %d uncached lists, want 3", reads.lists)
	}
}

// A foreign pod outside the cache with a pet's name is found (by the list, or
// by a read after AlreadyExists), holds the pet back, and is read again on a
// timer, as no watch says when it goes; once gone, the pet is made.
func TestConflictOutsideCache(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pod           *corev1.Pod
		want          string
		alreadyExists bool // the selector list does not find it
	}{
		{"foreign controller", testPod("db-0", "db:1", map[string]string{"app": "db"},
			&metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "uid-x", Controller: ptrTo(true)}),
			"pod db-0 is controlled by ConfigMap x", false},
		{"selector mismatch", testPod("db-0", "db:1", map[string]string{"app": "web"}, nil),
			"pod db-0 exists and does not match the selector", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := testSet(1)
			ps.Spec.VolumeClaimTemplates = nil
			f := newFixture(t, ps, tc.pod)
			f.r.RecheckAfter = 7 * time.Second
			if tc.alreadyExists {
				err := f.reconcile()
				if !apierrors.IsAlreadyExists(err) {
					t.Fatalf("first pass: %v, want AlreadyExists", err)
				}
			}
			res := f.reconcileResult()
			if res.RequeueAfter != 7*time.Second {
				t.Errorf("requeue after %v while held back by a pod outside the cache, want 7s", res.RequeueAfter)
			}
			if ev := f.events(); !strings.Contains(ev, "Warning PodConflict "+tc.want) {
				t.Errorf("no PodConflict event %q in:\n%s", tc.want, ev)
			}
			c := meta.FindStatusCondition(f.set().Status.Conditions, ConditionPetsOwned)
			if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, tc.want) {
				t.Errorf("PetsOwned condition %+v", c)
			}
			if p := f.pod("db-0"); p.UID != tc.pod.UID || len(p.OwnerReferences) != len(tc.pod.OwnerReferences) || p.Labels[LabelSetName] != "" {
				t.Fatalf("db-0 touched: %+v", p.ObjectMeta)
			}
			// Still there: the same answer, no new event.
			if res := f.reconcileResult(); res.RequeueAfter != 7*time.Second {
				t.Errorf("second pass requeue after %v", res.RequeueAfter)
			}
			if ev := f.events(); strings.Contains(ev, "PodConflict") {
				t.Errorf("PodConflict event again:\n%s", ev)
			}
			if err := f.c.Delete(f.ctx, tc.pod); err != nil {
				t.Fatal(err)
			}
			f.mustReconcile()
			if p := f.pod("db-0"); p == nil || controllerUID(p) != "uid-db" {
				t.Fatalf("db-0 not made once the other pod went: %+v", p)
			}
			f.markReady("db-0")
			if res := f.reconcileResult(); res.RequeueAfter != 0 {
				t.Errorf("requeued after %v once the conflict cleared", res.RequeueAfter)
			}
			c = meta.FindStatusCondition(f.set().Status.Conditions, ConditionPetsOwned)
			if c == nil || c.Status != metav1.ConditionTrue {
				t.Errorf("PetsOwned condition %+v after the conflict cleared", c)
			}
		})
	}
}

// A pet whose set label someone removed leaves the cache; its name then
// fails to create with AlreadyExists, the next pass reads it, finds it
// the set's own and labels it back: the same pod, not replaced.
func TestPetLabelledBack(t *testing.T) {
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	f := newFixture(t, ps)
	f.mustReconcile()
	f.markReady("db-0")
	f.mustReconcile()
	p := f.pod("db-0")
	uid := p.UID
	delete(p.Labels, LabelSetName)
	if err := f.c.Update(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := f.reconcile(); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("pass with the pet outside the cache: %v, want AlreadyExists", err)
	}
	f.mustReconcile()
	p = f.pod("db-0")
	if p.UID != uid || p.Labels[LabelSetName] != "db" || controllerUID(p) != "uid-db" {
		t.Errorf("db-0 uid %s (was %s) labels %v", p.UID, uid, p.Labels)
	}
	if st := f.set().Status; st.Replicas != 1 || st.ReadyReplicas != 1 {
		t.Errorf("status %+v", st)
	}
}

// A claim outside the cache (a StatefulSet's, without petset's labels) is
// still seen: one being deleted holds its pet back, as in the cache.
func TestUnlabelledClaimBeingDeleted(t *testing.T) {
	old := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-db-0", UID: "uid-old-claim",
		Labels: map[string]string{"app": "db"}, DeletionTimestamp: &metav1.Time{Time: time.Now()}, Finalizers: []string{"kubernetes.io/pvc-protection"}}}
	f := newFixture(t, testSet(1), old)
	f.mustReconcile()
	if f.pod("db-0") != nil {
		t.Fatal("db-0 made on a claim on its way out")
	}
	if ev := f.events(); !strings.Contains(ev, "WaitForClaim claim data-db-0 is being deleted") {
		t.Errorf("no WaitForClaim event:\n%s", ev)
	}
}

// StorageClasses are read from the API server, not the cache, and only
// when a claim must grow.
func TestStorageClassReadUncached(t *testing.T) {
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
	f := newFixture(t, ps)
	reads := &countingReader{Reader: f.c}
	f.r.APIReader = reads
	f.mustReconcile()
	f.markReady("db-0")
	f.mustReconcile()
	if reads.classGets != 0 {
		t.Errorf("%d StorageClass reads with no claim to grow, want 0", reads.classGets)
	}
	cur := f.set()
	cur.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
	if err := f.c.Update(f.ctx, cur); err != nil {
		t.Fatal(err)
	}
	cl := f.claim("data-db-0")
	cl.Spec.StorageClassName = ptrTo("fast")
	if err := f.c.Update(f.ctx, cl); err != nil {
		t.Fatal(err)
	}
	f.mustReconcile()
	f.mustReconcile()
	if reads.classGets != 2 {
		t.Errorf("%d StorageClass reads in two passes deciding one expansion, want 2 (one a pass)", reads.classGets)
	}
}

// newLabelCacheReconciler is what newFixture builds: the reconciler reads
// through labelCache, and bypasses it through the fake itself.
func newLabelCacheReconciler(c client.Client, rec events.EventRecorder) *Reconciler {
	cached := labelCache{c}
	return &Reconciler{Client: cached, APIReader: c, Recorder: rec, Pets: NewPetControl(cached, rec)}
}

// A revision name held by a revision outside the cache (someone else's,
// without the set label) is a collision like any other: the name is read
// from the API server when the create says it exists.
func TestRevisionCollisionOutsideCache(t *testing.T) {
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	name := Revision(ps)
	squatter := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Data:       runtime.RawExtension{Raw: []byte(`{"other":true}`)},
		Revision:   1,
	}
	f := newRevFixture(t, ps, squatter)
	f.converge()
	st := f.set().Status
	if st.CollisionCount == nil || *st.CollisionCount != 1 || st.UpdateRevision == name {
		t.Fatalf("update revision %q collisionCount %v; want another name than %q and count 1", st.UpdateRevision, st.CollisionCount, name)
	}
	if cr := f.revisions()[name]; len(cr.OwnerReferences) != 0 || len(cr.Labels) != 0 {
		t.Errorf("the squatter was changed: %+v", cr.ObjectMeta)
	}
}

// A pet held back by a claim outside the cache (being deleted, or owned by a
// pod that is gone) is looked at again on a timer, as no event says when the
// claim goes; then the pet is made with a fresh claim and the timer stops.
func TestClaimHoldRequeues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		claim *corev1.PersistentVolumeClaim
		gone  func(f *fixture) // what the API server and garbage collector do
	}{
		{"being deleted", &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-db-0", UID: "uid-old-claim",
			Labels: map[string]string{"app": "db"}, DeletionTimestamp: &metav1.Time{Time: time.Now()}, Finalizers: []string{"kubernetes.io/pvc-protection"}}},
			func(f *fixture) {
				c := f.claim("data-db-0")
				c.Finalizers = nil
				if err := f.c.Update(f.ctx, c); err != nil {
					f.t.Fatal(err)
				}
			}},
		{"owned by a gone pod", &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-db-0", UID: "uid-old-claim",
			Labels: map[string]string{"app": "db"}, OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "v1", Kind: "Pod", Name: "db-0", UID: "uid-gone-pod", Controller: ptrTo(true)}}}},
			func(f *fixture) {
				if err := f.c.Delete(f.ctx, f.claim("data-db-0")); err != nil {
					f.t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, testSet(1), tc.claim)
			f.r.RecheckAfter = 3 * time.Second
			if claimOwner(f.ctx, tc.claim) != nil {
				t.Fatal("the claim maps to a set: this test needs one no event brings back")
			}
			for i := 0; i < 2; i++ {
				res := f.reconcileResult()
				if f.pod("db-0") != nil {
					t.Fatal("db-0 made while its claim is on its way out")
				}
				if res.RequeueAfter != 3*time.Second {
					t.Fatalf("pass %d: requeue after %v while db-0 waits for its claim, want 3s", i, res.RequeueAfter)
				}
			}
			tc.gone(f)
			if f.claim("data-db-0") != nil {
				t.Fatal("the claim is still there")
			}
			// The requeue's pass: nothing else happened.
			f.mustReconcile()
			p := f.pod("db-0")
			if p == nil {
				t.Fatal("db-0 not made once its old claim was gone")
			}
			if c := f.claim("data-db-0"); c == nil || c.UID == "uid-old-claim" || c.Labels[LabelSetName] != "db" {
				t.Fatalf("db-0's claim is not a fresh one of the set: %+v", c)
			}
			f.markReady("db-0")
			if res := f.reconcileResult(); res.RequeueAfter != 0 {
				t.Errorf("requeued after %v with nothing held", res.RequeueAfter)
			}
		})
	}
}

// Migrating to a PetSet of fewer replicas: a condemned pod the StatefulSet
// still controls is read again on a timer, so once the garbage collector
// orphans it the set adopts and deletes it, without a new generation.
func TestCondemnedOrphanedLater(t *testing.T) {
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Generation = 1
	// Adopted pods are kept whatever their template (see
	// TestAdoptedPodReplacedUnlessItMatches).
	ps.Spec.UpdateStrategy.Type = v1alpha1.OnDeleteStrategy
	app := map[string]string{"app": "db"}
	sts := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "uid-sts", Controller: ptrTo(true)}
	f := newFixture(t, ps, testPod("db-0", "db:1", app, sts), testPod("db-1", "db:1", app, sts))
	f.r.RecheckAfter = 3 * time.Second
	res := f.reconcileResult()
	if res.RequeueAfter != 3*time.Second {
		t.Errorf("requeue after %v with pods of another controller matching the selector, want 3s", res.RequeueAfter)
	}
	if p := f.pod("db-1"); p == nil || controllerUID(p) != "uid-sts" {
		t.Fatalf("db-1 touched while the StatefulSet controls it: %+v", p)
	}
	// The garbage collector orphans both pods.
	for _, n := range []string{"db-0", "db-1"} {
		p := f.pod(n)
		p.OwnerReferences = nil
		if err := f.c.Update(f.ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	f.mustReconcile()
	if p := f.pod("db-0"); p == nil || p.UID != "uid-db-0" || controllerUID(p) != "uid-db" {
		t.Errorf("db-0 not adopted in place: %+v", p)
	}
	if p := f.pod("db-1"); p != nil {
		t.Errorf("condemned db-1 not adopted and deleted once orphaned: %+v", p.ObjectMeta)
	}
	if ev := f.events(); !strings.Contains(ev, "SuccessfulAdopt pod db-1") {
		t.Errorf("db-1 not adopted before its deletion:\n%s", ev)
	}
	if res := f.reconcileResult(); res.RequeueAfter != 0 {
		t.Errorf("requeued after %v with nothing outside the cache", res.RequeueAfter)
	}
	if st := f.set().Status; st.Replicas != 1 || st.ReadyReplicas != 1 {
		t.Errorf("status replicas %d ready %d, want 1 and 1", st.Replicas, st.ReadyReplicas)
	}
}

// deleteEvent hands the pod handler the delete event the cache's informer
// sends for obj, and returns the sets it enqueued.
func (f *fixture) deleteEvent(obj client.Object) []reconcile.Request {
	f.t.Helper()
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	f.r.podEvents().Delete(f.ctx, event.DeleteEvent{Object: obj}, q)
	var out []reconcile.Request
	for q.Len() > 0 {
		req, _ := q.Get()
		out = append(out, req)
		q.Done(req)
	}
	return out
}

// A pet whose set-name label is removed leaves the cache as if deleted: the
// next pass reads that name (one read, no list) and labels the pet back, or
// deletes it if condemned. A pet really deleted costs no read.
func TestPetLabelRemovedFoundOnDeleteEvent(t *testing.T) {
	ps := testSet(3)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Generation = 1
	f := newFixture(t, ps)
	for i := 0; i < 3; i++ {
		f.mustReconcile()
		f.markReady(PodName("db", i))
	}
	f.mustReconcile()
	s := f.set()
	s.Spec.Replicas, s.Generation = ptrTo(int32(1)), 2
	if err := f.c.Update(f.ctx, s); err != nil {
		t.Fatal(err)
	}
	f.mustReconcile() // deletes db-2, the highest
	if f.pod("db-2") != nil {
		t.Fatal("db-2 not deleted")
	}
	reads := &countingReader{Reader: f.c}
	f.r.APIReader = reads
	// The scale-down goes on; meanwhile each of the other pets loses its
	// label, and the informer reports it deleted.
	for _, tc := range []struct {
		name      string
		condemned bool
	}{{"db-1", true}, {"db-0", false}} {
		p := f.pod(tc.name)
		uid := p.UID
		before := p.DeepCopy() // what the informer last held
		delete(p.Labels, LabelSetName)
		if err := f.c.Update(f.ctx, p); err != nil {
			t.Fatal(err)
		}
		if reqs := f.deleteEvent(before); len(reqs) != 1 || reqs[0].NamespacedName != setKey {
			t.Fatalf("%s's delete event enqueued %v, want the set", tc.name, reqs)
		}
		if tc.condemned {
			// db-2's own delete event, after its graceful deletion.
			gone := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db-2", DeletionTimestamp: &metav1.Time{Time: time.Now()},
				Labels: map[string]string{LabelSetName: "db"}, OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(s, petSetKind)}}}
			if reqs := f.deleteEvent(gone); len(reqs) != 1 || reqs[0].NamespacedName != setKey {
				t.Fatalf("db-2's delete event enqueued %v, want the set", reqs)
			}
		}
		gets, lists := reads.gets, reads.lists
		f.mustReconcile()
		// Its name, and the name of a pet taken back on the pass
		// before, read until the cache holds it or it is gone.
		if reads.gets-gets < 1 || reads.gets-gets > 2 || reads.lists != lists {
			t.Errorf("%s: %d uncached gets and %d lists, want one or two gets", tc.name, reads.gets-gets, reads.lists-lists)
		}
		p = f.pod(tc.name)
		if tc.condemned {
			if p != nil {
				t.Errorf("condemned %s, its label removed, not deleted: %+v", tc.name, p.ObjectMeta)
			}
			continue
		}
		if p == nil || p.UID != uid || p.Labels[LabelSetName] != "db" {
			t.Fatalf("%s not labelled back in place: %+v", tc.name, p)
		}
	}
	if res := f.reconcileResult(); res.RequeueAfter != 0 {
		t.Errorf("requeued after %v with every pet in the cache", res.RequeueAfter)
	}
	if st := f.set().Status; st.Replicas != 1 || st.ReadyReplicas != 1 {
		t.Errorf("status replicas %d ready %d, want 1 and 1", st.Replicas, st.ReadyReplicas)
	}
}

// A claim template added to a set whose pets have pods: the missing claims are
// asked of the API server once per claim and generation, not on every pass; a
// new generation finds a claim made meanwhile.
func TestAbsentClaimsReadOncePerGeneration(t *testing.T) {
	ps := testSet(3)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	ps.Generation = 1
	f := newFixture(t, ps)
	f.mustReconcile()
	for i := 0; i < 3; i++ {
		f.markReady(PodName("db", i))
	}
	f.mustReconcile()
	s := f.set()
	s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}
	s.Spec.UpdateStrategy.Type = v1alpha1.OnDeleteStrategy
	s.Generation = 2
	if err := f.c.Update(f.ctx, s); err != nil {
		t.Fatal(err)
	}
	reads := &countingReader{Reader: f.c}
	f.r.APIReader = reads
	f.mustReconcile()
	if reads.gets != 3 {
		t.Errorf("first pass of the generation: %d uncached gets, want 3 (one per absent claim)", reads.gets)
	}
	for i := 0; i < 10; i++ {
		f.mustReconcile()
	}
	if reads.gets != 3 {
		t.Errorf("10 idle passes: %d more uncached gets, want none", reads.gets-3)
	}
	// Someone makes db-1's claim, unlabelled, as a StatefulSet would; the
	// next generation finds it and labels it.
	if err := f.c.Create(f.ctx, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-db-1"}}); err != nil {
		t.Fatal(err)
	}
	s = f.set()
	s.Spec.MinReadySeconds, s.Generation = 1, 3
	if err := f.c.Update(f.ctx, s); err != nil {
		t.Fatal(err)
	}
	gets := reads.gets
	f.mustReconcile()
	if reads.gets-gets < 3 {
		t.Errorf("a new generation: %d uncached gets, want the 3 claims read again", reads.gets-gets)
	}
	if c := f.claim("data-db-1"); c.Labels[LabelSetName] != "db" || c.Labels[LabelPodIndex] != "1" {
		t.Errorf("data-db-1 not labelled at the new generation: %v", c.Labels)
	}
}
