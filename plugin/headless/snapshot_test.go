package headless

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// Rebuilding only the services that changed gives the same table as
// building everything from scratch, through any sequence of changes; a
// change swaps the indexes of the services it names and leaves every other
// service's index the very same; and a rebuild that changes nothing
// returns the published snapshot itself, serial and all.
func TestIncrementalEqualsFull(t *testing.T) {
	tests := []struct {
		name string
		cfg  config
	}{
		{"one zone", config{forward: []string{"cluster.local."}, reverse: []string{"in-addr.arpa.", "ip6.arpa."}, ttl: 5}},
		{"two zones", config{forward: []string{"cluster.local.", "example.org."}, reverse: []string{"10.in-addr.arpa."}, ttl: 5}},
		// ns1.svc.cluster.local. shadows part of cluster.local., which
		// then keeps its names flat.
		{"nested zones", config{forward: []string{"cluster.local.", "ns1.svc.cluster.local."}, reverse: []string{"in-addr.arpa."}, ttl: 5}},
		{"pod names", config{forward: []string{"cluster.local."}, reverse: []string{"in-addr.arpa.", "ip6.arpa."}, ttl: 5, podNames: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { incrementalEqualsFull(t, tc.cfg) })
	}
}

func incrementalEqualsFull(t *testing.T, cfg config) {
	r := rand.New(rand.NewPCG(1, 2))
	inc := newBuilder(cfg)
	l := newStatic()
	var (
		prev     *snapshot
		prevDump string
	)
	for step := 0; step < 600; step++ {
		var keys []svcKey
		unchanged := r.IntN(6) == 0
		for range 1 + r.IntN(3) {
			k := svcKey{Namespace: fmt.Sprintf("ns%d", r.IntN(3)), Name: fmt.Sprintf("s%d", r.IntN(6))}
			keys = append(keys, k)
			if unchanged {
				continue // rebuild without a change
			}
			switch r.IntN(5) {
			case 0:
				delete(l.svcs, k)
			case 1:
				l.svcs[k] = svc(k.Namespace, k.Name, r.IntN(4) > 0)
			default:
				if l.svcs[k] == nil {
					l.svcs[k] = svc(k.Namespace, k.Name, true)
				}
				var eps []ep
				for i := range r.IntN(5) {
					e := ep{addr: fmt.Sprintf("10.244.%d.%d", r.IntN(2), r.IntN(8))}
					if r.IntN(3) > 0 {
						e.hostname = fmt.Sprintf("h%d", i*r.IntN(2)) // sometimes h0 twice
					}
					if r.IntN(5) == 0 {
						e.ready = notReady
					}
					eps = append(eps, e)
				}
				ports := []discovery.EndpointPort{epPort(fmt.Sprintf("p%d", r.IntN(2)), corev1.ProtocolTCP, int32(r.IntN(3)+80))}
				if r.IntN(3) == 0 {
					ports = append(ports, epPort(fmt.Sprintf("p%d", r.IntN(2)), corev1.ProtocolUDP, int32(r.IntN(3)+80)))
				}
				s := slice(k.Namespace, k.Name, "s", discovery.AddressTypeIPv4, ports, eps...)
				for i := range s.Endpoints {
					s.Endpoints[i].TargetRef = &corev1.ObjectReference{Name: fmt.Sprintf("pod-%d", r.IntN(4))}
				}
				l.sl[k] = []*discovery.EndpointSlice{s}
				if r.IntN(3) == 0 {
					l.sl[k] = append(l.sl[k], slice(k.Namespace, k.Name, "v6", discovery.AddressTypeIPv6, ports, ep{addr: fmt.Sprintf("fd00::%d", r.IntN(4)), hostname: "h0"}))
				}
			}
		}
		snap := inc.apply(l, keys)
		full := newBuilder(cfg).apply(l, l.keys())
		if got, want := dump(&cfg, snap.table), dump(&cfg, full.table); got != want {
			t.Fatalf("step %d (%v): incremental build differs from a full one:\n%s\nwant:\n%s", step, keys, got, want)
		}
		// Every entry the incremental writers placed is found where
		// ServeDNS looks for it.
		findable(t, snap.table)
		if got, want := inc.indexed+inc.named, snap.table.len(); got != want {
			t.Fatalf("step %d: the builder counts %d names, the table holds %d", step, got, want)
		}
		if prev == nil {
			prev, prevDump = snap, dump(&cfg, snap.table)
			continue
		}
		// The previous table must be untouched by the new build.
		if dump(&cfg, prev.table) != prevDump {
			t.Fatalf("step %d: the build changed a published table", step)
		}
		switch {
		case snap == prev:
			// Nothing changed, so nothing was published.
		case unchanged:
			t.Fatalf("step %d: a rebuild without changes published a new snapshot (serial %d after %d)", step, snap.serial, prev.serial)
		case snap.serial <= prev.serial:
			t.Fatalf("step %d: serial went from %d to %d", step, prev.serial, snap.serial)
		case snap.table == prev.table:
			t.Fatalf("step %d: a new snapshot with the old table", step)
		}
		// Services that were not rebuilt keep their index pointer.
		for k := range l.svcs {
			if containsKey(keys, k) {
				continue
			}
			for _, zone := range cfg.forward {
				apex := strings.ToLower(k.Name+"."+k.Namespace) + ".svc." + zone
				pre := apex[:len(apex)-len(zone)]
				a := prev.table.service([]byte(apex), []byte(pre))
				b := snap.table.service([]byte(apex), []byte(pre))
				if a != b {
					t.Fatalf("step %d: rebuilding %v replaced the index of %s", step, keys, apex)
				}
			}
		}
		prev, prevDump = snap, dump(&cfg, snap.table)
	}
}

// findable checks that ServeDNS's lookups find every entry of t: each
// service by its name, each name above services, each address's namers.
func findable(t *testing.T, tb *table) {
	t.Helper()
	for apex, idx := range tb.svcs.All() {
		_, rest, _ := strings.Cut(apex, ".svc.")
		nameNsSvc := apex[:len(apex)-len(rest)]
		if got := tb.service([]byte(apex), []byte(nameNsSvc)); got != idx {
			t.Fatalf("service %s not found", apex)
		}
	}
	for name := range tb.ancestors.All() {
		if !tb.ancestor([]byte(name), hash(name)) {
			t.Fatalf("ancestor %s not found", name)
		}
	}
	for a, s := range tb.ptr4.All() {
		if got := tb.namers(binary.BigEndian.AppendUint32(nil, a)); got != s {
			t.Fatalf("namers of %#x not found", a)
		}
	}
	for a, s := range tb.ptr6.All() {
		if got := tb.namers(a[:]); got != s {
			t.Fatalf("namers of %x not found", a)
		}
	}
}

func containsKey(keys []svcKey, k svcKey) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// TestPublishWhileServing answers questions from several goroutines while
// one publishes change after change, as the source and the server do:
// under -race it shows that ServeDNS reads published snapshots that no
// writer touches. A service no change touches answers the same all along.
func TestPublishWhileServing(t *testing.T) {
	l := cluster(20, 5)
	h := newTest(t, l, true)
	questions := []struct {
		name  string
		qtype uint16
	}{
		{"set19-2.set19.bench.svc.cluster.local.", dns.TypeA},
		{"set3-1.set3.bench.svc.cluster.local.", dns.TypeA},
		{"set3.bench.svc.cluster.local.", dns.TypeA},
		{"_http._tcp.set3.bench.svc.cluster.local.", dns.TypeSRV},
		{"3.0.0.10.in-addr.arpa.", dns.TypePTR},
		{"set42.bench.svc.cluster.local.", dns.TypeA},
	}
	stop := make(chan struct{})
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var steady string
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				q := questions[(i+g)%len(questions)]
				m := new(dns.Msg)
				m.SetQuestion(q.name, q.qtype)
				rec := dnstest.NewRecorder(&discard{})
				h.ServeDNS(context.Background(), rec, m)
				if rec.Msg == nil || rec.Msg.Rcode == dns.RcodeServerFailure {
					errs <- fmt.Errorf("%s: %v", q.name, rec.Msg)
					return
				}
				if q.name == questions[0].name { // set19 never changes
					if steady == "" {
						steady = rec.Msg.Answer[0].String()
					} else if got := rec.Msg.Answer[0].String(); got != steady {
						errs <- fmt.Errorf("untouched %s changed: %s, then %s", q.name, steady, got)
						return
					}
				}
			}
		}()
	}
	flips := make([]func(int), 4)
	for i := range flips {
		flips[i] = flipper(l, svcKey{Namespace: "bench", Name: fmt.Sprintf("set%d", i+2)})
	}
	for step := range 300 {
		k := step % len(flips)
		flips[k](step / len(flips))
		h.publish(l, []svcKey{{Namespace: "bench", Name: fmt.Sprintf("set%d", k+2)}})
	}
	close(stop)
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkRebuildOne is the cost of publishing a change to one service
// among a hundred.
func BenchmarkRebuildOne(b *testing.B) {
	l := thousandPods()
	h := newTest(b, l, false)
	keys := []svcKey{{Namespace: "bench", Name: "set42"}}
	b.ReportAllocs()
	for b.Loop() {
		h.publish(l, keys)
	}
}

// flipper returns a function that, called before each rebuild, flips the
// readiness of one endpoint in the middle of service k, so that every
// rebuild publishes a real change: the endpoint's name, its PTR, and the
// service's A, SRV and glue.
func flipper(l *staticLister, k svcKey) func(int) {
	ready := l.sl[k]
	notReadySl := make([]*discovery.EndpointSlice, len(ready))
	for i, s := range ready {
		c := s.DeepCopy()
		c.Endpoints[len(c.Endpoints)/2].Conditions.Ready = notReady
		notReadySl[i] = c
	}
	return func(i int) {
		if i%2 == 0 {
			l.sl[k] = notReadySl
		} else {
			l.sl[k] = ready
		}
	}
}

// BenchmarkRebuildOneEndpoint1000 is the cost of publishing one endpoint's
// change in a 1,000-endpoint service. The goal is under 1 ms of CPU
// (cpu-ns/op); BENCHMARKS.md has the measurements.
func BenchmarkRebuildOneEndpoint1000(b *testing.B) {
	benchFlipOne(b, 1, 1000)
}

// benchFlipOne measures publishing one endpoint's change in the first of
// services services of pods pods each.
func benchFlipOne(b *testing.B, services, pods int) {
	l := cluster(services, pods)
	h := newTest(b, l, false)
	k := svcKey{Namespace: "bench", Name: "set0"}
	flip := flipper(l, k)
	keys := []svcKey{k}
	b.ReportAllocs()
	i := 0
	cpu := cpuTime()
	for b.Loop() {
		flip(i)
		i++
		before := h.snap.Load()
		h.publish(l, keys)
		// Every rebuild is a real change, never the unchanged path.
		if h.snap.Load() == before {
			b.Fatalf("rebuild %d published nothing", i)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkRebuildOneService is the cost of one endpoint changing in one
// service, in a cluster of 1,000 and of 100,000 endpoints, with services of
// 10 and of 1,000 pods. Updates cost what changed when the two cluster
// sizes cost the same (the goal: within 20%). The machine's load moves
// single runs by more than that; compare medians of -count 6 or more.
func BenchmarkRebuildOneService(b *testing.B) {
	for _, pods := range []int{10, 1000} {
		for _, endpoints := range []int{1000, 100000} {
			b.Run(fmt.Sprintf("pods=%d/endpoints=%d", pods, endpoints), func(b *testing.B) {
				benchFlipOne(b, endpoints/pods, pods)
			})
		}
	}
}

// BenchmarkRebuildUnchanged is the cost of an update that changes nothing
// in a 2,000-pod service (a resync, a relist, a field the plugin ignores).
func BenchmarkRebuildUnchanged(b *testing.B) {
	l := cluster(1, 2000)
	h := newTest(b, l, false)
	keys := []svcKey{{Namespace: "bench", Name: "set0"}}
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		h.publish(l, keys)
	}
	reportCPU(b, cpu)
}

// BenchmarkSnapshotMemory reports the heap a full build holds (the
// snapshot with the builder's bookkeeping) per endpoint, for 100,000
// endpoints in 1,000 services of 100 pods, each with a hostname and two
// named ports. The objects themselves (the informers' cache) are made
// before it measures: BenchmarkCacheMemory counts them. Hostname labels
// are the cache's own strings, shared.
func BenchmarkSnapshotMemory(b *testing.B) {
	l := cluster(1000, 100)
	keys := l.keys()
	cfg := config{forward: []string{"cluster.local."}, reverse: []string{"in-addr.arpa.", "ip6.arpa."}, ttl: 5}
	var perEndpoint float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		bld := newBuilder(cfg)
		snap := bld.apply(l, keys)
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(bld)
		runtime.KeepAlive(snap)
		perEndpoint = float64(after.HeapAlloc-before.HeapAlloc) / 100000
	}
	b.ReportMetric(perEndpoint, "B/endpoint")
}

// cpuTime is the CPU time the process has used, garbage collection
// included. On a machine shared with other work it measures a rebuild more
// truly than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
