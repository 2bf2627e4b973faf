package cowmap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// put is one change to a map: key, of hash h, set to v (0: deleted).
type put struct {
	h   uint32
	key string
	v   int
}

// inLeaf is a hash in the leaf of hash 0x5a3 (the low 12 bits pick it).
func inLeaf(hi uint32) uint32 { return hi<<12 | 0x5a3 }

// Each change makes a version that holds what it should, in leaves sorted
// by hash and without spare room, and leaves the version before it and
// every leaf it does not touch as they were.
func TestWriterLeaves(t *testing.T) {
	tests := []struct {
		name    string
		before  []put // makes the first version, with one writer
		change  []put // makes the second from it, with another
		changed bool
		delta   int
	}{
		{name: "put into empty", change: []put{{inLeaf(1), "a", 1}}, changed: true, delta: 1},
		{name: "delete missing from empty", change: []put{{inLeaf(1), "a", 0}}},
		{
			name:   "insert before, between and after",
			before: []put{{inLeaf(2), "b", 2}, {inLeaf(4), "d", 4}},
			change: []put{{inLeaf(5), "e", 5}, {inLeaf(1), "a", 1}, {inLeaf(3), "c", 3}}, changed: true, delta: 3,
		},
		{
			name:   "insert at the front of a shared leaf",
			before: []put{{inLeaf(2), "b", 2}, {inLeaf(4), "d", 4}},
			change: []put{{inLeaf(1), "a", 1}}, changed: true, delta: 1,
		},
		{
			name:   "insert in the middle of a shared leaf",
			before: []put{{inLeaf(2), "b", 2}, {inLeaf(4), "d", 4}},
			change: []put{{inLeaf(3), "c", 3}}, changed: true, delta: 1,
		},
		{
			name:   "delete first, middle and last",
			before: []put{{inLeaf(1), "a", 1}, {inLeaf(2), "b", 2}, {inLeaf(3), "c", 3}, {inLeaf(4), "d", 4}, {inLeaf(5), "e", 5}},
			change: []put{{inLeaf(3), "c", 0}, {inLeaf(1), "a", 0}, {inLeaf(5), "e", 0}}, changed: true, delta: -3,
		},
		{
			name:   "delete the only key, then put it back",
			before: []put{{inLeaf(1), "a", 1}},
			change: []put{{inLeaf(1), "a", 0}, {inLeaf(1), "a", 7}}, changed: true,
		},
		{
			name:   "delete the only key",
			before: []put{{inLeaf(1), "a", 1}},
			change: []put{{inLeaf(1), "a", 0}}, changed: true, delta: -1,
		},
		{
			name:   "overwrite",
			before: []put{{inLeaf(1), "a", 1}, {inLeaf(2), "b", 2}},
			change: []put{{inLeaf(2), "b", 20}, {inLeaf(2), "b", 21}}, changed: true,
		},
		{
			name:   "setting what is there changes nothing",
			before: []put{{inLeaf(1), "a", 1}},
			change: []put{{inLeaf(1), "a", 1}, {inLeaf(2), "b", 0}},
		},
		{
			name:   "keys of the same hash",
			before: []put{{inLeaf(1), "x", 1}, {inLeaf(1), "y", 2}, {inLeaf(0), "w", 9}},
			change: []put{{inLeaf(1), "z", 3}, {inLeaf(1), "x", 0}, {inLeaf(1), "y", 4}, {inLeaf(1), "q", 0}}, changed: true,
		},
		{
			name:   "other leaves are shared",
			before: []put{{0x001, "a", 1}, {0x002, "b", 2}, {0x101, "c", 3}, {0xfff, "d", 4}},
			change: []put{{0x001, "e", 5}}, changed: true, delta: 1,
		},
		{
			name:   "many keys in one leaf",
			before: manyPuts(0, 40, 1),
			change: append(manyPuts(0, 40, 0)[10:30], manyPuts(40, 50, 2)...), changed: true, delta: -10,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w Writer[string, int]
			want1 := apply(&w, nil, tc.before)
			v1 := w.Done()
			dump1 := leavesOf(v1)

			w.Reset(v1)
			want2 := apply(&w, want1, tc.change)
			v2 := w.Done()

			check(t, "first version", v1, want1)
			check(t, "second version", v2, want2)
			if got := leavesOf(v1); !maps.EqualFunc(got, dump1, slices.Equal) {
				t.Errorf("the change wrote into the first version:\n%v\nwas\n%v", got, dump1)
			}
			if w.Changed() != tc.changed || w.Delta() != tc.delta {
				t.Errorf("changed %v, delta %d; want %v, %d", w.Changed(), w.Delta(), tc.changed, tc.delta)
			}
			if !tc.changed && v2 != v1 {
				t.Error("a change that changed nothing made a new version")
			}
			// A leaf no key of the change falls in is the old one.
			touched := map[uint32]bool{}
			for _, p := range tc.change {
				touched[p.h%4096] = true
			}
			for h := range uint32(4096) {
				if touched[h] {
					continue
				}
				if a, b := v1.leaf(h), v2.leaf(h); len(a) > 0 && &a[0] != &b[0] {
					t.Errorf("leaf %#x was copied though the change did not touch it", h)
				}
			}
		})
	}
}

// manyPuts puts keys k<from> to k<to> into one leaf with value v.
func manyPuts(from, to, v int) []put {
	var out []put
	for i := from; i < to; i++ {
		out = append(out, put{inLeaf(uint32(i * 7 % 64)), "k" + string(rune('0'+i/10)) + string(rune('0'+i%10)), v})
	}
	return out
}

// apply makes the puts through w and returns was (not changed) with them.
func apply(w *Writer[string, int], was map[string]put, puts []put) map[string]put {
	want := maps.Clone(was)
	if want == nil {
		want = map[string]put{}
	}
	for _, p := range puts {
		w.Put(p.h, p.key, p.v)
		if p.v == 0 {
			delete(want, p.key)
		} else {
			want[p.key] = p
		}
	}
	return want
}

// check compares s with want and checks the leaves' layout: sorted by
// hash, in the leaf of their hash, without spare capacity.
func check(t *testing.T, what string, s *Map[string, int], want map[string]put) {
	t.Helper()
	got := maps.Collect(s.All())
	if len(got) != len(want) {
		t.Errorf("%s: %d keys %v, want %d", what, len(got), got, len(want))
	}
	for k, p := range want {
		if v, ok := s.Get(p.h, k); !ok || v != p.v {
			t.Errorf("%s: Get(%q) = %d, %v; want %d", what, k, v, ok, p.v)
		}
		if v, ok := GetBytes(s, p.h, []byte(k)); !ok || v != p.v {
			t.Errorf("%s: GetBytes(%q) = %d, %v; want %d", what, k, v, ok, p.v)
		}
		if v, ok := s.Get(p.h^1<<20, k); ok {
			t.Errorf("%s: %q found under another hash: %d", what, k, v)
		}
	}
	for _, k := range []string{"", "missing", "k"} {
		if v, ok := s.Get(inLeaf(1), k); ok {
			t.Errorf("%s: missing key %q found: %d", what, k, v)
		}
	}
	for h, l := range leavesOf(s) {
		if cap(s.leaf(h)) != len(l) {
			t.Errorf("%s: leaf %#x holds %d entries in %d", what, h, len(l), cap(s.leaf(h)))
		}
		for i, e := range l {
			if e.h%4096 != h || i > 0 && l[i-1].h > e.h || e.v == 0 {
				t.Errorf("%s: leaf %#x out of order or misplaced: %v", what, h, l)
				break
			}
		}
	}
}

// leavesOf copies the non-empty leaves of s, by the low 12 bits of their
// hashes.
func leavesOf(s *Map[string, int]) map[uint32][]entry[string, int] {
	out := map[uint32][]entry[string, int]{}
	for h := range uint32(4096) {
		if l := s.leaf(h); len(l) > 0 {
			out[h] = slices.Clone(l)
		}
	}
	return out
}

// TestVersions makes 60 versions of one map, each by its
// own writer from the one before, with random puts of keys whose hashes
// share a leaf and its neighbours at every level (0x5a3, and 0x5a3 with
// the bit of each level flipped), several hashes per leaf and several
// keys per hash. Each version must hold what a Go map does, and every
// older version must still hold what it held.
func TestVersions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	leaves := []uint32{0x5a3, 0x5a3 ^ 0x4, 0x5a3 ^ 0x20, 0x5a3 ^ 0x100, 0x5a3 ^ 0x800}
	hashes := make([]uint32, 30)
	for i := range hashes {
		hashes[i] = uint32(r.IntN(4))<<12 | leaves[r.IntN(len(leaves))]
	}
	type version struct {
		s    *Map[string, int]
		want map[string]put
		dump map[uint32][]entry[string, int]
	}
	var s *Map[string, int]
	var versions []version
	var want map[string]put
	for n := range 60 {
		var w Writer[string, int]
		w.Reset(s)
		var puts []put
		for range 1 + r.IntN(12) {
			k := r.IntN(len(hashes))
			puts = append(puts, put{hashes[k], fmt.Sprintf("k%d", k), r.IntN(4)})
		}
		before := len(want)
		want = apply(&w, want, puts)
		s = w.Done()
		if w.Delta() != len(want)-before {
			t.Fatalf("version %d: delta %d, the keys went from %d to %d", n, w.Delta(), before, len(want))
		}
		versions = append(versions, version{s: s, want: want, dump: leavesOf(s)})
		for i, v := range versions {
			check(t, fmt.Sprintf("version %d after %d", i, n), v.s, v.want)
			if got := leavesOf(v.s); !maps.EqualFunc(got, v.dump, slices.Equal) {
				t.Fatalf("version %d changed by writer %d", i, n)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// A writer reads the version it is making; the version it started from
// does not see the change, and All stops when asked to.
func TestWriterGet(t *testing.T) {
	var w Writer[string, int]
	w.Put(inLeaf(1), "a", 1)
	w.Put(inLeaf(2), "b", 2)
	old := w.Done()
	w.Reset(old)
	w.Put(inLeaf(1), "a", 0)
	w.Put(inLeaf(3), "c", 3)
	for _, c := range []struct {
		key    string
		h      uint32
		v, was int
	}{{"a", inLeaf(1), 0, 1}, {"b", inLeaf(2), 2, 2}, {"c", inLeaf(3), 3, 0}} {
		if v, _ := w.Get(c.h, c.key); v != c.v {
			t.Errorf("writer: %s = %d, want %d", c.key, v, c.v)
		}
		if v, _ := old.Get(c.h, c.key); v != c.was {
			t.Errorf("old version: %s = %d, want %d", c.key, v, c.was)
		}
	}
	n := 0
	for range w.Done().All() {
		n++
		break
	}
	if n != 1 {
		t.Errorf("All yielded %d keys after a break", n)
	}
}
