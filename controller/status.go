package controller

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// computeStatus is ps's status for the pets owned (those the pass made counted
// in), want and the plan, with conds beside Ready, counted as StatefulSet's
// computeReplicaStatus and completeRollingUpdate count.
func computeStatus(ps *v1alpha1.PetSet, owned map[int]*corev1.Pod, want Want, plan Plan, conds ...*metav1.Condition) v1alpha1.PetSetStatus {
	base := ps.Status
	st := v1alpha1.PetSetStatus{
		ObservedGeneration: ps.Generation,
		UpdateRevision:     want.Revision,
		CurrentRevision:    cmp.Or(want.Current, base.CurrentRevision),
		CollisionCount:     want.collisionCount,
		Conditions:         slices.Clone(base.Conditions),
	}
	if sel, err := metav1.LabelSelectorAsSelector(ps.Spec.Selector); err == nil {
		st.Selector = sel.String()
	}
	ordinals := slices.Sorted(maps.Keys(owned))
	pets := make([]Pet, 0, len(ordinals))
	// Current and updated count only pets that are not Terminating.
	revisions := map[string]int32{}
	terminating := 0
	for _, o := range ordinals {
		pod := owned[o]
		pet := petOf(o, pod)
		pets = append(pets, pet)
		st.Replicas++
		if pet.Terminating {
			terminating++
		} else {
			revisions[pet.Revision]++
		}
		if pet.Ready {
			st.ReadyReplicas++
		}
		if want.available(pet) {
			st.AvailableReplicas++
		}
		m := v1alpha1.Member{Ordinal: int32(o), Pod: pod.Name, Ready: pet.Ready, Revision: pet.Revision}
		for _, t := range ps.Spec.VolumeClaimTemplates {
			m.Claims = append(m.Claims, ClaimName(t.Name, ps.Name, o))
		}
		st.Members = append(st.Members, m)
	}
	st.UpdatedReplicas = revisions[want.Revision]
	// The update is complete when every pet is at the update revision
	// and Ready (Parallel does not wait for readiness, so it is checked
	// here), and none is Terminating.
	n := want.End - want.Start
	waits := plan.waits()
	done := len(plan.Create) == 0 && len(plan.Delete) == 0 && len(waits) == 0 && terminating == 0 &&
		int(st.UpdatedReplicas) == n && int(st.Replicas) == n && int(st.ReadyReplicas) == n
	// Under OnDelete the current revision stays until its pets are gone,
	// as in StatefulSet, however many were made again at the update
	// revision.
	if st.CurrentRevision == "" || done && want.RollingUpdate {
		st.CurrentRevision = want.Revision
	}
	st.CurrentReplicas = revisions[st.CurrentRevision]

	if len(waits) == 0 && !done {
		// The plan waits for nothing, yet the set is not Ready: say
		// what keeps it so.
		waits = want.notDone(pets)
	}
	ready := metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Progressing", Message: message(waits)}
	if done {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, "AllPetsReady", strconv.Itoa(int(st.ReadyReplicas))+" pets ready"
	}
	for _, c := range append([]*metav1.Condition{&ready}, conds...) {
		if c == nil {
			continue
		}
		c := *c
		c.ObservedGeneration = ps.Generation
		if c.LastTransitionTime.IsZero() && !want.Now.IsZero() {
			c.LastTransitionTime = metav1.NewTime(want.Now)
		}
		meta.SetStatusCondition(&st.Conditions, c)
	}
	return st
}

// DefaultStatusInterval is the StatusInterval the controller runs with.
const DefaultStatusInterval = time.Second

// statusWrite is when this process last wrote the status of the set
// with uid.
type statusWrite struct {
	uid types.UID
	at  time.Time
}

// writeStatus writes st unless ps has it, at most once per StatusInterval:
// within it, it returns how long to wait, so a burst of changes is one write.
// Over a set the cache has not updated the write is refused (409), and retried.
func (r *Reconciler) writeStatus(ctx context.Context, ps *v1alpha1.PetSet, st v1alpha1.PetSetStatus) (time.Duration, error) {
	if equality.Semantic.DeepEqual(ps.Status, st) {
		return 0, nil
	}
	key := client.ObjectKeyFromObject(ps)
	if v, ok := r.written.Load(key); ok && v.(statusWrite).uid == ps.UID && r.StatusInterval > 0 {
		if d := v.(statusWrite).at.Add(r.StatusInterval).Sub(r.now()); d > 0 {
			return d, nil
		}
	}
	ps = ps.DeepCopy()
	ps.Status = st
	if err := r.Status().Update(ctx, ps); err != nil {
		return 0, err
	}
	r.written.Store(key, statusWrite{uid: ps.UID, at: r.now()})
	return 0, nil
}
