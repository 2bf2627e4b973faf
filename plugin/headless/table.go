package headless

import "petset.dev/petset/plugin/headless/cowmap"

// table is what a snapshot serves, in four copy-on-write maps, so that a
// change to a service costs what changed whatever the cluster's size: its
// index of forward names (one per zone) is swapped whole, and of reverse
// names, kept by address and named from the service's index when asked,
// only the addresses it gained or lost change. Keys are lowercased names.
type table struct {
	svcs      *cowmap.Map[string, *svcIndex] // by service name; hash: svcHash
	ancestors *cowmap.Map[string, bool]      // hash: of the name
	ptr4      *cowmap.Map[uint32, *ptrSet]   // IPv4 address (big endian) -> its namers; hash: hash4
	ptr6      *cowmap.Map[[16]byte, *ptrSet] // IPv6 address -> its namers; hash: of the bytes
}

// svcHash hashes a service from the part of its name before the zone
// ("web.ns.svc."), which ServeDNS has at hand without hashing the zone
// again.
func svcHash[T ~string | ~[]byte](nameNsSvc T) uint32 { return hash(nameNsSvc) }

// hash4 spreads IPv4 addresses, whose low bytes vary most, over the
// leaves of a copy-on-write map, which its low bits pick.
func hash4(a uint32) uint32 {
	a ^= a >> 16
	a *= 0x7feb352d
	a ^= a >> 15
	return a
}

// service returns the index of the service called apex, a folded name, or
// nil. nameNsSvc is apex without its zone.
func (t *table) service(apex, nameNsSvc []byte) *svcIndex {
	idx, _ := cowmap.GetBytes(t.svcs, svcHash(nameNsSvc), apex)
	return idx
}

// ancestor reports whether name, a folded name of hash h, is above some
// headless service.
func (t *table) ancestor(name []byte, h uint32) bool {
	on, _ := cowmap.GetBytes(t.ancestors, h, name)
	return on
}

// namers returns who names address a (4 or 16 bytes), or nil.
func (t *table) namers(a []byte) *ptrSet {
	if len(a) == 4 {
		v := be32(a)
		s, _ := t.ptr4.Get(hash4(v), v)
		return s
	}
	s, _ := t.ptr6.Get(hash(a), [16]byte(a))
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

// tableWriter makes the next table from the current one.
type tableWriter struct {
	svcs      cowmap.Writer[string, *svcIndex]
	ancestors cowmap.Writer[string, bool]
	ptr4      cowmap.Writer[uint32, *ptrSet]
	ptr6      cowmap.Writer[[16]byte, *ptrSet]
}

func newTableWriter(old *table) *tableWriter {
	w := &tableWriter{}
	w.svcs.Reset(old.svcs)
	w.ancestors.Reset(old.ancestors)
	w.ptr4.Reset(old.ptr4)
	w.ptr6.Reset(old.ptr6)
	return w
}

// putService sets the index of the service called apex (lowercased, with
// nameNsSvc its part before the zone); nil removes it.
func (w *tableWriter) putService(apex, nameNsSvc string, idx *svcIndex) {
	w.svcs.Put(svcHash(nameNsSvc), apex, idx)
}

// putAncestor adds (or, with false, removes) a name above services.
func (w *tableWriter) putAncestor(name string, on bool) { w.ancestors.Put(hash(name), name, on) }

// namers is table.namers on the table being made.
func (w *tableWriter) namers(a []byte) *ptrSet {
	if len(a) == 4 {
		v := be32(a)
		s, _ := w.ptr4.Get(hash4(v), v)
		return s
	}
	s, _ := w.ptr6.Get(hash(a), [16]byte(a))
	return s
}

// putPTR sets who names address a (4 or 16 bytes); nil removes it.
func (w *tableWriter) putPTR(a []byte, s *ptrSet) {
	if len(a) == 4 {
		v := be32(a)
		w.ptr4.Put(hash4(v), v, s)
		return
	}
	w.ptr6.Put(hash(a), [16]byte(a), s)
}

// changed reports whether anything was put that differs from the old table.
func (w *tableWriter) changed() bool {
	return w.svcs.Changed() || w.ancestors.Changed() || w.ptr4.Changed() || w.ptr6.Changed()
}

// delta is the number of ancestor and reverse names added less those
// removed.
func (w *tableWriter) delta() int { return w.ancestors.Delta() + w.ptr4.Delta() + w.ptr6.Delta() }

// done returns the new table; w must not be used afterwards.
func (w *tableWriter) done() *table {
	return &table{svcs: w.svcs.Done(), ancestors: w.ancestors.Done(), ptr4: w.ptr4.Done(), ptr6: w.ptr6.Done()}
}
