package headless

import "github.com/miekg/dns"

// node holds everything the plugin answers for one owner name. Nodes are
// built once and never changed after they are published; ServeDNS copies
// what it sends.
type node struct {
	a    []dns.A
	aaaa []dns.AAAA
	srv  []dns.SRV
	ptr  []dns.PTR
	// glueA and glueAAAA are the addresses of the SRV targets, for the
	// additional section.
	glueA    []dns.A
	glueAAAA []dns.AAAA

	kind nodeKind
}

type nodeKind uint8

const (
	// kindName is a name the plugin owns: it has records, or it is an empty
	// non-terminal inside a headless service (_tcp.web.ns.svc.zone.).
	kindName nodeKind = iota
	// kindEmptyService is the name of a headless service without ready
	// endpoints. It does not exist (NXDOMAIN), but it still makes every name
	// below it the plugin's to answer.
	kindEmptyService
	// kindAncestor is svc.<zone>. or <ns>.svc.<zone>. above some headless
	// service: it exists, but the plugin does not own it, so with
	// fallthrough it goes to the next plugin.
	kindAncestor
)

// fanout is the width of each of the two levels over which a table
// splits its services and its other names: 64 groups of 64 maps. A change
// copies the group arrays and the maps it touches, so what it copies stays
// small however many names the cluster has.
const fanout = 64

// sharded is a map from names split over fanout*fanout maps by hash.
// Groups and maps are nil until something is put in them.
type sharded[V any] [fanout]*[fanout]map[string]V

// shard returns the map that holds the keys of hash h, or nil.
func (s *sharded[V]) shard(h uint32) map[string]V {
	g := s[h%fanout]
	if g == nil {
		return nil
	}
	return g[h/fanout%fanout]
}

// table is what a snapshot serves. Forward names live in one index per
// headless service and zone (svcIndex), found by the service's name
// (<svc>.<ns>.svc.<zone>.): a change to a service builds its index anew and
// swaps that one pointer, whatever the size of the cluster. Reverse names,
// the ancestors above services, and every name of a forward zone that a
// more specific zone shadows (see flatZone) live in other. All keys are
// lowercased names. A published table is never written to again.
type table struct {
	svcs  sharded[*svcIndex] // by service name; hash: svcHash
	other sharded[*node]     // hash: of the name
}

// svcIndex holds the names of one headless service in one zone, its own
// name among them, by full name.
type svcIndex struct {
	names map[string]*node
}

// svcHash hashes a service from the part of its name before the zone
// ("web.ns.svc."), which ServeDNS has at hand without hashing the zone
// again.
func svcHash[T ~string | ~[]byte](nameNsSvc T) uint32 { return hash(nameNsSvc) }

// find returns the node of key, a folded name in a zone of zoneLen bytes,
// and whether key is at or below a headless service's name, which makes a
// nil node a sure NXDOMAIN. h is key's hash; flat says the zone keeps its
// names in other. It never allocates.
func (t *table) find(key []byte, h uint32, zoneLen int, flat bool) (n *node, under bool) {
	prefix := key[:len(key)-zoneLen]
	if flat {
		n = t.other.shard(h)[string(key)]
		if n != nil || hasEscape(prefix) {
			return n, false
		}
		if s := apexStart(prefix); s >= 0 {
			return nil, t.other.shard(hash(key[s:]))[string(key[s:])] != nil
		}
		return nil, false
	}
	s := apexStart(prefix)
	if s < 0 || hasEscape(prefix) {
		return t.other.shard(h)[string(key)], false
	}
	idx := t.svcs.shard(svcHash(prefix[s:]))[string(key[s:])]
	if idx == nil {
		return nil, false
	}
	return idx.names[string(key)], true
}

// len counts the names in t. It visits every service; the builder keeps
// the count as it goes instead.
func (t *table) len() int {
	n := 0
	t.each(func(string, *node) { n++ })
	return n
}

// each calls f for every name in t, in no order.
func (t *table) each(f func(name string, n *node)) {
	for _, g := range t.svcs {
		if g == nil {
			continue
		}
		for _, m := range g {
			for _, idx := range m {
				for name, n := range idx.names {
					f(name, n)
				}
			}
		}
	}
	for _, g := range t.other {
		if g == nil {
			continue
		}
		for _, m := range g {
			for name, n := range m {
				f(name, n)
			}
		}
	}
}

// cow makes the next version of a sharded map from the current one,
// copying a group and a map the first time a change touches them.
type cow[V comparable] struct {
	next    *sharded[V]
	group   [fanout]bool          // copied
	maps    [fanout * fanout]bool // copied
	changed bool
	delta   int // keys added less keys removed
}

// put sets key, of hash h, to v; the zero V deletes it. Setting what is
// there already changes nothing.
func (c *cow[V]) put(h uint32, key string, v V) {
	var zero V
	have, ok := c.next.shard(h)[key]
	if v == zero && !ok || ok && have == v {
		return
	}
	gi, mi := h%fanout, h/fanout%fanout
	if !c.group[gi] {
		g := new([fanout]map[string]V)
		if old := c.next[gi]; old != nil {
			*g = *old
		}
		c.next[gi] = g
		c.group[gi] = true
	}
	g := c.next[gi]
	if !c.maps[gi*fanout+mi] {
		src := g[mi]
		m := make(map[string]V, len(src)+1)
		for k, x := range src {
			m[k] = x
		}
		g[mi] = m
		c.maps[gi*fanout+mi] = true
	}
	switch {
	case v == zero:
		delete(g[mi], key)
		c.delta--
	case !ok:
		c.delta++
		fallthrough
	default:
		g[mi][key] = v
	}
	c.changed = true
}

// tableWriter makes the next table from the current one.
type tableWriter struct {
	next  *table
	svcs  cow[*svcIndex]
	other cow[*node]
}

func newTableWriter(old *table) *tableWriter {
	next := &table{}
	if old != nil {
		*next = *old
	}
	w := &tableWriter{next: next}
	w.svcs.next = &next.svcs
	w.other.next = &next.other
	return w
}

// putService sets the index of the service called apex (lowercased, with
// nameNsSvc its part before the zone); nil removes it.
func (w *tableWriter) putService(apex, nameNsSvc string, idx *svcIndex) {
	w.svcs.put(svcHash(nameNsSvc), apex, idx)
}

// put sets a name of other (already lowercased) to n; a nil n deletes it.
func (w *tableWriter) put(name string, n *node) { w.other.put(hash(name), name, n) }

// changed reports whether anything was put that differs from the old table.
func (w *tableWriter) changed() bool { return w.svcs.changed || w.other.changed }

// done returns the new table; w must not be used afterwards.
func (w *tableWriter) done() *table { return w.next }
