package controller

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

func pets(rev string, ready bool, ordinals ...int) []Pet {
	var out []Pet
	for _, o := range ordinals {
		out = append(out, Pet{Ordinal: o, Revision: rev, Ready: ready})
	}
	return out
}

func waitOf(kind WaitKind, ordinals ...int) Wait { return Wait{Kind: kind, Ordinals: ordinals} }

func TestDecide(t *testing.T) {
	now := time.Now()
	ordered := Want{Start: 0, End: 3, Revision: "r2", RollingUpdate: true, MaxUnavailable: 1, Now: now}
	parallel := ordered
	parallel.Parallel = true
	with := func(w Want, f func(*Want)) Want { f(&w); return w }
	tests := []struct {
		name   string
		want   Want
		pets   []Pet
		create []int
		delete []int
		wait   Wait
	}{
		{name: "empty ordered: create the lowest", want: ordered, create: []int{0}, wait: waitOf(WaitCreating, 0)},
		{name: "empty parallel: create all", want: parallel, create: []int{0, 1, 2}},
		{name: "ordered waits for the lower pet", want: ordered, pets: pets("r2", false, 0), wait: waitOf(WaitAvailable, 0)},
		{name: "ordered creates the next once ready", want: ordered, pets: pets("r2", true, 0), create: []int{1}, wait: waitOf(WaitCreating, 1)},
		{name: "ordered fills a hole first", want: ordered, pets: pets("r2", true, 0, 2), create: []int{1}, wait: waitOf(WaitCreating, 1)},
		{name: "parallel does not wait", want: parallel, pets: pets("r2", false, 0), create: []int{1, 2}},
		{name: "ordinals start", want: with(ordered, func(w *Want) { w.Start, w.End = 5, 7 }), create: []int{5}, wait: waitOf(WaitCreating, 5)},
		{name: "scale down: highest first, one at a time", want: ordered, pets: pets("r2", true, 0, 1, 2, 3, 4), delete: []int{4}},
		{name: "scale down waits for a terminating pet", want: ordered,
			pets: append(pets("r2", true, 0, 1, 2, 3), Pet{Ordinal: 4, Revision: "r2", Ready: true, Terminating: true}), wait: waitOf(WaitTerminating, 4)},
		{name: "scale down waits until all are available", want: ordered, pets: append(pets("r2", true, 0, 2, 3), Pet{Ordinal: 1, Revision: "r2"}), wait: waitOf(WaitAvailable, 1)},
		{name: "parallel scale down: all condemned", want: parallel, pets: pets("r2", true, 0, 1, 2, 3, 4), delete: []int{4, 3}},
		{name: "below start is condemned too", want: with(ordered, func(w *Want) { w.Start, w.End = 1, 3 }), pets: pets("r2", true, 0, 1, 2), delete: []int{0}},
		{name: "finished pet is replaced", want: ordered, pets: append(pets("r2", true, 0, 2), Pet{Ordinal: 1, Revision: "r2", Finished: true}), delete: []int{1}, wait: waitOf(WaitFinished, 1)},
		{name: "rolling update: highest first", want: ordered, pets: pets("r1", true, 0, 1, 2), delete: []int{2},
			wait: Wait{Kind: WaitBudget, Ordinals: []int{1, 0}, Unavailable: 1, MaxUnavailable: 1}},
		{name: "rolling update: one unavailable at a time", want: ordered, pets: append(pets("r1", true, 0, 1), Pet{Ordinal: 2, Revision: "r2"}),
			wait: waitOf(WaitAvailable, 2)},
		{name: "rolling update: continues down", want: ordered, pets: append(pets("r1", true, 0, 1), pets("r2", true, 2)...), delete: []int{1},
			wait: Wait{Kind: WaitBudget, Ordinals: []int{0}, Unavailable: 1, MaxUnavailable: 1}},
		{name: "rolling update: maxUnavailable 2", want: with(ordered, func(w *Want) { w.MaxUnavailable = 2 }), pets: pets("r1", true, 0, 1, 2), delete: []int{2, 1},
			wait: Wait{Kind: WaitBudget, Ordinals: []int{0}, Unavailable: 2, MaxUnavailable: 2}},
		// A Terminating pet is one unavailable pet, counted once (as in
		// StatefulSet's updateStatefulSetAfterInvariantEstablished): with
		// maxUnavailable 2 one more pet may go.
		{name: "rolling update: terminating pet counted once", want: with(parallel, func(w *Want) { w.MaxUnavailable = 2 }),
			pets: append(pets("r1", true, 0, 1), Pet{Ordinal: 2, Revision: "r1", Ready: true, Terminating: true}), delete: []int{1},
			wait: Wait{Kind: WaitBudget, Ordinals: []int{0}, Unavailable: 2, MaxUnavailable: 2}},
		{name: "rolling update: terminating and unavailable fill the budget", want: with(parallel, func(w *Want) { w.MaxUnavailable = 2 }),
			pets: append(pets("r1", true, 0), Pet{Ordinal: 1, Revision: "r2"}, Pet{Ordinal: 2, Revision: "r1", Ready: true, Terminating: true}),
			wait: Wait{Kind: WaitBudget, Ordinals: []int{0}, Unavailable: 2, MaxUnavailable: 2}},
		{name: "rolling update: partition", want: with(ordered, func(w *Want) { w.Partition = 2 }), pets: append(pets("r1", true, 0, 1), pets("r2", true, 2)...)},
		{name: "on delete: nothing", want: with(ordered, func(w *Want) { w.RollingUpdate = false }), pets: pets("r1", true, 0, 1, 2)},
		// StatefulSet counts the partition from the start ordinal: with
		// start 5, replicas 3 and partition 2 only ordinal 7 is updated.
		{name: "partition counts from the start ordinal", want: with(ordered, func(w *Want) { w.Start, w.End, w.Partition = 5, 8, 2 }),
			pets: pets("r1", true, 5, 6, 7), delete: []int{7}},
		{name: "partition from the start ordinal: 6 stays", want: with(ordered, func(w *Want) { w.Start, w.End, w.Partition = 5, 8, 2 }),
			pets: append(pets("r1", true, 5, 6), pets("r2", true, 7)...)},
		{name: "partition from the start ordinal: stuck pet below it stays", want: with(ordered, func(w *Want) { w.Start, w.End, w.Partition, w.Parallel = 5, 8, 2, true }),
			pets: append(append(pets("r1", true, 5), pets("r2", true, 7)...), Pet{Ordinal: 6, Revision: "r1"})},
		{name: "stuck rollout: a broken old pet is replaced", want: ordered,
			pets: append(pets("r2", true, 0, 1), Pet{Ordinal: 2, Revision: "r1"}), delete: []int{2}},
		{name: "stuck rollout, ordered: broken old pet below others", want: ordered,
			pets: append(pets("r1", true, 0, 2), Pet{Ordinal: 1, Revision: "r1"}), delete: []int{1}},
		{name: "broken pet of the current revision is waited for", want: ordered,
			pets: append(pets("r2", true, 0, 2), Pet{Ordinal: 1, Revision: "r2"}), wait: waitOf(WaitAvailable, 1)},
		{name: "stuck below the partition is left alone", want: with(ordered, func(w *Want) { w.Partition = 2 }),
			pets: append(pets("r1", true, 0, 2), Pet{Ordinal: 1, Revision: "r1"}), wait: waitOf(WaitAvailable, 1)},
		{name: "minReadySeconds: not yet available", want: with(ordered, func(w *Want) { w.MinReady = time.Minute }),
			pets: []Pet{{Ordinal: 0, Revision: "r2", Ready: true, ReadySince: now.Add(-time.Second)}}, wait: waitOf(WaitAvailable, 0)},
		{name: "minReadySeconds: available", want: with(ordered, func(w *Want) { w.MinReady = time.Minute }),
			pets: []Pet{{Ordinal: 0, Revision: "r2", Ready: true, ReadySince: now.Add(-2 * time.Minute)}}, create: []int{1},
			wait: waitOf(WaitCreating, 1)},
	}
	for _, tc := range tests {
		p := Decide(tc.want, tc.pets)
		if !slices.Equal(p.Create, tc.create) || !slices.Equal(p.Delete, tc.delete) {
			t.Errorf("%s: create %v delete %v (wait %q); want create %v delete %v", tc.name, p.Create, p.Delete, p.Wait.String(), tc.create, tc.delete)
		}
		if !reflect.DeepEqual(p.Wait, tc.wait) {
			t.Errorf("%s: wait %+v, want %+v", tc.name, p.Wait, tc.wait)
		}
	}
}

// Driving the plan to its end from any start always reaches the wanted
// set, never deletes a wanted pet at the current revision, and in
// OrderedReady mode never has two pets in flux at once.
func TestDecideConverges(t *testing.T) {
	for start := 0; start < 6; start++ {
		for end := start; end < 6; end++ {
			for _, parallel := range []bool{false, true} {
				w := Want{Start: start, End: end, Parallel: parallel, Revision: "new", RollingUpdate: true, MaxUnavailable: 1}
				have := map[int]Pet{}
				for o := range 5 {
					have[o] = Pet{Ordinal: o, Revision: "old", Ready: o%2 == 0}
				}
				for step := 0; ; step++ {
					if step > 100 {
						t.Fatalf("%+v: no convergence", w)
					}
					var list []Pet
					for _, p := range have {
						list = append(list, p)
					}
					p := Decide(w, list)
					if len(p.Create) == 0 && len(p.Delete) == 0 {
						break
					}
					if !parallel && len(p.Create)+len(p.Delete) > 1 && !allOld(have, p.Delete) {
						t.Fatalf("%+v step %d: ordered plan does %v and %v at once", w, step, p.Create, p.Delete)
					}
					for _, o := range p.Delete {
						if o >= start && o < end && have[o].Revision == "new" && !have[o].Finished {
							t.Fatalf("%+v: deleted wanted pet %d at the current revision", w, o)
						}
						delete(have, o)
					}
					for _, o := range p.Create {
						have[o] = Pet{Ordinal: o, Revision: "new", Ready: true}
					}
				}
				if len(have) != end-start {
					t.Fatalf("%+v: ended with %v", w, have)
				}
				for o, p := range have {
					if o < start || o >= end || p.Revision != "new" || !p.Ready {
						t.Fatalf("%+v: ended with %s", w, fmt.Sprint(have))
					}
				}
			}
		}
	}
}

// From pets at the current revision, half not Ready, with new pets made at the
// revision they are Due: the set reaches the update revision, and a pet made
// at the current revision is never deleted before it was Ready.
func TestDecideConvergesFromCurrent(t *testing.T) {
	for _, partition := range []int{0, 2} {
		for _, parallel := range []bool{false, true} {
			w := Want{Start: 0, End: 5, Parallel: parallel, Revision: "new", Current: "old", RollingUpdate: true, MaxUnavailable: 1, Partition: partition}
			have := map[int]Pet{}
			for o := range 5 {
				have[o] = Pet{Ordinal: o, Revision: "old", Ready: o%2 == 0}
			}
			remade := map[int]bool{}
			for step := 0; ; step++ {
				if step > 200 {
					t.Fatalf("%+v: no convergence: %v", w, have)
				}
				var list []Pet
				for _, p := range have {
					list = append(list, p)
				}
				p := Decide(w, list)
				for _, o := range p.Delete {
					if pet := have[o]; remade[o] && pet.Revision == "old" && !pet.Ready {
						t.Fatalf("%+v step %d: %d, made again at the current revision, deleted before it was Ready", w, step, o)
					}
				}
				// Pets not Ready become Ready now, after the plan saw them.
				for o, pet := range have {
					pet.Ready = true
					have[o] = pet
				}
				if len(p.Create) == 0 && len(p.Delete) == 0 && p.Wait.Kind == WaitNone {
					break
				}
				for _, o := range p.Delete {
					delete(have, o)
				}
				for _, o := range p.Create {
					rev := w.Due(o, list)
					if o < partition && rev != "old" {
						t.Fatalf("%+v: %d below the partition made at %s", w, o, rev)
					}
					have[o] = Pet{Ordinal: o, Revision: rev}
					remade[o] = true
				}
			}
			for o, p := range have {
				want := "new"
				if o < partition {
					want = "old"
				}
				if p.Revision != want || !p.Ready {
					t.Fatalf("%+v: ended with %v", w, have)
				}
			}
		}
	}
}

func TestDue(t *testing.T) {
	w := Want{Start: 0, End: 4, Revision: "new", Current: "old", RollingUpdate: true, Partition: 1}
	with := func(f func(*Want)) Want { c := w; f(&c); return c }
	tests := []struct {
		name string
		want Want
		pets []Pet
		o    int
		due  string
	}{
		{"below the partition", w, pets("new", true, 1, 2, 3), 0, "old"},
		{"at the partition, rollout reached it", w, pets("new", true, 2, 3), 1, "new"},
		{"rollout not there yet", w, append(pets("new", true, 3), pets("old", true, 2)...), 1, "old"},
		{"a condemned pet above does not count", w, pets("old", true, 4, 5), 3, "new"},
		{"on delete: always the update", with(func(w *Want) { w.RollingUpdate = false }), pets("old", true, 1, 2, 3), 0, "new"},
		{"no current revision", with(func(w *Want) { w.Current = "" }), nil, 0, "new"},
		{"no update in progress", with(func(w *Want) { w.Current = "new" }), nil, 0, "new"},
		{"partition from the start ordinal", with(func(w *Want) { w.Start, w.End, w.Partition = 5, 8, 2 }), pets("new", true, 7), 6, "old"},
		{"at the partition from the start ordinal", with(func(w *Want) { w.Start, w.End, w.Partition = 5, 8, 2 }), pets("new", true, 6), 7, "new"},
	}
	for _, tc := range tests {
		if got := tc.want.Due(tc.o, tc.pets); got != tc.due {
			t.Errorf("%s: Due(%d) = %s, want %s", tc.name, tc.o, got, tc.due)
		}
	}
}

func allOld(have map[int]Pet, ords []int) bool {
	for _, o := range ords {
		if have[o].Revision != "old" {
			return false
		}
	}
	return true
}

func TestOrdinal(t *testing.T) {
	for pod, want := range map[string]int{"web-0": 0, "web-12": 12, "web-": -1, "web-x": -1, "web-01": -1, "other-1": -1, "web-1-2": -1, "web--1": -1} {
		if got := Ordinal("web", pod); got != want {
			t.Errorf("Ordinal(web, %s) = %d, want %d", pod, got, want)
		}
	}
}

// The requeue for minReadySeconds waits for the first pet to become
// available, whatever the order of the pets, and skips Terminating ones,
// which never do (one Ready long ago would give a delay <= 0: no requeue).
func TestNextAvailable(t *testing.T) {
	now := time.Now()
	w := Want{MinReady: time.Minute, Now: now}
	ready := func(o int, ago time.Duration, terminating bool) Pet {
		return Pet{Ordinal: o, Ready: true, ReadySince: now.Add(-ago), Terminating: terminating}
	}
	slack := 100 * time.Millisecond
	tests := []struct {
		name string
		want Want
		pets []Pet
		next time.Duration
	}{
		{"none waiting", w, []Pet{ready(0, 2*time.Minute, false)}, 0},
		{"no minReadySeconds", Want{Now: now}, []Pet{ready(0, time.Second, false)}, 0},
		{"the soonest listed last", w, []Pet{ready(0, 10*time.Second, false), ready(1, 50*time.Second, false)}, 10*time.Second + slack},
		{"the soonest listed first", w, []Pet{ready(0, 50*time.Second, false), ready(1, 10*time.Second, false)}, 10*time.Second + slack},
		{"terminating pet ready long ago skipped", w, []Pet{ready(0, time.Hour, true), ready(1, 30*time.Second, false)}, 30*time.Second + slack},
		{"terminating pet ready lately skipped", w, []Pet{ready(0, 55*time.Second, true), ready(1, 30*time.Second, false)}, 30*time.Second + slack},
		{"not ready: nothing to wait for", w, []Pet{{Ordinal: 0}}, 0},
	}
	for _, tc := range tests {
		if got := tc.want.nextAvailable(tc.pets); got != tc.next {
			t.Errorf("%s: nextAvailable = %v, want %v", tc.name, got, tc.next)
		}
	}
}

// simPet is a pet in the convergence simulation: the plan's view, and how
// many more steps it takes to become Ready (a new pod) or to go away (a
// Terminating one).
type simPet struct {
	Pet
	readyIn, goneIn int
}

// fluxOf says whether a pet is in flux: Terminating, or not Ready.
func fluxOf(p Pet) bool { return p.Terminating || !p.Ready }

// The plan converges when pods take a few steps to turn Ready or go, and at
// every step keeps StatefulSet's guarantees, checked below (nothing updated
// deleted, order, MaxUnavailable). Seeded delays name a reproducible case.
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

// fluxPet is a pet of the second model: the plan's view, the steps until it is
// Ready or gone, and whether it is down by the plan's doing (taken down while
// available, or made in a place), which finishing or a stuck old pet is not.
type fluxPet struct {
	Pet
	readyIn, goneIn int
	ours            bool
}

// The first model with a partition, MinReady on a clock, pods that finish and
// pets made at their Due revision: after every step the checks below hold
// (flux by the plan's doing, partition, order, budget) and the set converges.
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
									MaxUnavailable: maxUnavailable, Partition: partition, MinReady: minReady}
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
