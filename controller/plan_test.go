package controller

import (
	"fmt"
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
	}{
		{name: "empty ordered: create the lowest", want: ordered, create: []int{0}},
		{name: "empty parallel: create all", want: parallel, create: []int{0, 1, 2}},
		{name: "ordered waits for the lower pet", want: ordered, pets: pets("r2", false, 0)},
		{name: "ordered creates the next once ready", want: ordered, pets: pets("r2", true, 0), create: []int{1}},
		{name: "ordered fills a hole first", want: ordered, pets: pets("r2", true, 0, 2), create: []int{1}},
		{name: "parallel does not wait", want: parallel, pets: pets("r2", false, 0), create: []int{1, 2}},
		{name: "ordinals start", want: with(ordered, func(w *Want) { w.Start, w.End = 5, 7 }), create: []int{5}},
		{name: "scale down: highest first, one at a time", want: ordered, pets: pets("r2", true, 0, 1, 2, 3, 4), delete: []int{4}},
		{name: "scale down waits for a terminating pet", want: ordered,
			pets: append(pets("r2", true, 0, 1, 2, 3), Pet{Ordinal: 4, Revision: "r2", Ready: true, Terminating: true})},
		{name: "scale down waits until all are available", want: ordered, pets: append(pets("r2", true, 0, 2, 3), Pet{Ordinal: 1, Revision: "r2"})},
		{name: "parallel scale down: all condemned", want: parallel, pets: pets("r2", true, 0, 1, 2, 3, 4), delete: []int{4, 3}},
		{name: "below start is condemned too", want: with(ordered, func(w *Want) { w.Start, w.End = 1, 3 }), pets: pets("r2", true, 0, 1, 2), delete: []int{0}},
		{name: "finished pet is replaced", want: ordered, pets: append(pets("r2", true, 0, 2), Pet{Ordinal: 1, Revision: "r2", Finished: true}), delete: []int{1}},
		{name: "rolling update: highest first", want: ordered, pets: pets("r1", true, 0, 1, 2), delete: []int{2}},
		{name: "rolling update: one unavailable at a time", want: ordered, pets: append(pets("r1", true, 0, 1), Pet{Ordinal: 2, Revision: "r2"})},
		{name: "rolling update: continues down", want: ordered, pets: append(pets("r1", true, 0, 1), pets("r2", true, 2)...), delete: []int{1}},
		{name: "rolling update: maxUnavailable 2", want: with(ordered, func(w *Want) { w.MaxUnavailable = 2 }), pets: pets("r1", true, 0, 1, 2), delete: []int{2, 1}},
		// A Terminating pet is one unavailable pet, counted once (as in
		// StatefulSet's updateStatefulSetAfterInvariantEstablished): with
		// maxUnavailable 2 one more pet may go.
		{name: "rolling update: terminating pet counted once", want: with(parallel, func(w *Want) { w.MaxUnavailable = 2 }),
			pets: append(pets("r1", true, 0, 1), Pet{Ordinal: 2, Revision: "r1", Ready: true, Terminating: true}), delete: []int{1}},
		{name: "rolling update: terminating and unavailable fill the budget", want: with(parallel, func(w *Want) { w.MaxUnavailable = 2 }),
			pets: append(pets("r1", true, 0), Pet{Ordinal: 1, Revision: "r2"}, Pet{Ordinal: 2, Revision: "r1", Ready: true, Terminating: true})},
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
			pets: append(pets("r2", true, 0, 2), Pet{Ordinal: 1, Revision: "r2"})},
		{name: "stuck below the partition is left alone", want: with(ordered, func(w *Want) { w.Partition = 2 }),
			pets: append(pets("r1", true, 0, 2), Pet{Ordinal: 1, Revision: "r1"})},
		{name: "minReadySeconds: not yet available", want: with(ordered, func(w *Want) { w.MinReadySeconds = time.Minute }),
			pets: []Pet{{Ordinal: 0, Revision: "r2", Ready: true, ReadySince: now.Add(-time.Second)}}},
		{name: "minReadySeconds: available", want: with(ordered, func(w *Want) { w.MinReadySeconds = time.Minute }),
			pets: []Pet{{Ordinal: 0, Revision: "r2", Ready: true, ReadySince: now.Add(-2 * time.Minute)}}, create: []int{1}},
	}
	for _, tc := range tests {
		p := Decide(tc.want, tc.pets)
		if !slices.Equal(p.Create, tc.create) || !slices.Equal(p.Delete, tc.delete) {
			t.Errorf("%s: create %v delete %v (wait %q); want create %v delete %v", tc.name, p.Create, p.Delete, p.Wait, tc.create, tc.delete)
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

// From pets at the current revision "old", half of them not Ready,
// driving the plan with pets made at the revision they are Due and Ready
// one step after they are made: the set always reaches the update
// revision, and a pet made at the current revision is never deleted
// before it was Ready (which would only make it again, at the same
// revision).
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
				if len(p.Create) == 0 && len(p.Delete) == 0 && p.Wait == "" {
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
	w := Want{MinReadySeconds: time.Minute, Now: now}
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
