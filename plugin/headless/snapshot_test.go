package headless

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

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
