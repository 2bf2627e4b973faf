package headless

import (
	"bytes"
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

// srvService is headless service "s" with n pods, the given named ports,
// an IPv4 address for each pod and, with dual, an IPv6 one too.
func srvService(n int, ports []discovery.EndpointPort, dual bool) *staticLister {
	var v4, v6 []ep
	for i := range n {
		host := fmt.Sprintf("s-%d", i)
		v4 = append(v4, ep{addr: fmt.Sprintf("10.244.%d.%d", i/250, i%250+1), hostname: host})
		v6 = append(v6, ep{addr: fmt.Sprintf("fd00::%x", i+1), hostname: host})
	}
	objs := []any{svc("ns", "s", true), slice("ns", "s", "s-v4", discovery.AddressTypeIPv4, ports, v4...)}
	if dual {
		objs = append(objs, slice("ns", "s", "s-v6", discovery.AddressTypeIPv6, ports, v6...))
	}
	return newStatic(objs...)
}

// scrubbed is what the server sends for reply to query q over the given
// transport: the reply through CoreDNS's ScrubWriter.
func scrubbed(t *testing.T, q, reply *dns.Msg, tcp bool) *dns.Msg {
	t.Helper()
	rec := dnstest.NewRecorder(&test.ResponseWriter{TCP: tcp})
	if err := request.NewScrubWriter(q, rec).WriteMsg(reply); err != nil {
		t.Fatal(err)
	}
	return rec.Msg
}

// sameReply reports how got and want differ, or "" when they carry the
// same rcode, TC flag and records, in the same order, and pack to the same
// bytes.
func sameReply(got, want *dns.Msg) string {
	if got.Rcode != want.Rcode || got.Truncated != want.Truncated {
		return fmt.Sprintf("rcode %d TC %v, want rcode %d TC %v", got.Rcode, got.Truncated, want.Rcode, want.Truncated)
	}
	for _, s := range []struct {
		name      string
		got, want []dns.RR
	}{{"answer", got.Answer, want.Answer}, {"authority", got.Ns, want.Ns}, {"additional", got.Extra, want.Extra}} {
		if len(s.got) != len(s.want) {
			return fmt.Sprintf("%d %s records, want %d", len(s.got), s.name, len(s.want))
		}
		for i := range s.got {
			if g, w := s.got[i].String(), s.want[i].String(); g != w {
				return fmt.Sprintf("%s %d: %s, want %s", s.name, i, g, w)
			}
		}
	}
	g, err1 := got.Pack()
	w, err2 := want.Pack()
	if err1 != nil || err2 != nil || !bytes.Equal(g, w) {
		return fmt.Sprintf("packed differently (%v, %v): %d and %d bytes", err1, err2, len(g), len(w))
	}
	return ""
}

// The SRV answers headless cuts short for a reply that will be truncated
// are, once the server has truncated them, exactly the answers it built in
// full and the server truncated: for every service size, port count,
// address family, client buffer, transport and SRV name.
func TestSRVTruncationEquivalent(t *testing.T) {
	onePort := []discovery.EndpointPort{epPort("http", corev1.ProtocolTCP, 80)}
	twoPorts := []discovery.EndpointPort{epPort("http", corev1.ProtocolTCP, 80), epPort("peer", corev1.ProtocolTCP, 7000)}
	transports := []struct {
		name    string
		tcp     bool
		bufsize uint16 // 0: no EDNS0
	}{
		{name: "udp512"},
		{name: "edns1232", bufsize: 1232},
		{name: "edns4096", bufsize: 4096},
		{name: "tcp", tcp: true},
		{name: "tcp-edns1232", tcp: true, bufsize: 1232},
	}
	cut := 0 // cases where headless built fewer records than in full
	for _, pods := range []int{1, 10, 30, 100, 1000} {
		for _, ports := range [][]discovery.EndpointPort{onePort, twoPorts} {
			for _, dual := range []bool{false, true} {
				h := newTest(t, srvService(pods, ports, dual), false)
				snap := h.snap.Load()
				for _, name := range []string{"s.ns.svc.cluster.local.", "_http._tcp.S.ns.svc.cluster.local.", "s-0.s.ns.svc.cluster.local."} {
					for _, tr := range transports {
						desc := fmt.Sprintf("pods=%d ports=%d dual=%v %s %s", pods, len(ports), dual, tr.name, name)
						q := new(dns.Msg)
						q.SetQuestion(name, dns.TypeSRV)
						if tr.bufsize > 0 {
							q.SetEdns0(tr.bufsize, false)
						}
						// What the server sends today: everything built,
						// then truncated.
						key, hsh, ok := fold(new([maxName]byte), name)
						if !ok {
							t.Fatalf("%s: cannot fold", desc)
						}
						zi := h.zoneOf(key)
						x, _ := h.find(snap.table, key, hsh, zi)
						if !x.owned() {
							t.Fatalf("%s: not found", desc)
						}
						full := h.reply(q, snap, x, zi, 0)
						built, glue := len(full.Answer), len(full.Extra)
						want := scrubbed(t, q, full, tr.tcp)

						// What it sends with the reply cut short, through
						// the handler as the server calls it.
						rec := dnstest.NewRecorder(&test.ResponseWriter{TCP: tr.tcp})
						if _, err := h.ServeDNS(context.Background(), request.NewScrubWriter(q, rec), q); err != nil {
							t.Fatalf("%s: %v", desc, err)
						}
						if d := sameReply(rec.Msg, want); d != "" {
							t.Errorf("%s: %s", desc, d)
						}

						// The cut reply keeps at least the records the
						// truncation keeps, and one more that cannot fit:
						// a bound too small would fail here (and above).
						limit := (&request.Request{W: &test.ResponseWriter{TCP: tr.tcp}, Req: q}).Size()
						short := h.reply(q, snap, x, zi, limit)
						if short.Truncated {
							cut++
							if len(short.Answer) <= len(want.Answer) {
								t.Errorf("%s: built %d SRV records, the truncated reply keeps %d", desc, len(short.Answer), len(want.Answer))
							}
							if !want.Truncated || len(want.Answer) == built {
								t.Errorf("%s: cut short, but the full reply was not truncated", desc)
							}
						} else if len(short.Answer) != built || len(short.Extra) != glue {
							t.Errorf("%s: not cut, but %d+%d records, want %d+%d", desc, len(short.Answer), len(short.Extra), built, glue)
						}
					}
				}
			}
		}
	}
	// The optimisation is exercised: 100 pods do not fit 512 bytes.
	if cut == 0 {
		t.Error("no reply was cut short")
	}
	t.Logf("%d replies cut short", cut)
}

// sameReply tells a reply built for a smaller buffer than the client's
// from the one the server sends: a bound that let headless build too few
// records would not go unnoticed.
func TestSRVTruncationBoundTooSmall(t *testing.T) {
	h := newTest(t, srvService(100, []discovery.EndpointPort{epPort("http", corev1.ProtocolTCP, 80)}, false), false)
	snap := h.snap.Load()
	name := "s.ns.svc.cluster.local."
	key, hsh, _ := fold(new([maxName]byte), name)
	zi := h.zoneOf(key)
	x, _ := h.find(snap.table, key, hsh, zi)
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeSRV)
	q.SetEdns0(4096, false)
	want := scrubbed(t, q, h.reply(q, snap, x, zi, 0), false)
	tooSmall := scrubbed(t, q, h.reply(q, snap, x, zi, 512), false)
	if len(want.Answer) <= len(tooSmall.Answer) {
		t.Fatalf("4096 bytes keep %d records, 512 keep %d", len(want.Answer), len(tooSmall.Answer))
	}
	if sameReply(tooSmall, want) == "" {
		t.Error("a reply built for 512 bytes passes for one truncated to 4096")
	}
}
