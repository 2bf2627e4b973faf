package headless

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// staticLister serves fixed objects to the builder.
type staticLister struct {
	svcs map[svcKey]*corev1.Service
	sl   map[svcKey][]*discovery.EndpointSlice
}

func newStatic(objs ...any) *staticLister {
	l := &staticLister{svcs: map[svcKey]*corev1.Service{}, sl: map[svcKey][]*discovery.EndpointSlice{}}
	for _, o := range objs {
		switch v := o.(type) {
		case *corev1.Service:
			l.svcs[svcKey{Namespace: v.Namespace, Name: v.Name}] = v
		case *discovery.EndpointSlice:
			k := svcKey{Namespace: v.Namespace, Name: v.Labels[discovery.LabelServiceName]}
			l.sl[k] = append(l.sl[k], v)
		}
	}
	return l
}

func (l *staticLister) service(k svcKey) *corev1.Service           { return l.svcs[k] }
func (l *staticLister) slices(k svcKey) []*discovery.EndpointSlice { return l.sl[k] }

func (l *staticLister) keys() []svcKey {
	var ks []svcKey
	for k := range l.svcs {
		ks = append(ks, k)
	}
	return ks
}

func svc(ns, name string, headless bool) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	s.Spec.ClusterIP = "10.96.0.10"
	if headless {
		s.Spec.ClusterIP = corev1.ClusterIPNone
	}
	return s
}

type ep struct {
	addr     string
	hostname string
	ready    *bool
}

func ptrTo[T any](v T) *T { return &v }

var notReady = ptrTo(false)

func slice(ns, svcName, name string, family discovery.AddressType, ports []discovery.EndpointPort, eps ...ep) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{discovery.LabelServiceName: svcName}},
		AddressType: family,
		Ports:       ports,
	}
	for _, e := range eps {
		d := discovery.Endpoint{Addresses: []string{e.addr}, Conditions: discovery.EndpointConditions{Ready: e.ready}}
		if e.hostname != "" {
			d.Hostname = ptrTo(e.hostname)
		}
		s.Endpoints = append(s.Endpoints, d)
	}
	return s
}

func epPort(name string, proto corev1.Protocol, num int32) discovery.EndpointPort {
	return discovery.EndpointPort{Name: ptrTo(name), Protocol: ptrTo(proto), Port: ptrTo(num)}
}

// fixture is the cluster most handler tests run against.
func fixture() *staticLister {
	webPorts := []discovery.EndpointPort{epPort("http", corev1.ProtocolTCP, 8080), epPort("dns", corev1.ProtocolUDP, 53)}
	ext := svc("ns", "ext", false)
	ext.Spec.Type = corev1.ServiceTypeExternalName
	ext.Spec.ClusterIP = ""
	return newStatic(
		svc("ns", "web", true),
		slice("ns", "web", "web-v4", discovery.AddressTypeIPv4, webPorts,
			ep{addr: "10.244.0.10", hostname: "web-0", ready: ptrTo(true)},
			ep{addr: "10.244.0.11", hostname: "web-1"}, // nil ready counts as ready
			ep{addr: "10.244.0.12", hostname: "web-2", ready: notReady},
			ep{addr: "10.244.0.13"}, // no hostname
		),
		slice("ns", "web", "web-v6", discovery.AddressTypeIPv6, webPorts,
			ep{addr: "fd00::10", hostname: "web-0"},
		),
		svc("ns", "empty", true),
		svc("ns", "api", false),
		slice("ns", "api", "api-1", discovery.AddressTypeIPv4, webPorts, ep{addr: "10.244.0.10"}),
		ext,
		// Two endpoints sharing a hostname, and one address under two names.
		svc("ns", "shared", true),
		slice("ns", "shared", "shared-1", discovery.AddressTypeIPv4, nil,
			ep{addr: "10.244.0.20", hostname: "both"},
			ep{addr: "10.244.0.21", hostname: "both"},
			ep{addr: "10.244.0.22", hostname: "b"},
			ep{addr: "10.244.0.22", hostname: "a"},
		),
		// A second headless service with a name for web-0's address.
		svc("other", "alias", true),
		slice("other", "alias", "alias-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{epPort("", corev1.ProtocolTCP, 9000)},
			ep{addr: "10.244.0.10", hostname: "pet"},
		),
	)
}

// newTest builds a synced plugin over l.
func newTest(t testing.TB, l *staticLister, fall bool) *Headless {
	t.Helper()
	h := &Headless{}
	if err := h.configure([]string{"cluster.local.", "in-addr.arpa.", "ip6.arpa."}, 5, 3); err != nil {
		t.Fatal(err)
	}
	if fall {
		h.Fall.SetZonesFromArgs(nil)
	}
	h.Next = nextHandler
	h.publish(l, l.keys())
	return h
}

// nextHandler answers with a TXT record "next", so tests see fallthrough.
var nextHandler = test.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) == 0 {
		return dns.RcodeFormatError, nil
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 303}, Txt: []string{"next"}}}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
})

func nextTXT(name string) dns.RR { return test.TXT(name + ` 303 IN TXT "next"`) }

// run sends tc to h and checks the answer the way CoreDNS's tests do.
func run(t *testing.T, h plugin.Handler, tc test.Case) *dns.Msg {
	t.Helper()
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	rcode, err := h.ServeDNS(context.Background(), rec, tc.Msg())
	if err != nil {
		t.Fatalf("%s %s: unexpected error %v", tc.Qname, dns.TypeToString[tc.Qtype], err)
	}
	resp := rec.Msg
	if resp == nil {
		// The plugin left the writing to the server (SERVFAIL, REFUSED).
		resp = new(dns.Msg)
		resp.SetRcode(tc.Msg(), rcode)
	}
	if err := test.SortAndCheck(resp, tc); err != nil {
		t.Errorf("%s %s: %v\n%s", tc.Qname, dns.TypeToString[tc.Qtype], err, resp)
	}
	return resp
}

// collect is collector.collect with buffers of its own.
func collect(sl []*discovery.EndpointSlice, podNames bool) []*draft {
	var c collector
	return c.collect(sl, podNames)
}

// reverseName is dns.ReverseAddr for an address already parsed.
func reverseName(a netip.Addr) string {
	var buf [maxReverse]byte
	return string(appendReverse(buf[:0], a))
}

// len counts the names in t: forward names in every service index,
// ancestors and reverse names, as the builder counts them as it goes.
func (t *table) len() int {
	n := 0
	for _, idx := range t.svcs.All() {
		n += idx.names()
	}
	for range t.ancestors.All() {
		n++
	}
	for range t.ptr4.All() {
		n++
	}
	for range t.ptr6.All() {
		n++
	}
	return n
}

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

// cluster is services headless services of pods ready endpoints each, in
// namespace "bench", every endpoint with a hostname, a unique address and
// two named ports. Addresses are counted up from 10.0.0.1 and are only
// ever put into answers.
func cluster(services, pods int) *staticLister {
	l := newStatic()
	ports := []discovery.EndpointPort{epPort("http", corev1.ProtocolTCP, 80), epPort("peer", corev1.ProtocolTCP, 7000)}
	i := 0
	for s := range services {
		name := fmt.Sprintf("set%d", s)
		var eps []ep
		for p := range pods {
			i++
			eps = append(eps, ep{addr: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), hostname: fmt.Sprintf("%s-%d", name, p)})
		}
		k := svcKey{Namespace: "bench", Name: name}
		l.svcs[k] = svc("bench", name, true)
		l.sl[k] = []*discovery.EndpointSlice{slice("bench", name, name+"-1", discovery.AddressTypeIPv4, ports, eps...)}
	}
	return l
}

// packer is a ResponseWriter that packs each answer into one reused
// buffer, as the server would before sending it, and drops it.
type packer struct {
	test.ResponseWriter
	buf []byte
}

func (p *packer) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(p.buf)
	p.buf = b[:cap(b)]
	return err
}

// serveLoop has hd answer m through w for the benchmark, reporting
// allocations and CPU time per answer.
func serveLoop(b *testing.B, hd plugin.Handler, w dns.ResponseWriter, m *dns.Msg) {
	ctx := context.Background()
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		hd.ServeDNS(ctx, w, m)
	}
	reportCPU(b, cpu)
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// dump renders every name of a table with its records, in name order.
// The records are those ServeDNS answers, owned by the name itself.
func dump(c *config, t *table) string {
	all := map[string]hit{}
	for apex, idx := range t.svcs.All() {
		all[apex] = idx.lookup(nil)
		for i, m := range idx.members {
			all[m.label+"."+apex] = hit{kind: hitMember, idx: idx, i: i}
		}
		for i, np := range idx.named {
			all[np.label+"."+apex] = hit{kind: hitPort, idx: idx, i: i}
		}
		for _, e := range idx.ents {
			all[e+"."+apex] = hit{kind: hitENT, idx: idx}
		}
	}
	for name := range t.ancestors.All() {
		all[name] = hit{kind: hitAncestor}
	}
	for a, s := range t.ptr4.All() {
		x := hit{kind: hitPTR, ptr: s, v4: true}
		x.addr[0], x.addr[1], x.addr[2], x.addr[3] = byte(a>>24), byte(a>>16), byte(a>>8), byte(a)
		all[reverseName(netip.AddrFrom4([4]byte(x.addr[:4])))] = x
	}
	for a, s := range t.ptr6.All() {
		all[reverseName(netip.AddrFrom16(a))] = hit{kind: hitPTR, ptr: s, addr: a}
	}
	names := slices.Sorted(maps.Keys(all))
	var b strings.Builder
	for _, name := range names {
		x := all[name]
		switch x.kind {
		case hitEmpty:
			b.WriteString("; " + name + " headless service without ready endpoints (NXDOMAIN)\n")
			continue
		case hitAncestor:
			b.WriteString("; " + name + " exists above headless services\n")
			continue
		}
		var rrs, glue []dns.RR
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR} {
			answer, extra, _ := c.records(t, x, qtype, name, 0)
			rrs = append(rrs, answer...)
			glue = append(glue, extra...)
		}
		if len(rrs) == 0 {
			b.WriteString("; " + name + " empty non-terminal\n")
			continue
		}
		for _, rr := range rrs {
			b.WriteString(rr.String())
			b.WriteByte('\n')
		}
		for _, g := range glue {
			b.WriteString("; glue " + g.String() + "\n")
		}
	}
	return b.String()
}

func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from what the plugin builds now (go test -update rewrites it); got:\n%s", path, got)
	}
}

func caddyController(input string) *caddy.Controller {
	c := caddy.NewTestController("dns", input)
	c.Next()
	return c
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answers reports the A records h serves for name, as strings.
func answers(h *Headless, name string) []string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	h.ServeDNS(context.Background(), rec, m)
	if rec.Msg == nil {
		return nil
	}
	var out []string
	for _, rr := range rec.Msg.Answer {
		out = append(out, rr.(*dns.A).A.String())
	}
	return out
}

func equal(a []string, b ...string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
