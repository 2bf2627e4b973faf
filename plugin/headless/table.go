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

// shards is how many maps a table splits its names over. A change copies
// only the shards whose names it touches.
const shards = 256

// table maps lowercased owner names to nodes. A published table is never
// written to again.
type table struct {
	shard [shards]map[string]*node
}

// get returns the node for a folded name and its hash, or nil.
func (t *table) get(key []byte, h uint32) *node {
	m := t.shard[h%shards]
	if m == nil {
		return nil
	}
	return m[string(key)] // no allocation: the compiler looks up without converting
}

// len counts the names in t.
func (t *table) len() int {
	n := 0
	for _, m := range t.shard {
		n += len(m)
	}
	return n
}

// tableWriter makes the next table from the current one, copying a shard
// the first time a change touches it.
type tableWriter struct {
	old    *table
	next   *table
	copied [shards]bool
}

func newTableWriter(old *table) *tableWriter {
	w := &tableWriter{old: old, next: &table{}}
	if old != nil {
		w.next.shard = old.shard
	}
	return w
}

func (w *tableWriter) own(i uint32) map[string]*node {
	if !w.copied[i] {
		src := w.next.shard[i]
		m := make(map[string]*node, len(src)+1)
		for k, v := range src {
			m[k] = v
		}
		w.next.shard[i] = m
		w.copied[i] = true
	}
	return w.next.shard[i]
}

// put sets name (already lowercased) to n; a nil n deletes it.
func (w *tableWriter) put(name string, n *node) {
	i := hash(name) % shards
	if n == nil {
		if _, ok := w.next.shard[i][name]; !ok {
			return
		}
		delete(w.own(i), name)
		return
	}
	w.own(i)[name] = n
}

// done returns the new table; w must not be used afterwards.
func (w *tableWriter) done() *table { return w.next }
