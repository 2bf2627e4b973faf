package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// An orphaned revision is adopted only after a fresh read of the set: a
// cache that still holds a set deleted and recreated under the same name
// (another UID) must not make the old one adopt revisions, as
// StatefulSet's adoptOrphanRevisions checks with canAdoptFunc. The pass
// fails and the revision keeps no owner; with a fresh read that agrees,
// it is adopted.
func TestRevisionAdoptionRechecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fresh func(*v1alpha1.PetSet)
		want  string // error; "" for adopted
	}{
		{"recreated with a new uid", func(ps *v1alpha1.PetSet) { ps.UID = "uid-recreated" }, "is gone"},
		{"being deleted", func(ps *v1alpha1.PetSet) {
			ps.DeletionTimestamp, ps.Finalizers = &metav1.Time{Time: time.Now()}, []string{"test/hold"}
		}, "being deleted"},
		{"same set", func(*v1alpha1.PetSet) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := testSet(0)
			data, _ := revisionData(&ps.Spec.Template)
			orphan := &appsv1.ControllerRevision{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db-left", Labels: map[string]string{LabelSetName: "db", "app": "db"}},
				Data:       runtime.RawExtension{Raw: data},
				Revision:   1,
			}
			f := newFixture(t, ps, orphan)
			fresh := testSet(0)
			tc.fresh(fresh)
			f.r.APIReader = fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(fresh).Build()
			err := f.reconcile()
			var cr appsv1.ControllerRevision
			if gerr := f.c.Get(f.ctx, client.ObjectKeyFromObject(orphan), &cr); gerr != nil {
				t.Fatal(gerr)
			}
			if tc.want == "" {
				if err != nil || controllerUID(&cr) != ps.UID {
					t.Fatalf("reconcile %v, revision controller %q; want adopted by %s", err, controllerUID(&cr), ps.UID)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("reconcile error %v, want one saying %q", err, tc.want)
			}
			if len(cr.OwnerReferences) != 0 {
				t.Errorf("revision adopted: %v", cr.OwnerReferences)
			}
			var list appsv1.ControllerRevisionList
			f.c.List(f.ctx, &list)
			if len(list.Items) != 1 {
				t.Errorf("%d revisions, want only the orphan (no new one made by a set that may be gone)", len(list.Items))
			}
		})
	}
}

// The Ready condition's message says every reason the set waits, not
// the last one: each pet held back by a rolling update's budget, each
// pet held back by a claim or a foreign pod, in a fixed order and
// bounded.
func TestReadyMessageNamesEveryReason(t *testing.T) {
	// A rolling update over five Ready pets with maxUnavailable 2:
	// db-4 and db-3 go, db-2, db-1 and db-0 are held, all named.
	w := Want{Start: 0, End: 5, Revision: "new", Current: "old", RollingUpdate: true, MaxUnavailable: 2, Now: time.Now()}
	var pets []Pet
	for o := range 5 {
		pets = append(pets, Pet{Ordinal: o, Revision: "old", Ready: true})
	}
	plan := Decide(w, pets)
	if want := "waiting for 2 unavailable pets (maxUnavailable 2) before updating 2, 1, 0"; plan.Wait != want {
		t.Errorf("wait %q, want %q", plan.Wait, want)
	}
	if fmt.Sprint(plan.Delete) != "[4 3]" {
		t.Errorf("delete %v, want [4 3]", plan.Delete)
	}
	// Seven held: five named, the rest counted.
	w.End, w.MaxUnavailable = 9, 1
	for o := 5; o < 9; o++ {
		pets = append(pets, Pet{Ordinal: o, Revision: "old", Ready: true})
	}
	if got, want := Decide(w, pets).Wait, "waiting for 1 unavailable pets (maxUnavailable 1) before updating 7, 6, 5, 4, 3 and 3 more"; got != want {
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
	// Pods that do not match the selector carry no pet label, so the
	// label-selected cache does not hold them: the passes find them by
	// creates that answer AlreadyExists (a pass stops at its first
	// failed create) and read them uncached from then on.
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

// Under OnDelete the current revision never moves, as in StatefulSet,
// whose completeRollingUpdate acts only under RollingUpdate: even with
// every pet deleted and made again at the update revision and Ready,
// status.currentRevision stays the first template's, currentReplicas
// counts the pets still at it (none), and its revision is kept. Switched
// to RollingUpdate, the update completes and the current revision moves.
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

// When the plan waits for nothing and the set is not Ready, the Ready
// message says why from the pets' state: pets not yet available under
// Parallel, pets left at an old revision by OnDelete or below the
// partition, pets terminating. The pass that creates pets says what the
// pass after it says, so the new pods' watch events cost no status
// write.
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
		{"parallel, condemned terminating and a pet not available", Want{End: 2, Parallel: true, RollingUpdate: true, MinReadySeconds: time.Minute},
			[]Pet{ready(0, "new"), {Ordinal: 1, Revision: "new", Ready: true, ReadySince: now}, {Ordinal: 3, Revision: "new", Terminating: true}, {Ordinal: 2, Revision: "new", Terminating: true}},
			"waiting for 2, 3 to terminate; waiting for 1 to be available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.w
			w.Revision, w.Now, w.MaxUnavailable = "new", now, 1
			if plan := Decide(w, tc.pets); plan.Wait != "" || len(plan.Create)+len(plan.Delete) > 0 {
				t.Fatalf("plan %+v, want idle", plan)
			}
			if got := joinReasons(w.notDone(tc.pets)); got != tc.want {
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
