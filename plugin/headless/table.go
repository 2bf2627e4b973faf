package headless

// fanout is the width of each of the four levels over which a table
// splits its services and reverse names: 8 by 8 by 8 by 8, 4,096 leaves.
// A change copies the small arrays on the way to the leaves it touches
// (three arrays of 8 pointers and one of 8 leaves: 384 bytes), and those
// leaves, so what it copies stays small however many names the cluster
// has.
const fanout = 8

// bits has a bit for each of fanout arrays or leaves.
type bits = uint8

// bits must have a bit for each of fanout: with too few, cow would copy
// an array or leaf again on every change to it, correct but slow.
var _ bits = 1<<fanout - 1

// sharded is a map split over fanout^4 leaves by a hash of the key that
// the caller computes: the hash's low 12 bits pick the leaf, 3 bits a
// level. A leaf is a slice of entries sorted by hash, found by binary
// search; copying one is one allocation and a memmove, and it is smaller
// than a Go map of the same keys. Arrays and leaves are nil until
// something is put in them.
type sharded[K comparable, V any] [fanout]*[fanout]*[fanout]*[fanout]leaf[K, V]

// leaf is the entries of one shard, sorted by hash; entries with the same
// hash are in no order.
type leaf[K comparable, V any] []entry[K, V]

// entry is one key of a sharded map, with its hash and value.
type entry[K comparable, V any] struct {
	h   uint32
	key K
	v   V
}

// shard returns the leaf that holds the keys of hash h, or nil. A nil s
// is empty.
func (s *sharded[K, V]) shard(h uint32) leaf[K, V] {
	if s == nil {
		return nil
	}
	a := s[h%fanout]
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

// get returns the value of key, of hash h, and whether it is there.
func (s *sharded[K, V]) get(h uint32, key K) (V, bool) {
	l := s.shard(h)
	for i := l.search(h); i < len(l) && l[i].h == h; i++ {
		if l[i].key == key {
			return l[i].v, true
		}
	}
	var zero V
	return zero, false
}

// getBytes is get for a string key given as bytes; it does not convert
// key to a string, so it does not allocate.
func getBytes[V any](s *sharded[string, V], h uint32, key []byte) V {
	l := s.shard(h)
	for i := l.search(h); i < len(l) && l[i].h == h; i++ {
		if l[i].key == string(key) {
			return l[i].v
		}
	}
	var zero V
	return zero
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

// table is what a snapshot serves. Forward names live in one index per
// headless service and zone (svcIndex), found by the service's name
// (<svc>.<ns>.svc.<zone>.): a change to a service builds its index anew and
// swaps that one pointer, whatever the size of the cluster. Reverse names
// are kept by address: an address maps to the services that name it, and
// the name itself is read from the service's index when asked, so a
// service that changes touches only the addresses it gained or lost. The
// names above services (svc.<zone>., <ns>.svc.<zone>.) are in ancestors.
// Keys of svcs and ancestors are lowercased names. Each sharded map, and
// each of its arrays and leaves, is nil until something is put in it, and
// a new table shares those a change leaves alone. A published table is
// never written to again.
type table struct {
	svcs      *sharded[string, *svcIndex] // by service name; hash: svcHash
	ancestors *sharded[string, bool]      // hash: of the name
	ptr4      *sharded[uint32, *ptrSet]   // IPv4 address (big endian) -> its namers; hash: hash4
	ptr6      *sharded[[16]byte, *ptrSet] // IPv6 address -> its namers; hash: of the bytes
}

// svcHash hashes a service from the part of its name before the zone
// ("web.ns.svc."), which ServeDNS has at hand without hashing the zone
// again.
func svcHash[T ~string | ~[]byte](nameNsSvc T) uint32 { return hash(nameNsSvc) }

// hash4 spreads IPv4 addresses, whose low bytes vary most, over the shards.
func hash4(a uint32) uint32 {
	a ^= a >> 16
	a *= 0x7feb352d
	a ^= a >> 15
	return a
}

// service returns the index of the service called apex, a folded name, or
// nil. nameNsSvc is apex without its zone.
func (t *table) service(apex, nameNsSvc []byte) *svcIndex {
	return getBytes(t.svcs, svcHash(nameNsSvc), apex)
}

// namers returns who names address a (4 or 16 bytes), or nil.
func (t *table) namers(a []byte) *ptrSet {
	if len(a) == 4 {
		v := be32(a)
		s, _ := t.ptr4.get(hash4(v), v)
		return s
	}
	var k [16]byte
	copy(k[:], a)
	s, _ := t.ptr6.get(hash(a), k)
	return s
}

func be32(a []byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

// ptrSet is the headless services that name one address with a hostname,
// by their name in the primary zone. A service's own one-element set is
// shared by all its addresses that only it names. Published sets are never
// changed.
type ptrSet struct {
	apexes []string // sorted
}

// eachShard calls f for every key of s, in no order.
func eachShard[K comparable, V any](s *sharded[K, V], f func(K, V)) {
	eachLeaf(s, func(_ uint32, l leaf[K, V]) {
		for _, e := range l {
			f(e.key, e.v)
		}
	})
}

// eachLeaf calls f for every non-nil leaf of s with the low 12 bits that
// the hashes of its keys have (the leaf's place), in that order.
func eachLeaf[K comparable, V any](s *sharded[K, V], f func(at uint32, l leaf[K, V])) {
	if s == nil {
		return
	}
	for i, a := range s {
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
				for m, l := range c {
					if l != nil {
						f(uint32(i+fanout*(j+fanout*(k+fanout*m))), l)
					}
				}
			}
		}
	}
}

// cow makes the next version of a sharded map from the current one,
// copying an array or a leaf the first time a change touches it. A leaf it
// has copied is its own, changed in place afterwards.
type cow[K, V comparable] struct {
	next    **sharded[K, V]                // in the next table
	top     bool                           // *next copied
	l1      bits                           // bit i: (*next)[i] copied
	l2      [fanout]bits                   // bit j of l2[i]: (*next)[i][j] copied
	l3      [fanout * fanout]bits          // bit k of l3[i*fanout+j]: (*next)[i][j][k] copied
	leaves  [fanout * fanout * fanout]bits // bit m of leaves[(i*fanout+j)*fanout+k]: that leaf copied
	slack   bool                           // a leaf it owns may have spare capacity
	changed bool
	delta   int // keys added less keys removed
}

// put sets key, of hash h, to v; the zero V deletes it. Setting what is
// there already changes nothing.
func (c *cow[K, V]) put(h uint32, key K, v V) {
	var zero V
	src := (*c.next).shard(h)
	at, ok := src.find(h, key)
	if v == zero && !ok || ok && src[at].v == v {
		return
	}
	if !c.top {
		c.top = true
		*c.next = copied(*c.next)
	}
	s := *c.next
	i, j, k, m := h%fanout, h/fanout%fanout, h/(fanout*fanout)%fanout, h/(fanout*fanout*fanout)%fanout
	if c.l1&(1<<i) == 0 {
		c.l1 |= 1 << i
		s[i] = copied(s[i])
	}
	if c.l2[i]&(1<<j) == 0 {
		c.l2[i] |= 1 << j
		s[i][j] = copied(s[i][j])
	}
	if c.l3[i*fanout+j]&(1<<k) == 0 {
		c.l3[i*fanout+j] |= 1 << k
		s[i][j][k] = copied(s[i][j][k])
	}
	leaves := s[i][j][k]
	e := entry[K, V]{h: h, key: key, v: v}
	if owned := &c.leaves[(i*fanout+j)*fanout+k]; *owned&(1<<m) == 0 {
		// The first change to this leaf: a copy with the change made, of
		// exactly the size it needs.
		*owned |= 1 << m
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
		leaves[m] = l
	} else {
		l := leaves[m]
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
			c.slack = true
		}
		leaves[m] = l
	}
	if v == zero {
		c.delta--
	} else if !ok {
		c.delta++
	}
	c.changed = true
}

// trim copies every leaf c owns that has spare capacity into one of its
// size, so that a published table holds no more than its entries.
func (c *cow[K, V]) trim() {
	if !c.slack {
		return
	}
	c.slack = false
	s := *c.next
	for i := range fanout {
		for j := range fanout {
			for k := range fanout {
				owned := c.leaves[(i*fanout+j)*fanout+k]
				if owned == 0 {
					continue
				}
				for m, l := range s[i][j][k] {
					if owned&(1<<m) != 0 && cap(l) != len(l) {
						s[i][j][k][m] = append(make(leaf[K, V], 0, len(l)), l...)
					}
				}
			}
		}
	}
}

// copied returns a new copy of *a, or a new zero array when a is nil.
func copied[A any](a *A) *A {
	n := new(A)
	if a != nil {
		*n = *a
	}
	return n
}

// tableWriter makes the next table from the current one.
type tableWriter struct {
	next      *table
	svcs      cow[string, *svcIndex]
	ancestors cow[string, bool]
	ptr4      cow[uint32, *ptrSet]
	ptr6      cow[[16]byte, *ptrSet]
}

func newTableWriter(old *table) *tableWriter {
	next := &table{}
	if old != nil {
		*next = *old
	}
	w := &tableWriter{next: next}
	w.svcs.next = &next.svcs
	w.ancestors.next = &next.ancestors
	w.ptr4.next = &next.ptr4
	w.ptr6.next = &next.ptr6
	return w
}

// putService sets the index of the service called apex (lowercased, with
// nameNsSvc its part before the zone); nil removes it.
func (w *tableWriter) putService(apex, nameNsSvc string, idx *svcIndex) {
	w.svcs.put(svcHash(nameNsSvc), apex, idx)
}

// putAncestor adds (or, with false, removes) a name above services.
func (w *tableWriter) putAncestor(name string, on bool) { w.ancestors.put(hash(name), name, on) }

// putPTR sets who names address a (4 or 16 bytes); nil removes it.
func (w *tableWriter) putPTR(a []byte, s *ptrSet) {
	if len(a) == 4 {
		v := be32(a)
		w.ptr4.put(hash4(v), v, s)
		return
	}
	var k [16]byte
	copy(k[:], a)
	w.ptr6.put(hash(a), k, s)
}

// changed reports whether anything was put that differs from the old table.
func (w *tableWriter) changed() bool {
	return w.svcs.changed || w.ancestors.changed || w.ptr4.changed || w.ptr6.changed
}

// delta is the number of ancestor and reverse names added less those
// removed.
func (w *tableWriter) delta() int { return w.ancestors.delta + w.ptr4.delta + w.ptr6.delta }

// done returns the new table; w must not be used afterwards.
func (w *tableWriter) done() *table {
	w.svcs.trim()
	w.ancestors.trim()
	w.ptr4.trim()
	w.ptr6.trim()
	return w.next
}
