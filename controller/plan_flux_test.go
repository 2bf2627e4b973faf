package controller

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// simPet is a pet in the convergence simulation: the plan's view, and how
// many more steps it takes to become Ready (a new pod) or to go away (a
// Terminating one).
type simPet struct {
	Pet
	readyIn, goneIn int
}

// fluxOf says whether a pet is in flux: Terminating, or not Ready.
func fluxOf(p Pet) bool { return p.Terminating || !p.Ready }

// The plan converges when pods take time: a deleted pet stays Terminating
// for a few steps, a created one is not Ready for a few. At every step the
// plan is checked against the StatefulSet controller's guarantees:
//   - nothing wanted at the update revision is deleted unless finished;
//   - OrderedReady creates pet o only when every wanted pet below it is
//     available, and fewer than MaxUnavailable other wanted pets are in
//     flux (an old pet that is not Ready is stuck, down already, not in
//     flux);
//   - OrderedReady takes a Ready pet down (scale-down or update) only
//     when fewer than MaxUnavailable others are in flux (wanted pets in
//     flux, condemned ones terminating): with MaxUnavailable 1, never two
//     pets in flux by its own doing. Condemned pets that are not Ready do
//     not hold a scale-down back (nor do they for the StatefulSet
//     controller, which deletes a Ready condemned pod above an unhealthy
//     one);
//   - a rolling update takes Ready pets down only within MaxUnavailable.
//
// Random delays, seeded, so a failure names a reproducible case.
func TestDecideConvergesWithFlux(t *testing.T) {
	for seed := uint64(0); seed < 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 8))
		for start := 0; start < 3; start++ {
			for end := start; end < 6; end++ {
				for _, parallel := range []bool{false, true} {
					for _, maxUnavailable := range []int{1, 2} {
						w := Want{Start: start, End: end, Parallel: parallel, Revision: "new", RollingUpdate: true, MaxUnavailable: maxUnavailable}
						name := fmt.Sprintf("seed %d %+v", seed, w)
						simulate(t, name, w, rng)
					}
				}
			}
		}
	}
}

func simulate(t *testing.T, name string, w Want, rng *rand.Rand) {
	t.Helper()
	have := map[int]*simPet{}
	for o := range 5 {
		// Old pets, some not Ready (stuck on a broken revision).
		have[o] = &simPet{Pet: Pet{Ordinal: o, Revision: "old", Ready: rng.IntN(3) > 0}}
	}
	inRange := func(o int) bool { return o >= w.Start && o < w.End }
	for step := 0; ; step++ {
		if step > 500 {
			t.Fatalf("%s: no convergence: %v", name, dump(have))
		}
		var list []Pet
		for _, p := range have {
			list = append(list, p.Pet)
		}
		plan := Decide(w, list)
		done := len(have) == w.End-w.Start
		for o, p := range have {
			done = done && inRange(o) && p.Revision == "new" && p.Ready && !p.Terminating
		}
		if done {
			if len(plan.Create)+len(plan.Delete) > 0 {
				t.Fatalf("%s: converged, yet the plan does %+v", name, plan)
			}
			return
		}

		fluxOthers := func(o int, onlyInRange bool) []int {
			var out []int
			for q, p := range have {
				// An old pet that is not Ready is stuck, not in flux:
				// it is down already and replaced at once.
				stuck := !p.Ready && !p.Terminating && p.Revision != w.Revision
				if q != o && fluxOf(p.Pet) && !stuck && (!onlyInRange || inRange(q)) {
					out = append(out, q)
				}
			}
			slices.Sort(out)
			return out
		}
		unavailable := 0
		for o := w.Start; o < w.End; o++ {
			if p, ok := have[o]; !ok || fluxOf(p.Pet) {
				unavailable++
			}
		}
		takenDown := 0
		for _, o := range plan.Delete {
			p, ok := have[o]
			if !ok || p.Terminating {
				t.Fatalf("%s step %d: deletes %d, which is missing or already terminating: %v", name, step, o, dump(have))
			}
			if inRange(o) && p.Revision == w.Revision && !p.Finished {
				t.Fatalf("%s step %d: deleted wanted pet %d at the update revision", name, step, o)
			}
			if fluxOf(p.Pet) {
				continue // already down: replacing it costs nothing
			}
			if inRange(o) {
				takenDown++
			}
			if !w.Parallel {
				f := fluxOthers(o, true)
				for q, p := range have {
					if p.Terminating && !inRange(q) {
						f = append(f, q)
					}
				}
				if len(f) >= w.MaxUnavailable {
					t.Fatalf("%s step %d: OrderedReady takes Ready pet %d down while %v are in flux: %v", name, step, o, f, dump(have))
				}
			}
		}
		if takenDown > 0 && unavailable+takenDown > w.MaxUnavailable {
			t.Fatalf("%s step %d: takes %d Ready pets down with %d unavailable, MaxUnavailable %d: %v",
				name, step, takenDown, unavailable, w.MaxUnavailable, dump(have))
		}
		if !w.Parallel {
			for _, o := range plan.Create {
				for q := w.Start; q < o; q++ {
					if p, ok := have[q]; !ok || fluxOf(p.Pet) {
						t.Fatalf("%s step %d: OrderedReady creates %d before %d is available: %v", name, step, o, q, dump(have))
					}
				}
				if f := fluxOthers(o, true); len(f) >= w.MaxUnavailable {
					t.Fatalf("%s step %d: OrderedReady creates %d while %v are in flux: %v", name, step, o, f, dump(have))
				}
			}
		}

		// Do the plan.
		for _, o := range plan.Delete {
			have[o].Terminating, have[o].Ready, have[o].goneIn = true, false, rng.IntN(3)
		}
		for _, o := range plan.Create {
			if _, ok := have[o]; ok {
				t.Fatalf("%s step %d: creates %d, which exists", name, step, o)
			}
			have[o] = &simPet{Pet: Pet{Ordinal: o, Revision: "new"}, readyIn: rng.IntN(3)}
		}
		// Time passes.
		for o, p := range have {
			switch {
			case p.Terminating:
				if p.goneIn--; p.goneIn < 0 {
					delete(have, o)
				}
			case !p.Ready && p.Revision == "new":
				if p.readyIn--; p.readyIn < 0 {
					p.Ready = true
				}
			}
		}
	}
}

func dump(have map[int]*simPet) string {
	var keys []int
	for o := range have {
		keys = append(keys, o)
	}
	slices.Sort(keys)
	s := ""
	for _, o := range keys {
		p := have[o]
		s += fmt.Sprintf(" %d:%s", o, p.Revision)
		switch {
		case p.Terminating:
			s += "/terminating"
		case !p.Ready:
			s += "/notready"
		}
	}
	return s
}
