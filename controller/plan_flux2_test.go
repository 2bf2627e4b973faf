package controller

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// fluxPet is a pet in the second convergence model: the plan's view, the
// steps until a new pod is Ready or a Terminating one is gone, and ours:
// whether it is down (or a new pod not yet available) by the plan's own
// doing, a pet taken down while available, one made in its place, or
// one made at an ordinal that had none. A pet that finishes, or an old
// one stuck not Ready, is down by no doing of the plan; its replacement
// is not counted as the plan's either.
type fluxPet struct {
	Pet
	readyIn, goneIn int
	ours            bool
}

// The convergence model with what the first one (TestDecideConvergesWithFlux)
// leaves out: a partition, minReadySeconds on a clock (one step is one
// second, a pet is available MinReadySeconds after it turned Ready), pods
// that finish (Succeeded or Failed) during the first steps, and pets made
// at the revision they are Due, from a current revision "old". After
// every step these must hold, and each can fail:
//   - under OrderedReady, the pets in flux by the plan's doing (Terminating,
//     or made and not yet available) are never more than
//     max(1, MaxUnavailable): with the default, never two;
//   - nothing below the partition is updated: no pet in range below
//     ordinals.start+partition is at the update revision, and none is
//     deleted unless it finished;
//   - OrderedReady makes pet o only when every wanted pet below it is
//     available (Ready for MinReadySeconds);
//   - a rolling update takes available pets down only within
//     MaxUnavailable, counting every unavailable wanted pet;
//   - a pet at the update revision is deleted only when it finished or is
//     condemned.
//
// and the set converges: every wanted pet Ready, at "new" from the
// partition up and at "old" below it, nothing else left.
func TestDecideConvergesWithPartitionMinReadyFinished(t *testing.T) {
	for seed := uint64(0); seed < 12; seed++ {
		rng := rand.New(rand.NewPCG(seed, 80))
		for start := 0; start < 3; start++ {
			for end := start; end < 7; end++ {
				for _, parallel := range []bool{false, true} {
					for _, maxUnavailable := range []int{1, 2} {
						for _, partition := range []int{0, 2} {
							for _, minReady := range []time.Duration{0, 2 * time.Second} {
								w := Want{Start: start, End: end, Parallel: parallel, Revision: "new", Current: "old", RollingUpdate: true,
									MaxUnavailable: maxUnavailable, Partition: partition, MinReadySeconds: minReady}
								simulateFlux(t, fmt.Sprintf("seed %d %+v", seed, w), w, rng)
							}
						}
					}
				}
			}
		}
	}
}

func simulateFlux(t *testing.T, name string, w Want, rng *rand.Rand) {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	have := map[int]*fluxPet{}
	for o := range 5 {
		// Old pets, some slow to become Ready (not by the plan's doing).
		p := &fluxPet{Pet: Pet{Ordinal: o, Revision: "old", Ready: true, ReadySince: t0.Add(-time.Hour)}}
		if rng.IntN(3) == 0 {
			p.Ready, p.ReadySince, p.readyIn = false, time.Time{}, 2+rng.IntN(6)
		}
		have[o] = p
	}
	notOurs := map[int]bool{} // ordinals whose pet went down by no doing of the plan
	inRange := func(o int) bool { return o >= w.Start && o < w.End }
	below := func(o int) bool { return inRange(o) && o < w.updateMin() }
	show := func() string {
		var b []string
		for _, o := range slices.Sorted(maps.Keys(have)) {
			p := have[o]
			s := fmt.Sprintf("%d:%s", o, p.Revision)
			switch {
			case p.Terminating:
				s += "/terminating"
			case p.Finished:
				s += "/finished"
			case !p.Ready:
				s += "/notready"
			case !w.available(p.Pet):
				s += "/notavailable"
			}
			if p.ours {
				s += "*"
			}
			b = append(b, s)
		}
		return fmt.Sprint(b)
	}
	for step := 0; ; step++ {
		if step > 600 {
			t.Fatalf("%s: no convergence: %s", name, show())
		}
		w.Now = t0.Add(time.Duration(step) * time.Second)
		var list []Pet
		for _, p := range have {
			list = append(list, p.Pet)
		}
		plan := Decide(w, list)

		done := len(have) == w.End-w.Start
		for o, p := range have {
			want := "new"
			if below(o) {
				want = "old"
			}
			done = done && inRange(o) && p.Revision == want && w.available(p.Pet) && !p.Finished
		}
		if done {
			if len(plan.Create)+len(plan.Delete) > 0 {
				t.Fatalf("%s: converged, yet the plan does %+v", name, plan)
			}
			return
		}

		unavailable := 0
		for o := w.Start; o < w.End; o++ {
			if p, ok := have[o]; !ok || !w.available(p.Pet) {
				unavailable++
			}
		}
		takenDown := 0
		for _, o := range plan.Delete {
			p, ok := have[o]
			if !ok || p.Terminating {
				t.Fatalf("%s step %d: deletes %d, missing or already terminating: %s", name, step, o, show())
			}
			if below(o) && !p.Finished {
				t.Fatalf("%s step %d: deletes %d below the partition (%d), which did not finish: %s", name, step, o, w.updateMin(), show())
			}
			if inRange(o) && p.Revision == w.Revision && !p.Finished {
				t.Fatalf("%s step %d: deletes wanted pet %d at the update revision: %s", name, step, o, show())
			}
			if inRange(o) && w.available(p.Pet) {
				takenDown++
			}
		}
		if takenDown > 0 && unavailable+takenDown > max(1, w.MaxUnavailable) {
			t.Fatalf("%s step %d: takes %d available pets down with %d unavailable, MaxUnavailable %d: %s",
				name, step, takenDown, unavailable, w.MaxUnavailable, show())
		}
		if !w.Parallel {
			for _, o := range plan.Create {
				for q := w.Start; q < o; q++ {
					if p, ok := have[q]; !ok || !w.available(p.Pet) {
						t.Fatalf("%s step %d: OrderedReady makes %d before %d is available: %s", name, step, o, q, show())
					}
				}
			}
		}

		// Do the plan: each pet made at the revision it is Due, as the
		// reconciler makes it.
		for _, o := range plan.Delete {
			p := have[o]
			p.ours = w.available(p.Pet)
			p.Terminating, p.Ready, p.goneIn = true, false, rng.IntN(3)
		}
		for _, o := range plan.Create {
			if _, ok := have[o]; ok {
				t.Fatalf("%s step %d: makes %d, which exists", name, step, o)
			}
			have[o] = &fluxPet{Pet: Pet{Ordinal: o, Revision: w.Due(o, list)}, readyIn: rng.IntN(3), ours: !notOurs[o]}
			delete(notOurs, o)
		}
		// Invariants of the state the plan made.
		flux := 0
		for o, p := range have {
			if below(o) && p.Revision == w.Revision {
				t.Fatalf("%s step %d: pet %d below the partition (%d) is at the update revision: %s", name, step, o, w.updateMin(), show())
			}
			if p.ours && (p.Terminating || !w.available(p.Pet)) {
				flux++
			}
		}
		if !w.Parallel && flux > max(1, w.MaxUnavailable) {
			t.Fatalf("%s step %d: OrderedReady has %d pets in flux by its own doing, MaxUnavailable %d: %s", name, step, flux, w.MaxUnavailable, show())
		}

		// A second passes.
		next := w.Now.Add(time.Second)
		for o, p := range have {
			switch {
			case p.Terminating:
				if p.goneIn--; p.goneIn < 0 {
					delete(have, o)
					if !p.ours {
						notOurs[o] = true
					}
				}
			case p.Finished:
			case !p.Ready:
				if p.readyIn--; p.readyIn < 0 {
					p.Ready, p.ReadySince = true, next
				}
			case step < 40 && rng.IntN(30) == 0:
				// It finishes (Succeeded or Failed): down by no doing
				// of the plan.
				p.Finished, p.Ready, p.ours = true, false, false
			}
		}
	}
}
