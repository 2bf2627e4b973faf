package headless

import (
	"context"
	"net/netip"
	"testing"

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
