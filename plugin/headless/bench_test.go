package headless

import (
	"context"
	"fmt"
	"testing"

	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// thousandPods is 100 headless services of 10 pods each.
func thousandPods() *staticLister {
	l := newStatic()
	ports := []discovery.EndpointPort{epPort("http", corev1.ProtocolTCP, 80), epPort("peer", corev1.ProtocolTCP, 7000)}
	for s := range 100 {
		name := fmt.Sprintf("set%d", s)
		var eps []ep
		for p := range 10 {
			eps = append(eps, ep{addr: fmt.Sprintf("10.244.%d.%d", s, p+1), hostname: fmt.Sprintf("%s-%d", name, p)})
		}
		l.svcs[svcKey{Namespace: "bench", Name: name}] = svc("bench", name, true)
		l.sl[svcKey{Namespace: "bench", Name: name}] = []*discovery.EndpointSlice{slice("bench", name, name+"-1", discovery.AddressTypeIPv4, ports, eps...)}
	}
	return l
}

// discard is a ResponseWriter that drops what it is given, so the benchmark
// measures the plugin alone.
type discard struct{ test.ResponseWriter }

func (*discard) WriteMsg(*dns.Msg) error { return nil }

func BenchmarkServeDNS(b *testing.B) {
	h := newTest(b, thousandPods(), true)
	queries := []struct {
		name  string
		qtype uint16
	}{
		{"set42-7.set42.bench.svc.cluster.local.", dns.TypeA},
		{"SET42-7.Set42.bench.svc.cluster.local.", dns.TypeA},
		{"set42.bench.svc.cluster.local.", dns.TypeA},
		{"_peer._tcp.set42.bench.svc.cluster.local.", dns.TypeSRV},
		{"set42.bench.svc.cluster.local.", dns.TypeSRV},
		{"7.42.244.10.in-addr.arpa.", dns.TypePTR},
		{"set42-99.set42.bench.svc.cluster.local.", dns.TypeA},   // NXDOMAIN
		{"set42-7.set42.bench.svc.cluster.local.", dns.TypeAAAA}, // NODATA
	}
	for _, q := range queries {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b.Run(dns.TypeToString[q.qtype]+"/"+q.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &discard{}
			ctx := context.Background()
			for b.Loop() {
				h.ServeDNS(ctx, w, m)
			}
		})
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

// BenchmarkFallthrough is the cost headless adds to every name it does not
// own (ClusterIP services, pods) on its way to the kubernetes plugin.
func BenchmarkFallthrough(b *testing.B) {
	h := newTest(b, thousandPods(), true)
	h.Next = test.NextHandler(dns.RcodeSuccess, nil)
	m := new(dns.Msg)
	m.SetQuestion("api.default.svc.cluster.local.", dns.TypeA)
	w := &discard{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeDNS(ctx, w, m)
	}
}
