package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// statusPet describes one pod for TestWriteStatus.
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

// The status a pass writes, as the StatefulSet controller computes it
// (computeReplicaStatus, completeRollingUpdate): the current revision
// moves to the update revision only when every pet is updated and
// Ready; Terminating pets count as neither current nor updated; the set
// is not Ready while a pet is Terminating.
func TestWriteStatus(t *testing.T) {
	tests := []struct {
		name     string
		parallel bool
		pets     []statusPet
		current  string // status.currentRevision after the pass
		updated  int32
		cur      int32
		ready    metav1.ConditionStatus
	}{
		{name: "parallel, updated but not ready: current stays", parallel: true,
			pets:    []statusPet{{"new", false, false}, {"new", false, false}, {"new", true, false}},
			current: "old", updated: 3, cur: 0, ready: metav1.ConditionFalse},
		{name: "parallel, updated and ready: current moves", parallel: true,
			pets:    []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, false}},
			current: "new", updated: 3, cur: 3, ready: metav1.ConditionTrue},
		{name: "ordered, updated and ready: current moves",
			pets:    []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, false}},
			current: "new", updated: 3, cur: 3, ready: metav1.ConditionTrue},
		{name: "terminating pet at the update revision: not updated, set not ready", parallel: true,
			pets:    []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, true}},
			current: "old", updated: 2, cur: 0, ready: metav1.ConditionFalse},
		{name: "terminating pet at the current revision: not current", parallel: true,
			pets:    []statusPet{{"old", true, true}, {"new", true, false}, {"new", true, false}},
			current: "old", updated: 2, cur: 0, ready: metav1.ConditionFalse},
		{name: "ordered, terminating pet: set not ready",
			pets:    []statusPet{{"new", true, false}, {"new", true, true}, {"new", true, false}},
			current: "old", updated: 2, cur: 0, ready: metav1.ConditionFalse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			clientgoscheme.AddToScheme(scheme)
			v1alpha1.AddToScheme(scheme)
			ps := testSet(int32(len(tc.pets)))
			ps.Status.CurrentRevision = "old"
			c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.PetSet{}).WithObjects(ps).Build()
			r := &Reconciler{Client: c}
			owned := map[int]*corev1.Pod{}
			var state []Pet
			for o, p := range tc.pets {
				owned[o] = statusPod(o, p)
				state = append(state, petOf(o, owned[o]))
			}
			w := Want{Start: 0, End: len(tc.pets), Parallel: tc.parallel, Revision: "new", Current: "old", RollingUpdate: true, MaxUnavailable: 1, Now: time.Now()}
			if err := r.writeStatus(context.Background(), ps, owned, w, Decide(w, state)); err != nil {
				t.Fatal(err)
			}
			st := ps.Status
			if st.CurrentRevision != tc.current || st.UpdatedReplicas != tc.updated || st.CurrentReplicas != tc.cur {
				t.Errorf("currentRevision %q updated %d current %d; want %q %d %d", st.CurrentRevision, st.UpdatedReplicas, st.CurrentReplicas, tc.current, tc.updated, tc.cur)
			}
			if c := meta.FindStatusCondition(st.Conditions, "Ready"); c == nil || c.Status != tc.ready {
				t.Errorf("Ready condition %+v, want %s", c, tc.ready)
			}
		})
	}
}

// A pass that reads the set from a cache that has not yet seen this
// process's last status write, and computes that same status, writes
// nothing (the write would only be answered 409); one that computes
// something new writes over that last write, and gets a conflict only if
// someone else has written since.
func TestWriteStatusStaleCache(t *testing.T) {
	ctx, c, r, ps, stale := staleCacheFixture(t)
	key := client.ObjectKeyFromObject(ps)
	owned := map[int]*corev1.Pod{0: statusPod(0, statusPet{"new", true, false})}
	w := Want{Start: 0, End: 3, Revision: "new", RollingUpdate: true, MaxUnavailable: 1, Now: time.Now()}
	pets := []Pet{petOf(0, owned[0])}
	if err := r.writeStatus(ctx, ps, owned, w, Decide(w, pets)); err != nil {
		t.Fatal(err)
	}
	written := ps.ResourceVersion
	if err := r.writeStatus(ctx, stale.DeepCopy(), owned, w, Decide(w, pets)); err != nil {
		t.Errorf("same status from a stale cache: %v, want no write", err)
	}
	var got v1alpha1.PetSet
	c.Get(ctx, key, &got)
	if got.ResourceVersion != written {
		t.Errorf("same status from a stale cache written again: resourceVersion %s, want %s", got.ResourceVersion, written)
	}

	owned[1] = statusPod(1, statusPet{"new", false, false})
	pets = append(pets, petOf(1, owned[1]))
	if err := r.writeStatus(ctx, stale.DeepCopy(), owned, w, Decide(w, pets)); err != nil {
		t.Errorf("new status from a stale cache: %v, want it written over the last write", err)
	}
	c.Get(ctx, key, &got)
	if got.Status.Replicas != 2 {
		t.Errorf("replicas %d, want 2", got.Status.Replicas)
	}

	// Someone else writes the set: a pass from the stale cache now gets
	// a conflict rather than overwriting what it has not seen.
	got.Annotations = map[string]string{"touched": "yes"}
	if err := c.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	owned[2] = statusPod(2, statusPet{"new", false, false})
	pets = append(pets, petOf(2, owned[2]))
	if err := r.writeStatus(ctx, stale.DeepCopy(), owned, w, Decide(w, pets)); !apierrors.IsConflict(err) {
		t.Errorf("new status from a stale cache after another write: %v, want a conflict", err)
	}
}

// A pass over a cache that has not seen the write that raised
// collisionCount reads the older count from the set; the count written
// stays the raised one (the e2e TestPetSetRevisionIdentity once saw it
// fall back to 0 this way).
func TestWriteStatusCollisionCountNeverFalls(t *testing.T) {
	ctx, c, r, ps, stale := staleCacheFixture(t)
	key := client.ObjectKeyFromObject(ps)
	owned := map[int]*corev1.Pod{0: statusPod(0, statusPet{"new", true, false})}
	one, zero := int32(1), int32(0)
	w := Want{Start: 0, End: 3, Revision: "new", RollingUpdate: true, MaxUnavailable: 1, Now: time.Now(), collisionCount: &one}
	pets := []Pet{petOf(0, owned[0])}
	if err := r.writeStatus(ctx, ps, owned, w, Decide(w, pets)); err != nil {
		t.Fatal(err)
	}
	// The next pass: the cache still has the set from before, so the
	// revisions were read with collisionCount 0; and a pet changed, so
	// there is something to write.
	w.collisionCount = &zero
	owned[1] = statusPod(1, statusPet{"new", false, false})
	pets = append(pets, petOf(1, owned[1]))
	if err := r.writeStatus(ctx, stale, owned, w, Decide(w, pets)); err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.PetSet
	if err := c.Get(ctx, key, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Replicas != 2 || got.Status.CollisionCount == nil || *got.Status.CollisionCount != 1 {
		t.Errorf("replicas %d, collisionCount %v; want 2 and 1", got.Status.Replicas, got.Status.CollisionCount)
	}
}

// staleCacheFixture stores a 3-pet set in a fake client and returns it
// read back, with a copy standing for what a lagging cache still holds.
func staleCacheFixture(t *testing.T) (context.Context, client.Client, *Reconciler, *v1alpha1.PetSet, *v1alpha1.PetSet) {
	t.Helper()
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	v1alpha1.AddToScheme(scheme)
	ps := testSet(3)
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.PetSet{}).WithObjects(ps).Build()
	ctx := context.Background()
	if err := c.Get(ctx, client.ObjectKeyFromObject(ps), ps); err != nil {
		t.Fatal(err)
	}
	return ctx, c, &Reconciler{Client: c}, ps, ps.DeepCopy()
}
