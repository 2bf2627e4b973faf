package headless

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// snapshot is what ServeDNS reads: an immutable table and the SOA serial
// that goes with it.
type snapshot struct {
	names  *table
	serial uint32
}

// lister is the read side of a source: the current Service and
// EndpointSlices for a key. A nil Service means the service is gone.
type lister interface {
	service(k svcKey) *corev1.Service
	slices(k svcKey) []*discovery.EndpointSlice
}

// builder turns changed services into new snapshots. It keeps the
// bookkeeping that lets one change rebuild only the names it touches.
// Sources call apply from one goroutine at a time; mu makes that a rule.
type builder struct {
	mu    sync.Mutex
	names names

	cur       *table
	serial    uint32
	owned     map[svcKey][]string // forward names each service put in the table
	ptrOf     map[svcKey][]ptrEntry
	ptrs      map[string][]ptrOwner // reverse name -> who points it where
	ancOf     map[svcKey][]string
	ancestors map[string]int // reference counts of ancestor names
	endpoints map[svcKey]int
	total     int // ready addresses served, for metrics
}

type ptrOwner struct {
	key    svcKey
	target string
}

func newBuilder(z names) *builder {
	return &builder{
		names:     z,
		cur:       &table{},
		owned:     map[svcKey][]string{},
		ptrOf:     map[svcKey][]ptrEntry{},
		ptrs:      map[string][]ptrOwner{},
		ancOf:     map[svcKey][]string{},
		ancestors: map[string]int{},
		endpoints: map[svcKey]int{},
	}
}

// apply rebuilds the services named by keys from l and returns the next
// snapshot. Keys of services that are gone, or no longer headless, remove
// what those services served.
func (b *builder) apply(l lister, keys []svcKey) *snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := time.Now()

	w := newTableWriter(b.cur)
	touchedPTR := map[string]bool{}
	for _, k := range keys {
		var f *fragment
		if svc := l.service(k); IsHeadless(svc) {
			f = b.names.build(svc, l.slices(k))
		}
		b.replace(w, k, f, touchedPTR)
	}
	for rev := range touchedPTR {
		w.put(rev, b.ptrNode(rev))
	}

	b.cur = w.done()
	// The serial follows the clock, so that it moves forward across
	// restarts too, and moves at least by one for every change.
	b.serial = max(b.serial+1, uint32(time.Now().Unix()))
	snapshotBuild.Observe(time.Since(start).Seconds())
	servedObjects.WithLabelValues("service").Set(float64(len(b.owned)))
	servedObjects.WithLabelValues("endpoint").Set(float64(b.total))
	servedObjects.WithLabelValues("name").Set(float64(b.cur.len()))
	return &snapshot{names: b.cur, serial: b.serial}
}

// replace swaps what service k served for fragment f (nil: nothing).
func (b *builder) replace(w *tableWriter, k svcKey, f *fragment, touchedPTR map[string]bool) {
	var keep map[string]*node
	if f != nil {
		keep = f.nodes
	}
	for _, name := range b.owned[k] {
		if _, ok := keep[name]; !ok {
			w.put(name, nil)
		}
	}
	// Count the new ancestors before dropping the old ones, so that a
	// service that stays does not take its ancestors out and back in.
	var ancestors []string
	if f != nil {
		ancestors = f.ancestors
	}
	for _, a := range ancestors {
		if b.ancestors[a]++; b.ancestors[a] == 1 {
			w.put(a, ancestorNode)
		}
	}
	for _, a := range b.ancOf[k] {
		if b.ancestors[a]--; b.ancestors[a] <= 0 {
			delete(b.ancestors, a)
			w.put(a, nil)
		}
	}
	for _, p := range b.ptrOf[k] {
		b.ptrs[p.reverse] = slices.DeleteFunc(b.ptrs[p.reverse], func(o ptrOwner) bool { return o.key == k })
		touchedPTR[p.reverse] = true
	}
	b.total -= b.endpoints[k]
	delete(b.owned, k)
	delete(b.ancOf, k)
	delete(b.ptrOf, k)
	delete(b.endpoints, k)
	if f == nil {
		return
	}

	owned := make([]string, 0, len(f.nodes))
	for name, n := range f.nodes {
		w.put(name, n)
		owned = append(owned, name)
	}
	b.owned[k] = owned
	b.ancOf[k] = f.ancestors
	for _, p := range f.ptrs {
		b.ptrs[p.reverse] = append(b.ptrs[p.reverse], ptrOwner{key: k, target: p.target})
		touchedPTR[p.reverse] = true
	}
	b.ptrOf[k] = f.ptrs
	b.endpoints[k] = f.endpoints
	b.total += f.endpoints
}

var ancestorNode = &node{kind: kindAncestor}

// ptrNode builds the node of a reverse name from everyone who points it
// somewhere: one name per headless service (the first in name order when
// a service has several endpoints with that address), in a stable order.
func (b *builder) ptrNode(rev string) *node {
	owners := b.ptrs[rev]
	if len(owners) == 0 {
		delete(b.ptrs, rev)
		return nil
	}
	first := map[svcKey]string{}
	for _, o := range owners {
		if t, ok := first[o.key]; !ok || o.target < t {
			first[o.key] = o.target
		}
	}
	n := &node{}
	for _, target := range first {
		n.ptr = append(n.ptr, dns.PTR{Hdr: b.names.hdr(rev, dns.TypePTR), Ptr: target})
	}
	slices.SortFunc(n.ptr, func(x, y dns.PTR) int { return strings.Compare(x.Ptr, y.Ptr) })
	return n
}
