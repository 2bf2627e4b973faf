// Package cowmap is a copy-on-write hash map: a version, once made, is
// never written to again, so readers use it without locks, and the next
// version shares all that a change leaves alone.
//
// The caller hashes the keys (so that it can hash a key it holds as bytes,
// or only part of one). The hash's low 12 bits pick one of 4,096 leaves
// through four levels of 8; a leaf is a slice of entries sorted by hash. A
// change copies the leaves it touches and the four small arrays above each
// (384 bytes), however many keys the map holds.
package cowmap

import "iter"

// fanout is the width of each of the four levels.
const fanout = 8

// bits has a bit for each of fanout arrays or leaves.
type bits = uint8

// bits must have a bit for each of fanout: with too few, a Writer would
// copy an array or leaf again on every change to it, correct but slow.
var _ bits = 1<<fanout - 1

// Map is one version of a map from K to V. A nil *Map is empty. Arrays and
// leaves are nil until something is put in them.
type Map[K comparable, V any] struct {
	root [fanout]*[fanout]*[fanout]*[fanout]leaf[K, V]
}

// leaf holds the entries whose hashes share their low 12 bits, sorted by
// hash; entries with the same hash are in no order.
type leaf[K comparable, V any] []entry[K, V]

type entry[K comparable, V any] struct {
	h   uint32
	key K
	v   V
}

// leaf returns the leaf that holds the keys of hash h, or nil.
func (m *Map[K, V]) leaf(h uint32) leaf[K, V] {
	if m == nil {
		return nil
	}
	a := m.root[h%fanout]
	if a == nil {
		return nil
	}
	b := a[h/fanout%fanout]
	if b == nil {
		return nil
	}
	c := b[h/(fanout*fanout)%fanout]
	if c == nil {
		return nil
	}
	return c[h/(fanout*fanout*fanout)%fanout]
}

// Get returns the value of key, whose hash is h, and whether it is there.
func (m *Map[K, V]) Get(h uint32, key K) (V, bool) {
	l := m.leaf(h)
	for i := l.search(h); i < len(l) && l[i].h == h; i++ {
		if l[i].key == key {
			return l[i].v, true
		}
	}
	var zero V
	return zero, false
}

// GetBytes is Get for a string key held as bytes; it does not allocate.
func GetBytes[V any](m *Map[string, V], h uint32, key []byte) (V, bool) {
	l := m.leaf(h)
	for i := l.search(h); i < len(l) && l[i].h == h; i++ {
		if l[i].key == string(key) {
			return l[i].v, true
		}
	}
	var zero V
	return zero, false
}

// All yields every key and its value, in no order.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		m.leaves(func(_ uint32, l leaf[K, V]) bool {
			for _, e := range l {
				if !yield(e.key, e.v) {
					return false
				}
			}
			return true
		})
	}
}

// leaves calls f for every non-nil leaf with the low 12 bits of its keys'
// hashes (the leaf's place), in that order, until f returns false.
func (m *Map[K, V]) leaves(f func(at uint32, l leaf[K, V]) bool) {
	if m == nil {
		return
	}
	for i, a := range m.root {
		if a == nil {
			continue
		}
		for j, b := range a {
			if b == nil {
				continue
			}
			for k, c := range b {
				if c == nil {
					continue
				}
				for n, l := range c {
					if l != nil && !f(uint32(i+fanout*(j+fanout*(k+fanout*n))), l) {
						return
					}
				}
			}
		}
	}
}

// search returns the index of the first entry whose hash is h or more.
func (l leaf[K, V]) search(h uint32) int {
	i, j := 0, len(l)
	for i < j {
		m := int(uint(i+j) >> 1)
		if l[m].h < h {
			i = m + 1
		} else {
			j = m
		}
	}
	return i
}

// find returns the index of key, of hash h, and true; or, when key is not
// in l, the index where it goes and false.
func (l leaf[K, V]) find(h uint32, key K) (int, bool) {
	i := l.search(h)
	for ; i < len(l) && l[i].h == h; i++ {
		if l[i].key == key {
			return i, true
		}
	}
	return i, false
}

// A Writer makes the next version of a Map, copying an array or a leaf the
// first time a change touches it; a leaf it has copied is its own, and
// changed in place afterwards. Its zero value writes the version after the
// empty map. V's zero value stands for no value: putting it deletes.
type Writer[K, V comparable] struct {
	m       *Map[K, V]                     // the version being made
	top     bool                           // m copied
	l1      bits                           // bit i: m.root[i] copied
	l2      [fanout]bits                   // bit j of l2[i]: m.root[i][j] copied
	l3      [fanout * fanout]bits          // bit k of l3[i*fanout+j]: m.root[i][j][k] copied
	leaves  [fanout * fanout * fanout]bits // bit n of leaves[(i*fanout+j)*fanout+k]: that leaf copied
	slack   bool                           // a leaf it owns may have spare capacity
	changed bool
	delta   int
}

// Reset makes w a writer of the version after m, forgetting what it did.
func (w *Writer[K, V]) Reset(m *Map[K, V]) { *w = Writer[K, V]{m: m} }

// Get is Map.Get on the version being made.
func (w *Writer[K, V]) Get(h uint32, key K) (V, bool) { return w.m.Get(h, key) }

// Changed reports whether a Put changed anything.
func (w *Writer[K, V]) Changed() bool { return w.changed }

// Delta is the number of keys added less the number removed.
func (w *Writer[K, V]) Delta() int { return w.delta }

// Put sets key, of hash h, to v; the zero V deletes it. Setting what is
// there already changes nothing.
func (w *Writer[K, V]) Put(h uint32, key K, v V) {
	var zero V
	src := w.m.leaf(h)
	at, ok := src.find(h, key)
	if v == zero && !ok || ok && src[at].v == v {
		return
	}
	if !w.top {
		w.top = true
		w.m = copied(w.m)
	}
	r := &w.m.root
	i, j, k, n := h%fanout, h/fanout%fanout, h/(fanout*fanout)%fanout, h/(fanout*fanout*fanout)%fanout
	if w.l1&(1<<i) == 0 {
		w.l1 |= 1 << i
		r[i] = copied(r[i])
	}
	if w.l2[i]&(1<<j) == 0 {
		w.l2[i] |= 1 << j
		r[i][j] = copied(r[i][j])
	}
	if w.l3[i*fanout+j]&(1<<k) == 0 {
		w.l3[i*fanout+j] |= 1 << k
		r[i][j][k] = copied(r[i][j][k])
	}
	leaves := r[i][j][k]
	e := entry[K, V]{h: h, key: key, v: v}
	if owned := &w.leaves[(i*fanout+j)*fanout+k]; *owned&(1<<n) == 0 {
		// The first change to this leaf: a copy with the change made, of
		// exactly the size it needs.
		*owned |= 1 << n
		var l leaf[K, V]
		switch {
		case v == zero:
			if len(src) > 1 {
				l = make(leaf[K, V], len(src)-1)
				copy(l, src[:at])
				copy(l[at:], src[at+1:])
			}
		case !ok:
			l = make(leaf[K, V], len(src)+1)
			copy(l, src[:at])
			l[at] = e
			copy(l[at+1:], src[at:])
		default:
			l = make(leaf[K, V], len(src))
			copy(l, src)
			l[at] = e
		}
		leaves[n] = l
	} else {
		l := leaves[n]
		switch {
		case v == zero:
			l = append(l[:at], l[at+1:]...)
			l[:len(l)+1][len(l)] = entry[K, V]{} // let go of what it held
			if len(l) == 0 {
				l = nil
			}
		case !ok:
			l = append(l, entry[K, V]{})
			copy(l[at+1:], l[at:])
			l[at] = e
		default:
			l[at] = e
		}
		if cap(l) != len(l) {
			w.slack = true
		}
		leaves[n] = l
	}
	if v == zero {
		w.delta--
	} else if !ok {
		w.delta++
	}
	w.changed = true
}

// Done returns the new version, or the one w started from when nothing
// changed. The version is the caller's to publish: w must be Reset before
// it is used again.
func (w *Writer[K, V]) Done() *Map[K, V] {
	w.trim()
	return w.m
}

// trim copies every leaf w owns that has spare capacity into one of its
// size, so that a version holds no more than its entries.
func (w *Writer[K, V]) trim() {
	if !w.slack {
		return
	}
	w.slack = false
	r := &w.m.root
	for i := range fanout {
		for j := range fanout {
			for k := range fanout {
				owned := w.leaves[(i*fanout+j)*fanout+k]
				if owned == 0 {
					continue
				}
				for n, l := range r[i][j][k] {
					if owned&(1<<n) != 0 && cap(l) != len(l) {
						r[i][j][k][n] = append(make(leaf[K, V], 0, len(l)), l...)
					}
				}
			}
		}
	}
}

// copied returns a new copy of *a, or a new zero value when a is nil.
func copied[A any](a *A) *A {
	n := new(A)
	if a != nil {
		*n = *a
	}
	return n
}
