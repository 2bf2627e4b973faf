package headless

import (
	"fmt"
	"testing"
)

// BenchmarkTableLookup is the cost of the table lookups on ServeDNS's
// path, alone: a service's index by its name (present and missing) and
// an IPv4 address's namers, in clusters of 1,000 and 100,000 endpoints.
func BenchmarkTableLookup(b *testing.B) {
	for _, endpoints := range []int{1000, 100000} {
		l := cluster(endpoints/10, 10)
		cfg := config{forward: []string{"cluster.local."}, reverse: []string{"in-addr.arpa."}, ttl: 5}
		t := newBuilder(cfg).apply(l, l.keys()).table
		apex := []byte("set42.bench.svc.cluster.local.")
		missing := []byte("nope42.bench.svc.cluster.local.")
		const zone = len("cluster.local.")
		addr := []byte{10, 0, 1, 7} // the 263rd endpoint's
		b.Run(fmt.Sprintf("endpoints=%d/service", endpoints), func(b *testing.B) {
			for b.Loop() {
				if t.service(apex, apex[:len(apex)-zone]) == nil {
					b.Fatal("no service")
				}
			}
		})
		b.Run(fmt.Sprintf("endpoints=%d/missing", endpoints), func(b *testing.B) {
			for b.Loop() {
				if t.service(missing, missing[:len(missing)-zone]) != nil {
					b.Fatal("found a missing service")
				}
			}
		})
		b.Run(fmt.Sprintf("endpoints=%d/namers", endpoints), func(b *testing.B) {
			for b.Loop() {
				if t.namers(addr) == nil {
					b.Fatal("no namers")
				}
			}
		})
	}
}
