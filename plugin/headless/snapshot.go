package headless

import (
	"cmp"
	"encoding/binary"
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
	table  *table
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
// service gets new indexes of its forward names, swapped in with one
// pointer per zone, and only the addresses it gained or lost change in the
// reverse maps.
// Sources call apply from one goroutine at a time; mu makes that a rule.
type builder struct {
	mu      sync.Mutex
	cfg     config
	scratch collector // reused by one build after another

	cur       *snapshot // the last snapshot apply returned
	built     bool      // whether apply has returned one
	svcs      map[svcKey]*served
	byApex    map[string]*served // by name in the primary zone
	ancestors map[string]int     // reference counts of ancestor names
	total     int                // ready addresses served, for metrics
	indexed   int                // names in service indexes, for metrics
	named     int                // ancestors and reverse names, for metrics
}

// served is what the builder remembers of one headless service.
type served struct {
	sum       [32]byte // of the inputs of its data (see config.sum)
	data      *svcData
	solo      *ptrSet // the reverse maps' value for addresses only it names
	ancestors []string
}

func newBuilder(c config) *builder {
	return &builder{
		cfg:       c,
		cur:       &snapshot{table: &table{}},
		svcs:      map[svcKey]*served{},
		byApex:    map[string]*served{},
		ancestors: map[string]int{},
	}
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

	w := newTableWriter(b.cur.table)
	for _, k := range keys {
		old := b.svcs[k]
		svc := l.service(k)
		if !IsHeadless(svc) {
			if old != nil {
				b.replace(w, k, old, nil)
			}
			continue
		}
		members := b.scratch.collect(l.slices(k), b.cfg.podNames)
		var sum [32]byte
		sum, b.scratch.sum = b.cfg.sum(svc, members, b.scratch.sum)
		if old != nil && old.sum == sum {
			continue // the same input gives the same data
		}
		b.replace(w, k, old, &served{sum: sum, data: b.cfg.build(members)})
	}
	b.scratch.release()
	if !w.changed() && b.built {
		return b.cur
	}
	b.built = true

	// The serial follows the clock, so that it moves forward across
	// restarts too, and moves at least by one for every change.
	serial := max(b.cur.serial+1, uint32(time.Now().Unix()))
	b.cur = &snapshot{table: w.done(), serial: serial}
	servedObjects.WithLabelValues("service").Set(float64(len(b.svcs)))
	servedObjects.WithLabelValues("endpoint").Set(float64(b.total))
	b.named += w.delta()
	servedObjects.WithLabelValues("name").Set(float64(b.indexed + b.named))
	return b.cur
}

// none stands for a service that serves nothing. It is shared and never
// written to.
var none = &served{data: &svcData{}}

// replace swaps what service k served (old, nil: nothing) for s (nil:
// nothing).
func (b *builder) replace(w *tableWriter, k svcKey, old, s *served) {
	ns, name := strings.ToLower(k.Namespace), strings.ToLower(k.Name)
	primary := name + "." + ns + ".svc." + b.cfg.forward[0]
	if old == nil {
		old = none
	}
	next := s
	if next == nil {
		next = none
	} else {
		next.solo, next.ancestors = old.solo, old.ancestors // the same service
		if next.solo == nil {
			next.solo = &ptrSet{apexes: []string{primary}}
			for _, zone := range b.cfg.forward {
				next.ancestors = append(next.ancestors, "svc."+zone, ns+".svc."+zone)
			}
		}
	}

	// Forward names: one new index per zone.
	for i, zone := range b.cfg.forward {
		apex := primary
		if i > 0 {
			apex = name + "." + ns + ".svc." + zone
		}
		var idx *svcIndex
		if s != nil {
			idx = &svcIndex{apex: apex, svcData: next.data}
			b.indexed += idx.names()
		}
		if old != none {
			b.indexed -= (&svcIndex{svcData: old.data}).names()
		}
		w.putService(apex, apex[:len(apex)-len(zone)], idx)
	}

	// Count the new ancestors before dropping the old ones, so that a
	// service that stays does not take its ancestors out and back in.
	for _, a := range next.ancestors {
		if b.ancestors[a]++; b.ancestors[a] == 1 {
			w.putAncestor(a, true)
		}
	}
	for _, a := range old.ancestors {
		if b.ancestors[a]--; b.ancestors[a] <= 0 {
			delete(b.ancestors, a)
			w.putAncestor(a, false)
		}
	}

	// Reverse names: only the addresses the service gained or lost.
	if s != nil {
		b.byApex[primary] = next
	}
	var a4 [4]byte
	walkSorted(old.data.ptr4, next.data.ptr4, func(a, b uint64) int { return cmp.Compare(a>>32, b>>32) }, func(r uint64, gained bool) {
		binary.BigEndian.PutUint32(a4[:], uint32(r>>32))
		b.renamed(w, a4[:], primary, next.solo, gained)
	})
	od, nd := old.data, next.data
	walkSorted(od.ptr6, nd.ptr6, func(a, b addrRef) int { return compareBytes(od.addrs[a.off:a.off+16], nd.addrs[b.off:b.off+16]) }, func(r addrRef, gained bool) {
		if gained {
			b.renamed(w, nd.addrs[r.off:r.off+16], primary, next.solo, true)
		} else {
			b.renamed(w, od.addrs[r.off:r.off+16], primary, next.solo, false)
		}
	})

	b.total += next.data.endpoints - old.data.endpoints
	if s == nil {
		delete(b.svcs, k)
		delete(b.byApex, primary)
		return
	}
	b.svcs[k] = s
}

// walkSorted calls f for every element of was that is not in is (gained
// false) and every element of is that is not in was (gained true); both
// are sorted by compare, which compares an element of was with one of is.
func walkSorted[T any](was, is []T, compare func(w, i T) int, f func(e T, gained bool)) {
	i, j := 0, 0
	for i < len(was) || j < len(is) {
		switch {
		case j == len(is) || i < len(was) && compare(was[i], is[j]) < 0:
			f(was[i], false)
			i++
		case i == len(was) || compare(was[i], is[j]) > 0:
			f(is[j], true)
			j++
		default:
			i++
			j++
		}
	}
}

// renamed records the service called apex in the primary zone (solo: its
// one-element set) as a namer of address a (4 or 16 bytes) when gained,
// or as no more one.
func (b *builder) renamed(w *tableWriter, a []byte, apex string, solo *ptrSet, gained bool) {
	if gained {
		w.putPTR(a, with(w.namers(a), apex, solo))
	} else {
		w.putPTR(a, b.without(w.namers(a), apex))
	}
}

// with returns the set s with apex added; solo is apex's own set.
func with(s *ptrSet, apex string, solo *ptrSet) *ptrSet {
	if s == nil || len(s.apexes) == 0 {
		return solo
	}
	if slices.Contains(s.apexes, apex) {
		return s
	}
	out := &ptrSet{apexes: append(slices.Clip(s.apexes), apex)}
	slices.Sort(out.apexes)
	return out
}

// without returns the set s with apex taken out, nil when none is left.
func (b *builder) without(s *ptrSet, apex string) *ptrSet {
	if s == nil || !slices.Contains(s.apexes, apex) {
		return s
	}
	rest := slices.DeleteFunc(slices.Clone(s.apexes), func(a string) bool { return a == apex })
	switch len(rest) {
	case 0:
		return nil
	case 1:
		if o := b.byApex[rest[0]]; o != nil {
			return o.solo
		}
	}
	return &ptrSet{apexes: rest}
}
