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

// computeStatus is the status of ps with the pets owned (those the pass
// created counted in), for want and the pass's plan, with conds set
// beside Ready. It builds on ps.Status: conditions keep their transition
// times, and the current revision and collision count never go back.
// Counts are StatefulSet's (computeReplicaStatus, completeRollingUpdate).
func computeStatus(ps *v1alpha1.PetSet, owned map[int]*corev1.Pod, want Want, plan Plan, conds ...*metav1.Condition) v1alpha1.PetSetStatus {
	base := ps.Status
	st := v1alpha1.PetSetStatus{
		ObservedGeneration: ps.Generation,
		UpdateRevision:     want.Revision,
		CurrentRevision:    cmp.Or(want.Current, base.CurrentRevision),
		CollisionCount:     want.collisionCount,
		Conditions:         slices.Clone(base.Conditions),
	}
	// A pass over a cache that has not seen the write that raised the
	// count read the older one.
	if b := base.CollisionCount; b != nil && (st.CollisionCount == nil || *st.CollisionCount < *b) {
		st.CollisionCount = b
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

// statusWrite is the last status written for the set with uid, at: it
// made resourceVersion to; before are the set's resourceVersions this
// process saw (or wrote over) until then, which a lagging cache may still
// hold.
type statusWrite struct {
	uid    types.UID
	at     time.Time
	before []string
	to     string
	status v1alpha1.PetSetStatus
}

// lastWritten returns ps as this process last wrote it when the cache
// ps was read from has not seen that write yet, else ps itself: the
// status to build on and compare with is then that write, and the same
// status is not written twice (which would only be answered 409).
func (r *Reconciler) lastWritten(ps *v1alpha1.PetSet) *v1alpha1.PetSet {
	v, ok := r.written.Load(client.ObjectKeyFromObject(ps))
	if !ok {
		return ps
	}
	w := v.(statusWrite)
	if w.uid != ps.UID || !slices.Contains(w.before, ps.ResourceVersion) {
		return ps
	}
	out := ps.DeepCopy()
	out.Status, out.ResourceVersion = *w.status.DeepCopy(), w.to
	return out
}

// writeStatus writes st over the status of base, the set as lastWritten
// returned it for cached, unless it has st already. Over the
// resourceVersion of the last write when the cache lags behind it: if
// nothing else has written since, no 409.
//
// Within StatusInterval of the set's last write it writes nothing and
// returns how long until it may: the pass after that writes what has
// changed by then, so a burst of pod changes costs one write per
// interval however the passes fall in it.
func (r *Reconciler) writeStatus(ctx context.Context, cached, base *v1alpha1.PetSet, st v1alpha1.PetSetStatus) (time.Duration, error) {
	if equality.Semantic.DeepEqual(base.Status, st) {
		return 0, nil
	}
	key := client.ObjectKeyFromObject(cached)
	last, seen := r.written.Load(key)
	if seen && last.(statusWrite).uid == cached.UID && r.StatusInterval > 0 {
		if d := last.(statusWrite).at.Add(r.StatusInterval).Sub(r.now()); d > 0 {
			return d, nil
		}
	}
	var before []string
	if base != cached {
		before = slices.Clone(last.(statusWrite).before)
	}
	before = append(before, cached.ResourceVersion)
	if base.ResourceVersion != cached.ResourceVersion {
		before = append(before, base.ResourceVersion)
	}
	if len(before) > 8 {
		before = before[len(before)-8:]
	}
	ps := base.DeepCopy()
	ps.Status = st
	if err := r.Status().Update(ctx, ps); err != nil {
		return 0, err
	}
	r.written.Store(key, statusWrite{uid: ps.UID, at: r.now(), before: before, to: ps.ResourceVersion, status: *st.DeepCopy()})
	return 0, nil
}
