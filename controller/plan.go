package controller

import (
	"slices"
	"strconv"
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
	Start, End      int  // the ordinals wanted: [Start, End)
	Parallel        bool // Parallel, not OrderedReady
	Revision        string
	RollingUpdate   bool // not OnDelete
	Partition       int  // ordinals below it keep their revision
	MaxUnavailable  int  // at least 1
	MinReadySeconds time.Duration
	Now             time.Time
}

// Plan is the next step: pets to create, and pets to delete (condemned,
// finished, or replaced by a rolling update). Deleting a pet of a wanted
// ordinal makes it come back, at the new revision, on a later pass.
type Plan struct {
	Create []int
	Delete []int
	// Wait says why nothing more happens now, for logs and conditions.
	Wait string
}

// available reports whether a pet has been Ready for MinReadySeconds.
func (w Want) available(p Pet) bool {
	return p.Ready && !p.Terminating && (w.MinReadySeconds == 0 || !p.ReadySince.IsZero() && w.Now.Sub(p.ReadySince) >= w.MinReadySeconds)
}

// stuck reports whether pet p at ordinal o is at an old revision and not
// Ready, where a rolling update may replace it.
func (w Want) stuck(o int, p Pet) bool {
	return w.RollingUpdate && o >= w.Partition && p.Revision != w.Revision && !p.Ready && !p.Terminating
}

// Decide computes the next step for want, given the pets that exist. It is
// the StatefulSet controller's order:
//
//  1. finished pets in range are deleted, so they come back;
//  2. missing pets are created in ascending order (Parallel: all at once;
//     OrderedReady: one, and only when every lower pet is available);
//  3. pets outside the range are deleted from the highest ordinal down
//     (OrderedReady: one at a time, only when all others are available);
//  4. with everything in place and available, pets at an old revision are
//     deleted from the highest ordinal down to the partition, at most
//     MaxUnavailable at a time; an old pet that is not Ready is replaced
//     at once, so a rollout stuck on a broken revision recovers when the
//     template is fixed.
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
		plan.Wait = "replacing finished pets"
		return plan
	}

	// 2. Create.
	for o := w.Start; o < w.End; o++ {
		p, ok := by[o]
		if !ok {
			plan.Create = append(plan.Create, o)
			if !w.Parallel {
				plan.Wait = "creating one pet at a time"
				return plan
			}
			continue
		}
		if !w.Parallel && !w.available(p) {
			if w.stuck(o, p) {
				// An old pet that is not Ready would block the order
				// forever; replacing it is how the set recovers.
				plan.Delete = append(plan.Delete, o)
				return plan
			}
			plan.Wait = "waiting for " + strconv.Itoa(o) + " to be available"
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
				plan.Wait = "waiting for " + strconv.Itoa(o) + " to terminate"
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
	for o := w.End - 1; o >= max(w.Start, w.Partition); o-- {
		p := by[o]
		if p.Revision == w.Revision {
			continue
		}
		if p.Terminating {
			budget-- // already on its way out
			continue
		}
		if w.stuck(o, p) {
			// Stuck on a broken revision: replacing it costs nothing.
			plan.Delete = append(plan.Delete, o)
			continue
		}
		if unavailable >= budget {
			// No more Ready pets go down now; stuck ones below still do.
			plan.Wait = "waiting for unavailable pets before updating " + strconv.Itoa(o)
			continue
		}
		plan.Delete = append(plan.Delete, o)
		unavailable++
	}
	return plan
}
