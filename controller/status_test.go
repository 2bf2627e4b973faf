package controller

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// statusPet describes one pod for TestComputeStatus.
type statusPet struct {
	rev         string
	ready       bool
	terminating bool
}

func statusPod(o int, p statusPet) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: PodName("db", o), Labels: map[string]string{LabelRevision: p.rev}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if p.ready {
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	if p.terminating {
		pod.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		pod.Finalizers = []string{"test/hold"}
	}
	return pod
}

// The status as StatefulSet computes it (computeReplicaStatus,
// completeRollingUpdate), with a Ready message naming the plan's waits, else
// what keeps the set from Ready; an unchanged condition keeps its time.
func TestComputeStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	earlier := metav1.NewTime(now.Add(-time.Hour))
	tests := []struct {
		name     string
		parallel bool
		replicas int32 // len(pets) when 0
		pets     []statusPet
		plan     *Plan // Decide's when nil
		base     func(*v1alpha1.PetSetStatus)
		current  string // status.currentRevision
		updated  int32
		cur      int32
		ready    metav1.ConditionStatus
		message  string
		check    func(t *testing.T, st v1alpha1.PetSetStatus)
	}{
		{name: "parallel, updated but not ready: current stays", parallel: true,
			pets:    []statusPet{{"new", false, false}, {"new", false, false}, {"new", true, false}},
			current: "old", updated: 3, cur: 0, ready: metav1.ConditionFalse, message: "waiting for 0, 1 to be available"},
		{name: "parallel, updated and ready: current moves", parallel: true,
			pets:    []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, false}},
			current: "new", updated: 3, cur: 3, ready: metav1.ConditionTrue, message: "3 pets ready"},
		{name: "ordered, updated and ready: current moves",
			pets:    []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, false}},
			current: "new", updated: 3, cur: 3, ready: metav1.ConditionTrue, message: "3 pets ready"},
		{name: "terminating pet at the update revision: not updated, set not ready", parallel: true,
			pets:    []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, true}},
			current: "old", updated: 2, cur: 0, ready: metav1.ConditionFalse, message: "waiting for 2 to terminate"},
		{name: "terminating pet at the current revision: not current", parallel: true,
			pets:    []statusPet{{"old", true, true}, {"new", true, false}, {"new", true, false}},
			current: "old", updated: 2, cur: 0, ready: metav1.ConditionFalse, message: "waiting for 0 to terminate"},
		{name: "ordered, terminating pet: set not ready",
			pets:    []statusPet{{"new", true, false}, {"new", true, true}, {"new", true, false}},
			current: "old", updated: 2, cur: 0, ready: metav1.ConditionFalse, message: "waiting for 1 to be available"},
		{name: "ordered, old pets: the plan's wait is the message",
			pets:    []statusPet{{"old", true, false}, {"old", true, false}, {"new", false, false}},
			current: "old", updated: 1, cur: 2, ready: metav1.ConditionFalse, message: "waiting for 2 to be available"},
		{name: "held pets first, then the plan's wait; creating one at a time is not said when that one is held",
			replicas: 2, pets: []statusPet{{"new", true, false}},
			plan:    &Plan{Wait: Wait{Kind: WaitCreating, Ordinals: []int{1}}, Held: []Wait{heldBy(HeldByMismatch, 1, "db-1", "")}},
			current: "old", updated: 1, cur: 0, ready: metav1.ConditionFalse, message: "pod db-1 exists and does not match the selector"},
		{name: "all ready but the plan still creates: not Ready",
			pets:    []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, false}},
			plan:    &Plan{Create: []int{3}},
			current: "old", updated: 3, cur: 0, ready: metav1.ConditionFalse, message: ""},
		{name: "an unchanged condition keeps its time; the collision count is the revisions'", parallel: true,
			pets: []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, false}},
			base: func(st *v1alpha1.PetSetStatus) {
				st.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "AllPetsReady", LastTransitionTime: earlier}}
			},
			current: "new", updated: 3, cur: 3, ready: metav1.ConditionTrue, message: "3 pets ready",
			check: func(t *testing.T, st v1alpha1.PetSetStatus) {
				if st.CollisionCount == nil || *st.CollisionCount != 1 {
					t.Errorf("collisionCount %v, want the revisions' 1", st.CollisionCount)
				}
				if c := meta.FindStatusCondition(st.Conditions, "Ready"); !c.LastTransitionTime.Equal(&earlier) {
					t.Errorf("Ready transition time %v, want %v kept", c.LastTransitionTime, earlier)
				}
			}},
		{name: "a changed condition gets the pass's time, and every field of a pet its member",
			replicas: 2, pets: []statusPet{{"new", true, false}},
			base: func(st *v1alpha1.PetSetStatus) {
				st.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Progressing", LastTransitionTime: earlier}}
			},
			current: "old", updated: 1, cur: 0, ready: metav1.ConditionFalse, message: "creating one pet at a time",
			check: func(t *testing.T, st v1alpha1.PetSetStatus) {
				if c := meta.FindStatusCondition(st.Conditions, "Ready"); !c.LastTransitionTime.Equal(&earlier) || c.ObservedGeneration != 1 {
					t.Errorf("Ready %+v: status unchanged, so the time stays; generation 1", c)
				}
				if c := meta.FindStatusCondition(st.Conditions, ConditionPetsOwned); c == nil || !c.LastTransitionTime.Time.Equal(now) {
					t.Errorf("PetsOwned %+v, want set at the pass's time", c)
				}
				want := []v1alpha1.Member{{Ordinal: 0, Pod: "db-0", Ready: true, Revision: "new", Claims: []string{"data-db-0"}}}
				if !equality.Semantic.DeepEqual(st.Members, want) || st.Selector != "app=db" || st.ObservedGeneration != 1 {
					t.Errorf("members %+v selector %q generation %d", st.Members, st.Selector, st.ObservedGeneration)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := testSet(cmp.Or(tc.replicas, int32(len(tc.pets))))
			ps.Status.CurrentRevision = "old"
			if tc.base != nil {
				tc.base(&ps.Status)
			}
			owned := map[int]*corev1.Pod{}
			var state []Pet
			for o, p := range tc.pets {
				owned[o] = statusPod(o, p)
				state = append(state, petOf(o, owned[o]))
			}
			w := Want{Start: 0, End: int(*ps.Spec.Replicas), Parallel: tc.parallel, Revision: "new", Current: "old", RollingUpdate: true,
				MaxUnavailable: 1, Now: now, collisionCount: ptrTo(int32(1))}
			plan := Decide(w, state)
			if tc.plan != nil {
				plan = *tc.plan
			}
			st := computeStatus(ps, owned, w, plan, ownedCondition(ps, ownership{}))
			if st.CurrentRevision != tc.current || st.UpdatedReplicas != tc.updated || st.CurrentReplicas != tc.cur {
				t.Errorf("currentRevision %q updated %d current %d; want %q %d %d", st.CurrentRevision, st.UpdatedReplicas, st.CurrentReplicas, tc.current, tc.updated, tc.cur)
			}
			if c := meta.FindStatusCondition(st.Conditions, "Ready"); c == nil || c.Status != tc.ready || c.Message != tc.message {
				t.Errorf("Ready condition %+v, want %s %q", c, tc.ready, tc.message)
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
}

// A status computed from a set the cache has not updated never replaces a
// newer one: within StatusInterval it waits, after it the write is refused 409.
// So a collision count never falls back over a lagging cache.
func TestWriteStatusOverStaleCache(t *testing.T) {
	ctx, c, r, ps, stale := staleCacheFixture(t)
	now := time.Now()
	r.Now, r.StatusInterval = func() time.Time { return now }, time.Second
	owned := map[int]*corev1.Pod{0: statusPod(0, statusPet{"new", true, false})}
	one, zero := int32(1), int32(0)
	w := Want{Start: 0, End: 3, Revision: "new", RollingUpdate: true, MaxUnavailable: 1, Now: now, collisionCount: &one}
	pets := []Pet{petOf(0, owned[0])}
	if _, err := r.writeStatus(ctx, ps, computeStatus(ps, owned, w, Decide(w, pets))); err != nil {
		t.Fatal(err)
	}
	// The next pass reads the set as it was before that write, so the
	// revisions were read with collisionCount 0; and a pet changed.
	w.collisionCount = &zero
	owned[1] = statusPod(1, statusPet{"new", false, false})
	pets = append(pets, petOf(1, owned[1]))
	if after, err := r.writeStatus(ctx, stale.DeepCopy(), computeStatus(stale, owned, w, Decide(w, pets))); err != nil || after != time.Second {
		t.Errorf("within the interval: %v, back after %v; want nothing written, back after 1s", err, after)
	}
	now = now.Add(time.Second)
	if _, err := r.writeStatus(ctx, stale.DeepCopy(), computeStatus(stale, owned, w, Decide(w, pets))); !apierrors.IsConflict(err) {
		t.Errorf("after the interval: %v, want a conflict", err)
	}
	var got v1alpha1.PetSet
	if err := c.Get(ctx, client.ObjectKeyFromObject(ps), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Replicas != 1 || got.Status.CollisionCount == nil || *got.Status.CollisionCount != 1 {
		t.Errorf("replicas %d, collisionCount %v; want the first write's 1 and 1", got.Status.Replicas, got.Status.CollisionCount)
	}
}

// staleCacheFixture stores a 3-pet set in a fake client and returns it
// read back, with a copy standing for what a lagging cache still holds.
func staleCacheFixture(t *testing.T) (context.Context, client.Client, *Reconciler, *v1alpha1.PetSet, *v1alpha1.PetSet) {
	t.Helper()
	ps := testSet(3)
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithStatusSubresource(&v1alpha1.PetSet{}).WithObjects(ps).Build()
	ctx := context.Background()
	if err := c.Get(ctx, client.ObjectKeyFromObject(ps), ps); err != nil {
		t.Fatal(err)
	}
	return ctx, c, &Reconciler{Client: c}, ps, ps.DeepCopy()
}

// The Ready message names every reason the set waits, not the last: each pet
// a rolling update's budget holds, each pet a claim or foreign pod holds, in a
// fixed order and bounded.
func TestReadyMessageNamesEveryReason(t *testing.T) {
	// A rolling update over five Ready pets with maxUnavailable 2:
	// db-4 and db-3 go, db-2, db-1 and db-0 are held, all named.
	w := Want{Start: 0, End: 5, Revision: "new", Current: "old", RollingUpdate: true, MaxUnavailable: 2, Now: time.Now()}
	var pets []Pet
	for o := range 5 {
		pets = append(pets, Pet{Ordinal: o, Revision: "old", Ready: true})
	}
	plan := Decide(w, pets)
	if want := "waiting for 2 unavailable pets (maxUnavailable 2) before updating 2, 1, 0"; plan.Wait.String() != want {
		t.Errorf("wait %q, want %q", plan.Wait.String(), want)
	}
	if fmt.Sprint(plan.Delete) != "[4 3]" {
		t.Errorf("delete %v, want [4 3]", plan.Delete)
	}
	// Seven held: five named, the rest counted.
	w.End, w.MaxUnavailable = 9, 1
	for o := 5; o < 9; o++ {
		pets = append(pets, Pet{Ordinal: o, Revision: "old", Ready: true})
	}
	if got, want := Decide(w, pets).Wait.String(), "waiting for 1 unavailable pets (maxUnavailable 1) before updating 7, 6, 5, 4, 3 and 3 more"; got != want {
		t.Errorf("wait %q, want %q", got, want)
	}

	// Parallel, seven pets held back by foreign pods: the message names
	// the first five by ordinal and counts the others, the same on every
	// pass.
	ps := testSet(7)
	ps.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	ps.Spec.VolumeClaimTemplates = nil
	var objs = []client.Object{ps}
	for o := range 7 {
		objs = append(objs, testPod(PodName("db", o), "db:1", map[string]string{"app": "other"}, nil))
	}
	f := newFixture(t, objs...)
	// Pods that do not match the selector are not in the label-selected cache:
	// the passes find them by creates answered AlreadyExists, one per pass, and
	// read them uncached from then on.
	events := ""
	for pass := 0; ; pass++ {
		err := f.reconcile()
		events += f.events()
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "already exists") || pass == 7 {
			t.Fatalf("pass %d: %v, want AlreadyExists until every foreign pod is known", pass, err)
		}
	}
	if n := strings.Count(events, "PodConflict"); n != 5 {
		t.Errorf("%d PodConflict events while the foreign pods were found, want 5 (the named ones)", n)
	}
	var msgs []string
	for pass := range 2 {
		f.mustReconcile()
		// Events for the pets the message names, once: none again.
		if n, want := strings.Count(f.events(), "PodConflict"), 0; n != want {
			t.Errorf("pass %d: %d PodConflict events, want %d", pass, n, want)
		}
		c := meta.FindStatusCondition(f.set().Status.Conditions, "Ready")
		if c == nil {
			t.Fatal("no Ready condition")
		}
		msgs = append(msgs, c.Message)
	}
	want := "pod db-0 exists and does not match the selector; pod db-1 exists and does not match the selector; " +
		"pod db-2 exists and does not match the selector; pod db-3 exists and does not match the selector; " +
		"pod db-4 exists and does not match the selector; and 2 more"
	if msgs[0] != want || msgs[1] != want {
		t.Errorf("Ready messages\n%q\n%q\nwant %q", msgs[0], msgs[1], want)
	}
}

// Under OnDelete the current revision never moves, as completeRollingUpdate
// acts only under RollingUpdate, even once every pet is made again at the
// update revision; switched to RollingUpdate, it moves.
func TestOnDeleteCurrentRevisionStays(t *testing.T) {
	ps := testSet(2)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.UpdateStrategy.Type = v1alpha1.OnDeleteStrategy
	ps.Spec.RevisionHistoryLimit = ptrTo(int32(0))
	f := newRevFixture(t, ps)
	f.converge()
	r1 := f.set().Status.CurrentRevision
	f.setImage("db:2")
	f.converge()
	f.deletePod("db-0")
	f.deletePod("db-1")
	f.converge()
	st := f.set().Status
	r2 := st.UpdateRevision
	if r1 == r2 || st.UpdatedReplicas != 2 || st.ReadyReplicas != 2 {
		t.Fatalf("status %+v: want both pets updated to a new revision and Ready", st)
	}
	if st.CurrentRevision != r1 || st.CurrentReplicas != 0 {
		t.Errorf("OnDelete: currentRevision %q currentReplicas %d, want %q (unchanged) and 0", st.CurrentRevision, st.CurrentReplicas, r1)
	}
	if c := meta.FindStatusCondition(st.Conditions, "Ready"); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready %+v, want True: every pet is Ready", c)
	}
	if _, ok := f.revisions()[r1]; !ok {
		t.Errorf("current revision %s pruned under revisionHistoryLimit 0", r1)
	}

	ps = f.set()
	ps.Spec.UpdateStrategy.Type = v1alpha1.RollingUpdateStrategy
	if err := f.c.Update(f.ctx, ps); err != nil {
		t.Fatal(err)
	}
	f.converge()
	if st := f.set().Status; st.CurrentRevision != r2 || st.CurrentReplicas != 2 {
		t.Errorf("RollingUpdate: currentRevision %q currentReplicas %d, want %q and 2", st.CurrentRevision, st.CurrentReplicas, r2)
	}
}

// When the plan waits for nothing yet the set is not Ready, the message says
// why from the pets; the pass that creates pets says what the next pass will,
// so the new pods' events cost no status write.
func TestReadyMessageWhenPlanIdle(t *testing.T) {
	now := time.Now()
	ready := func(o int, rev string) Pet {
		return Pet{Ordinal: o, Revision: rev, Ready: true, ReadySince: now.Add(-time.Hour)}
	}
	for _, tc := range []struct {
		name string
		w    Want
		pets []Pet
		want string
	}{
		{"parallel, not Ready", Want{End: 3, Parallel: true, RollingUpdate: true},
			[]Pet{ready(0, "new"), {Ordinal: 1, Revision: "new"}, {Ordinal: 2, Revision: "new"}},
			"waiting for 1, 2 to be available"},
		{"OnDelete, old pets", Want{End: 3, Current: "old"},
			[]Pet{ready(0, "old"), ready(1, "old"), ready(2, "new")},
			"0, 1 at an old revision are updated when deleted (OnDelete)"},
		{"partition", Want{End: 3, Current: "old", RollingUpdate: true, Partition: 2},
			[]Pet{ready(0, "old"), ready(1, "old"), ready(2, "new")},
			"0, 1 below the partition keep their revision"},
		{"parallel, condemned terminating and a pet not available", Want{End: 2, Parallel: true, RollingUpdate: true, MinReady: time.Minute},
			[]Pet{ready(0, "new"), {Ordinal: 1, Revision: "new", Ready: true, ReadySince: now}, {Ordinal: 3, Revision: "new", Terminating: true}, {Ordinal: 2, Revision: "new", Terminating: true}},
			"waiting for 2, 3 to terminate; waiting for 1 to be available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.w
			w.Revision, w.Now, w.MaxUnavailable = "new", now, 1
			if plan := Decide(w, tc.pets); plan.Wait.Kind != WaitNone || len(plan.Create)+len(plan.Delete) > 0 {
				t.Fatalf("plan %+v, want idle", plan)
			}
			if got := message(w.notDone(tc.pets)); got != tc.want {
				t.Errorf("message %q, want %q", got, tc.want)
			}
		})
	}

	// Through the reconciler: Parallel creates three pets; the pass
	// after, seeing them, has nothing new to write.
	ps := testSet(3)
	ps.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	ps.Spec.VolumeClaimTemplates = nil
	f := newFixture(t, ps)
	f.mustReconcile()
	first := f.set()
	if c := meta.FindStatusCondition(first.Status.Conditions, "Ready"); c == nil || c.Message != "waiting for 0, 1, 2 to be available" {
		t.Errorf("Ready after creating: %+v", c)
	}
	f.mustReconcile()
	if second := f.set(); second.ResourceVersion != first.ResourceVersion {
		t.Errorf("the pass after creating wrote status again:\n%+v\n%+v", first.Status.Conditions, second.Status.Conditions)
	}
}

// Changes within StatusInterval of a set's last status write are written at
// its end: ten pets turning Ready 100ms apart cost one write, not ten. After a
// quiet interval a change is written at once.
func TestStatusWritesCoalesced(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		writes   int
	}{{0, 11}, {time.Second, 2}} {
		t.Run(tc.interval.String(), func(t *testing.T) {
			ps := testSet(10)
			ps.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
			ps.Spec.VolumeClaimTemplates = nil
			writes := 0
			f, _ := failingFixture(t, interceptor.Funcs{
				SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
					if _, ok := obj.(*v1alpha1.PetSet); ok {
						writes++
					}
					return c.SubResource(sub).Update(ctx, obj, opts...)
				},
			}, ps)
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			f.r.Now, f.r.StatusInterval = func() time.Time { return now }, tc.interval
			pass := func() time.Duration {
				t.Helper()
				res, err := f.r.Reconcile(f.ctx, reconcileRequest(setKey))
				if err != nil {
					t.Fatal(err)
				}
				return res.RequeueAfter
			}
			pass() // creates the ten pets and counts them
			for o := range 10 {
				now = now.Add(100 * time.Millisecond)
				f.markReady(PodName("db", o))
				after := pass()
				if wait := time.Second - time.Duration(o+1)*100*time.Millisecond; tc.interval > 0 && wait > 0 && after != wait {
					t.Errorf("pass %d held its status back and asks to come back after %v, want %v", o, after, wait)
				}
			}
			if writes != tc.writes {
				t.Errorf("%d status writes, want %d", writes, tc.writes)
			}
			if st := f.set().Status; st.ReadyReplicas != 10 || !meta.IsStatusConditionTrue(st.Conditions, "Ready") {
				t.Errorf("status after the last pass: ready %d, conditions %+v", st.ReadyReplicas, st.Conditions)
			}

			now = now.Add(time.Minute)
			pod := f.pod("db-3")
			pod.Status.Conditions[0].Status = corev1.ConditionFalse
			if err := f.c.Status().Update(f.ctx, pod); err != nil {
				t.Fatal(err)
			}
			if after := pass(); after != 0 || f.set().Status.ReadyReplicas != 9 {
				t.Errorf("a change after a quiet minute: requeue after %v, ready %d; want written at once", after, f.set().Status.ReadyReplicas)
			}
		})
	}
}
