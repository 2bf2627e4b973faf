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
// bookkeeping that lets one change rebuild only what it touches: a changed
// service gets a new index of its forward names, swapped in with one
// pointer, and only the reverse names whose targets changed are rebuilt.
// Sources call apply from one goroutine at a time; mu makes that a rule.
type builder struct {
	mu    sync.Mutex
	names names
	flat  []bool // per forward zone: its names live in table.other

	cur       *snapshot // the last snapshot apply returned
	built     bool      // whether apply has returned one
	svcs      map[svcKey]*served
	ptrs      map[string][]ptrOwner // reverse name -> who points it where
	ancestors map[string]int        // reference counts of ancestor names
	total     int                   // ready addresses served, for metrics
	indexed   int                   // names in service indexes, for metrics
	named     int                   // names in table.other, for metrics
}

// served is what the builder remembers of one headless service.
type served struct {
	sum       [32]byte // of the inputs of its fragment (see names.sum)
	apexes    []string // its names, one per forward zone
	nodes     []map[string]*node
	ptrs      []ptrEntry
	ancestors []string
	endpoints int
}

type ptrOwner struct {
	key    svcKey
	target string
}

func newBuilder(z names) *builder {
	b := &builder{
		names:     z,
		cur:       &snapshot{names: &table{}},
		svcs:      map[svcKey]*served{},
		ptrs:      map[string][]ptrOwner{},
		ancestors: map[string]int{},
	}
	all := append(slices.Clip(z.forward), z.reverse...)
	for _, f := range z.forward {
		b.flat = append(b.flat, flatZone(f, all))
	}
	return b
}

// flatZone reports whether the forward zone z keeps its names in the flat
// part of the table rather than in per-service indexes: the root zone, and
// a zone with another configured zone below it, where ServeDNS may see a
// service's names as names of that other zone.
func flatZone(z string, all []string) bool {
	if z == "." {
		return true
	}
	for _, o := range all {
		if o != z && dns.IsSubDomain(z, o) {
			return true
		}
	}
	return false
}

// apply rebuilds the services named by keys from l and returns the next
// snapshot. Keys of services that are gone, or no longer headless, remove
// what those services served. When nothing changed it returns the current
// snapshot itself, serial and all.
func (b *builder) apply(l lister, keys []svcKey) *snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := time.Now()
	defer func() { snapshotBuild.Observe(time.Since(start).Seconds()) }()

	w := newTableWriter(b.cur.names)
	touchedPTR := map[string]bool{}
	for _, k := range keys {
		old := b.svcs[k]
		svc := l.service(k)
		if !IsHeadless(svc) {
			if old != nil {
				b.replace(w, k, old, nil, touchedPTR)
			}
			continue
		}
		members := collect(l.slices(k), b.names.podNames)
		sum := b.names.sum(svc, members)
		if old != nil && old.sum == sum {
			continue // the same input gives the same fragment
		}
		f := b.names.build(svc, members)
		b.replace(w, k, old, &served{sum: sum, apexes: f.apexes, nodes: f.nodes, ptrs: f.ptrs, ancestors: f.ancestors, endpoints: f.endpoints}, touchedPTR)
	}
	for rev := range touchedPTR {
		w.put(rev, b.ptrNode(rev))
	}
	if !w.changed() && b.built {
		return b.cur
	}
	b.built = true

	// The serial follows the clock, so that it moves forward across
	// restarts too, and moves at least by one for every change.
	serial := max(b.cur.serial+1, uint32(time.Now().Unix()))
	b.cur = &snapshot{names: w.done(), serial: serial}
	servedObjects.WithLabelValues("service").Set(float64(len(b.svcs)))
	servedObjects.WithLabelValues("endpoint").Set(float64(b.total))
	b.named += w.other.delta
	servedObjects.WithLabelValues("name").Set(float64(b.indexed + b.named))
	return b.cur
}

// replace swaps what service k served (old, nil: nothing) for s (nil:
// nothing).
func (b *builder) replace(w *tableWriter, k svcKey, old, s *served, touchedPTR map[string]bool) {
	var none served
	if old == nil {
		old = &none
	}
	next := s
	if next == nil {
		next = &none
	}

	// Forward names: one new index per zone, or the names one by one in a
	// flat zone.
	ns, name := strings.ToLower(k.Namespace), strings.ToLower(k.Name)
	for i, zone := range b.names.forward {
		apex := name + "." + ns + ".svc." + zone
		var was, is map[string]*node
		if len(old.nodes) > 0 {
			was = old.nodes[i]
		}
		if len(next.nodes) > 0 {
			is = next.nodes[i]
		}
		if !b.flat[i] {
			var idx *svcIndex
			if is != nil {
				idx = &svcIndex{names: is}
			}
			b.indexed += len(is) - len(was)
			w.putService(apex, apex[:len(apex)-len(zone)], idx)
			continue
		}
		for n := range was {
			if _, ok := is[n]; !ok {
				w.put(n, nil)
			}
		}
		for n, nd := range is {
			w.put(n, nd)
		}
	}

	// Count the new ancestors before dropping the old ones, so that a
	// service that stays does not take its ancestors out and back in.
	for _, a := range next.ancestors {
		if b.ancestors[a]++; b.ancestors[a] == 1 {
			w.put(a, ancestorNode)
		}
	}
	for _, a := range old.ancestors {
		if b.ancestors[a]--; b.ancestors[a] <= 0 {
			delete(b.ancestors, a)
			w.put(a, nil)
		}
	}

	// Reverse names: only those whose (name, target) pairs changed.
	keep := make(map[ptrEntry]bool, len(next.ptrs))
	for _, p := range next.ptrs {
		keep[p] = true
	}
	for _, p := range old.ptrs {
		if keep[p] {
			delete(keep, p) // there before and after
			continue
		}
		b.ptrs[p.reverse] = slices.DeleteFunc(b.ptrs[p.reverse], func(o ptrOwner) bool { return o.key == k && o.target == p.target })
		touchedPTR[p.reverse] = true
	}
	for _, p := range next.ptrs {
		if keep[p] {
			b.ptrs[p.reverse] = append(b.ptrs[p.reverse], ptrOwner{key: k, target: p.target})
			touchedPTR[p.reverse] = true
		}
	}

	b.total += next.endpoints - old.endpoints
	if s == nil {
		delete(b.svcs, k)
		return
	}
	b.svcs[k] = s
}

var ancestorNode = &node{kind: kindAncestor}

// ptrNode builds the node of a reverse name from everyone who points it
// somewhere: one name per headless service (the first in name order when
// a service has several endpoints with that address), in a stable order.
// It returns the published node itself when that says the same.
func (b *builder) ptrNode(rev string) *node {
	owners := b.ptrs[rev]
	if len(owners) == 0 {
		delete(b.ptrs, rev)
		return nil
	}
	first := make(map[svcKey]string, len(owners))
	for _, o := range owners {
		if t, ok := first[o.key]; !ok || o.target < t {
			first[o.key] = o.target
		}
	}
	n := &node{ptr: make([]dns.PTR, 0, len(first))}
	for _, target := range first {
		n.ptr = append(n.ptr, dns.PTR{Hdr: b.names.hdr(rev, dns.TypePTR), Ptr: target})
	}
	slices.SortFunc(n.ptr, func(x, y dns.PTR) int { return strings.Compare(x.Ptr, y.Ptr) })
	if have := b.cur.names.other.shard(hash(rev))[rev]; have != nil && slices.Equal(have.ptr, n.ptr) {
		return have
	}
	return n
}
