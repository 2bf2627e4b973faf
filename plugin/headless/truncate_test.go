package headless

import (
	"context"
	"fmt"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// bigService is a headless service with n pods and two named ports.
func bigService(n int) *staticLister {
	var eps []ep
	for i := range n {
		eps = append(eps, ep{addr: fmt.Sprintf("10.244.%d.%d", i/250, i%250+1), hostname: fmt.Sprintf("big-%d", i)})
	}
	ports := []discovery.EndpointPort{epPort("client", corev1.ProtocolTCP, 2379), epPort("peer", corev1.ProtocolTCP, 2380)}
	return newStatic(svc("ns", "big", true), slice("ns", "big", "big-1", discovery.AddressTypeIPv4, ports, eps...))
}

// CoreDNS's server wraps every writer in a ScrubWriter; through it, a UDP
// answer that does not fit the client's buffer is truncated with TC set,
// and TCP gets everything.
func TestTruncation(t *testing.T) {
	h := newTest(t, bigService(60), false)
	tests := []struct {
		name     string
		tcp      bool
		bufsize  uint16 // 0: no EDNS0
		qtype    uint16
		tc       bool
		complete bool
	}{
		{name: "udp 512 A", qtype: dns.TypeA, tc: true},
		{name: "udp 512 SRV", qtype: dns.TypeSRV, tc: true},
		{name: "udp edns 4096 A", bufsize: 4096, qtype: dns.TypeA, complete: true},
		{name: "udp edns 1232 SRV", bufsize: 1232, qtype: dns.TypeSRV, tc: true},
		{name: "tcp A", tcp: true, qtype: dns.TypeA, complete: true},
		{name: "tcp SRV", tcp: true, qtype: dns.TypeSRV, complete: true},
	}
	for _, tc := range tests {
		m := new(dns.Msg)
		m.SetQuestion("big.ns.svc.cluster.local.", tc.qtype)
		if tc.bufsize > 0 {
			m.SetEdns0(tc.bufsize, false)
		}
		rec := dnstest.NewRecorder(&test.ResponseWriter{TCP: tc.tcp})
		w := request.NewScrubWriter(m, rec)
		if _, err := h.ServeDNS(context.Background(), w, m); err != nil {
			t.Fatal(err)
		}
		resp := rec.Msg
		if resp.Truncated != tc.tc {
			t.Errorf("%s: TC=%v, want %v", tc.name, resp.Truncated, tc.tc)
		}
		per := 1
		if tc.qtype == dns.TypeSRV {
			per = 2
		}
		if complete := len(resp.Answer) == 60*per; complete != tc.complete {
			t.Errorf("%s: %d answers, complete=%v, want complete=%v", tc.name, len(resp.Answer), complete, tc.complete)
		}
		if tc.bufsize > 0 && resp.IsEdns0() == nil {
			t.Errorf("%s: no OPT record in the answer to an EDNS0 query", tc.name)
		}
		if !tc.tcp {
			limit := 512
			if tc.bufsize > 0 {
				limit = int(tc.bufsize)
			}
			if resp.Len() > limit {
				t.Errorf("%s: %d bytes, more than the client's %d", tc.name, resp.Len(), limit)
			}
		}
	}
}
