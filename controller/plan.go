package controller

import (
	"slices"
	"time"
)

// Pet is what the plan needs to know of one existing pod.
type Pet struct {
	Ordinal     int
	Revision    string
	Ready       bool // Running and Ready
	ReadySince  time.Time
	Terminating bool // deletion requested
	Finished    bool // Succeeded or Failed: it must be made again
}

// Want is what the plan needs to know of the spec.
type Want struct {
	Start, End int    // the ordinals wanted: [Start, End)
	Parallel   bool   // Parallel, not OrderedReady
	Revision   string // the update revision: the template in the spec
	// Current is the revision the pets had before the update in progress;
	// empty or equal to Revision when there is none.
	Current       string
	RollingUpdate bool // not OnDelete
	// Partition counts from Start, as StatefulSet's does: ordinals below
	// Start+Partition keep their revision.
	Partition      int
	MaxUnavailable int // at least 1
	MinReady       time.Duration
	Now            time.Time

	// collisionCount is carried from the revisions to status; the plan
	// does not use it.
	collisionCount *int32
}

// Plan is the next step: pets to create, and pets to delete (condemned,
// finished, or replaced by a rolling update). Deleting a pet of a wanted
// ordinal makes it come back, at the revision it is Due, on a later pass.
type Plan struct {
	Create []int
	Delete []int
	// Wait is why nothing more happens now; Kind WaitNone when nothing
	// holds the plan back.
	Wait Wait
	// Held are the pets taken out of Create because something outside
	// the plan holds their place (holdBack), in ascending order.
	Held []Wait
}

// waits is what the Ready condition names while the plan waits: the held
// pets, then the plan's own wait (but not "creating one pet at a time"
// when the one pet is held).
func (p Plan) waits() []Wait {
	out := slices.Clone(p.Held)
	if p.Wait.Kind != WaitNone && (len(p.Held) == 0 || p.Wait.Kind != WaitCreating) {
		out = append(out, p.Wait)
	}
	return out
}

// available reports whether a pet has been Ready for MinReady.
func (w Want) available(p Pet) bool {
	return p.Ready && !p.Terminating && (w.MinReady == 0 || !p.ReadySince.IsZero() && w.Now.Sub(p.ReadySince) >= w.MinReady)
}

// updateMin is the lowest ordinal a rolling update replaces: the partition
// counts from the start ordinal, as in StatefulSet.
func (w Want) updateMin() int {
	return w.Start + max(0, w.Partition)
}

// stuck reports whether old pet p at o is not Ready where the update revision
// is due: replacing it costs nothing, and waiting for it would block the
// rollout (one due the current revision would come back the same).
func (w Want) stuck(o int, p Pet, pets []Pet) bool {
	return w.RollingUpdate && o >= w.updateMin() && p.Revision != w.Revision && !p.Ready && !p.Terminating && w.Due(o, pets) == w.Revision
}

// Due is the revision pet o is made at, newVersionedStatefulSetPod's rule: the
// update revision, but under RollingUpdate the current one below the partition
// or below an old pet, so a pet made again never spreads a new template.
func (w Want) Due(o int, pets []Pet) string {
	if !w.RollingUpdate || w.Current == "" || w.Current == w.Revision {
		return w.Revision
	}
	if o < w.updateMin() {
		return w.Current
	}
	for _, p := range pets {
		if p.Ordinal > o && p.Ordinal < w.End && p.Revision != w.Revision {
			return w.Current
		}
	}
	return w.Revision
}

// Decide is the next step for want and the pets that exist, in StatefulSet's
// order: replace finished pets, create missing ones, delete condemned ones from
// the top, then replace old ones from the top down to the partition.
func Decide(w Want, pets []Pet) Plan {
	by := map[int]Pet{}
	for _, p := range pets {
		by[p.Ordinal] = p
	}
	var plan Plan

	// 1. Finished pets in range.
	for o := w.Start; o < w.End; o++ {
		if p, ok := by[o]; ok && p.Finished && !p.Terminating {
			plan.Delete = append(plan.Delete, o)
		}
	}
	if len(plan.Delete) > 0 {
		plan.Wait = Wait{Kind: WaitFinished, Ordinals: slices.Clone(plan.Delete)}
		return plan
	}

	// 2. Create.
	for o := w.Start; o < w.End; o++ {
		p, ok := by[o]
		if !ok {
			plan.Create = append(plan.Create, o)
			if !w.Parallel {
				plan.Wait = Wait{Kind: WaitCreating, Ordinals: []int{o}}
				return plan
			}
			continue
		}
		if !w.Parallel && !w.available(p) {
			if w.stuck(o, p, pets) {
				// An old pet that is not Ready would block the order
				// forever; replacing it is how the set recovers.
				plan.Delete = append(plan.Delete, o)
				return plan
			}
			plan.Wait = Wait{Kind: WaitAvailable, Ordinals: []int{o}}
			return plan
		}
	}
	if len(plan.Create) > 0 {
		return plan
	}

	// 3. Condemned, highest first.
	var condemned []int
	for _, p := range pets {
		if p.Ordinal < w.Start || p.Ordinal >= w.End {
			condemned = append(condemned, p.Ordinal)
		}
	}
	slices.Sort(condemned)
	slices.Reverse(condemned)
	for _, o := range condemned {
		if by[o].Terminating {
			if !w.Parallel {
				plan.Wait = Wait{Kind: WaitTerminating, Ordinals: []int{o}}
				return plan
			}
			continue
		}
		plan.Delete = append(plan.Delete, o)
		if !w.Parallel {
			return plan
		}
	}
	if len(plan.Delete) > 0 || len(condemned) > 0 {
		return plan
	}

	// 4. Rolling update.
	if !w.RollingUpdate {
		return plan
	}
	unavailable := 0
	for o := w.Start; o < w.End; o++ {
		if !w.available(by[o]) {
			unavailable++
		}
	}
	budget := max(1, w.MaxUnavailable)
	var held []int // Ready pets at an old revision the budget keeps up
	for o := w.End - 1; o >= w.updateMin(); o-- {
		p := by[o]
		if p.Revision == w.Revision {
			continue
		}
		if p.Terminating {
			// Already on its way out, and already counted in
			// unavailable: not twice.
			continue
		}
		if w.stuck(o, p, pets) {
			// Stuck on a broken revision: replacing it costs nothing.
			plan.Delete = append(plan.Delete, o)
			continue
		}
		if unavailable >= budget {
			// No more Ready pets go down now; stuck ones below still do.
			held = append(held, o)
			continue
		}
		plan.Delete = append(plan.Delete, o)
		unavailable++
	}
	if len(held) > 0 {
		// Every pet held back, highest first, in one reason.
		plan.Wait = Wait{Kind: WaitBudget, Ordinals: held, Unavailable: unavailable, MaxUnavailable: budget}
	}
	return plan
}

// notDone is what keeps a set from Ready when the plan waits for nothing
// (Parallel, OnDelete, a partition), from its pets alone, so a pass that
// creates or deletes pets says what the pass after it will.
func (w Want) notDone(pets []Pet) []Wait {
	var condemned, terminating, unavailable, onDelete, partitioned, old []int
	for _, p := range pets {
		o := p.Ordinal
		switch {
		case p.Terminating:
			terminating = append(terminating, o)
		case o < w.Start || o >= w.End:
			condemned = append(condemned, o)
		case !w.available(p):
			unavailable = append(unavailable, o)
		}
		if o < w.Start || o >= w.End || p.Terminating || p.Revision == w.Revision {
			continue
		}
		switch {
		case !w.RollingUpdate:
			onDelete = append(onDelete, o)
		case o < w.updateMin():
			partitioned = append(partitioned, o)
		default:
			old = append(old, o)
		}
	}
	var out []Wait
	add := func(kind WaitKind, os []int) {
		if len(os) > 0 {
			slices.Sort(os)
			out = append(out, Wait{Kind: kind, Ordinals: os})
		}
	}
	add(WaitTerminating, terminating)
	add(WaitCondemned, condemned)
	add(WaitAvailable, unavailable)
	add(WaitPartition, partitioned)
	add(WaitOnDelete, onDelete)
	add(WaitNotUpdated, old)
	return out
}
