package headless

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/plugin/kubernetes/object"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/miekg/dns"
	api "k8s.io/api/core/v1"
)

// kubeConn is the kubernetes plugin's view of the cluster in these tests:
// the services it has, keyed as its index keys them, and its namespaces.
type kubeConn struct {
	svcs     map[string][]*object.Service // "<name>.<namespace>"
	ns       map[string]bool
	unsynced bool
	// calls counts the calls of each method.
	calls map[string]int
}

func (c *kubeConn) call(m string) {
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[m]++
}

func (c *kubeConn) ServiceList() []*object.Service { c.call("ServiceList"); return nil }
func (c *kubeConn) EndpointsList() []*object.Endpoints {
	c.call("EndpointsList")
	return nil
}
func (c *kubeConn) ServiceImportList() []*object.ServiceImport {
	c.call("ServiceImportList")
	return nil
}
func (c *kubeConn) SvcIndex(k string) []*object.Service { c.call("SvcIndex"); return c.svcs[k] }
func (c *kubeConn) SvcIndexReverse(string) []*object.Service {
	c.call("SvcIndexReverse")
	return nil
}
func (c *kubeConn) SvcExtIndexReverse(string) []*object.Service {
	c.call("SvcExtIndexReverse")
	return nil
}
func (c *kubeConn) SvcImportIndex(string) []*object.ServiceImport {
	c.call("SvcImportIndex")
	return nil
}
func (c *kubeConn) PodIndex(string) []*object.Pod { c.call("PodIndex"); return nil }
func (c *kubeConn) EpIndex(string) []*object.Endpoints {
	c.call("EpIndex")
	return nil
}
func (c *kubeConn) EpIndexReverse(string) []*object.Endpoints {
	c.call("EpIndexReverse")
	return nil
}
func (c *kubeConn) McEpIndex(string) []*object.MultiClusterEndpoints {
	c.call("McEpIndex")
	return nil
}
func (c *kubeConn) GetNodeByName(context.Context, string) (*api.Node, error) {
	c.call("GetNodeByName")
	return nil, errors.New("no nodes")
}
func (c *kubeConn) GetNamespaceByName(n string) (*object.Namespace, error) {
	c.call("GetNamespaceByName")
	if !c.ns[n] {
		return nil, errors.New("no such namespace")
	}
	return &object.Namespace{Name: n}, nil
}
func (c *kubeConn) Run()            { c.call("Run") }
func (c *kubeConn) HasSynced() bool { c.call("HasSynced"); return !c.unsynced }
func (c *kubeConn) Stop() error     { c.call("Stop"); return nil }

// Modified gives each mode its own time, so that a serial read in the
// wrong mode shows.
func (c *kubeConn) Modified(m kubernetes.ModifiedMode) int64 {
	c.call("Modified")
	return 1700000042 + int64(m)
}

// newKube parses a kubernetes stanza as CoreDNS would and gives it conn.
func newKube(t testing.TB, stanza string, conn *kubeConn) *kubernetes.Kubernetes {
	t.Helper()
	k, err := kubernetes.ParseStanza(caddy.NewTestController("dns", stanza))
	if err != nil {
		t.Fatalf("%q: %v", stanza, err)
	}
	k.APIConn = conn
	k.Next = nextHandler
	return k
}

// kubeHeadless is headless over two small services, with or without
// fallthrough, in front of k, answering for it.
func kubeHeadless(t *testing.T, k *kubernetes.Kubernetes, fall bool) *Headless {
	t.Helper()
	h := newTest(t, cluster(2, 3), fall)
	h.Next = k
	kube, err := newKubeNX(h.Next, h.zones, h.reverse, h.flat)
	if err != nil || kube == nil {
		t.Fatalf("no kubeNX for the kubernetes plugin right after headless: %v", err)
	}
	h.kube = kube
	return h
}

func defaultConn() *kubeConn {
	return &kubeConn{
		svcs: map[string][]*object.Service{
			"api.default": {{Name: "api", Namespace: "default", ClusterIPs: []string{"10.96.0.10"}, Type: api.ServiceTypeClusterIP}},
		},
		ns: map[string]bool{"default": true, "bench": true},
	}
}

// TestKubeNX checks each question headless answers for the kubernetes
// plugin behind it, and each it must leave to it, against that plugin's
// own answer to the same question.
func TestKubeNX(t *testing.T) {
	const stanza = "kubernetes cluster.local in-addr.arpa ip6.arpa {\n ttl 30\n fallthrough in-addr.arpa ip6.arpa\n}"
	tests := []struct {
		name     string
		qname    string
		qtype    uint16
		stanza   string            // default: stanza
		conn     func(c *kubeConn) // changes to defaultConn
		headless bool              // headless answers it for the kubernetes plugin
	}{
		{name: "missing service", qname: "nx.default.svc.cluster.local.", qtype: dns.TypeA, headless: true},
		{name: "AAAA", qname: "nx.default.svc.cluster.local.", qtype: dns.TypeAAAA, headless: true},
		{name: "SRV, named port", qname: "_http._tcp.nx.default.svc.cluster.local.", qtype: dns.TypeSRV, headless: true},
		{name: "endpoint of a missing service", qname: "web-0.nx.default.svc.cluster.local.", qtype: dns.TypeA, headless: true},
		{name: "search-path expansion", qname: "api.example.com.default.svc.cluster.local.", qtype: dns.TypeA, headless: true},
		{name: "search-path expansion, second try", qname: "api.example.com.svc.cluster.local.", qtype: dns.TypeA, headless: true},
		{name: "missing namespace", qname: "nx.nope.svc.cluster.local.", qtype: dns.TypeA, headless: true},
		{name: "missing service in headless's namespace", qname: "nx.bench.svc.cluster.local.", qtype: dns.TypeA, headless: true},
		{name: "question's case", qname: "NX.Default.SVC.Cluster.LOCAL.", qtype: dns.TypeA, headless: true},
		{name: "ttl above 300", qname: "nx.default.svc.cluster.local.", qtype: dns.TypeA, headless: true,
			stanza: "kubernetes cluster.local {\n ttl 3600\n}"},
		{name: "ClusterIP service", qname: "api.default.svc.cluster.local.", qtype: dns.TypeA},
		{name: "ClusterIP service, AAAA", qname: "api.default.svc.cluster.local.", qtype: dns.TypeAAAA},
		{name: "port of a ClusterIP service", qname: "_http._tcp.api.default.svc.cluster.local.", qtype: dns.TypeSRV},
		{name: "SOA below the apex is NODATA", qname: "nx.default.svc.cluster.local.", qtype: dns.TypeSOA},
		{name: "TXT", qname: "nx.default.svc.cluster.local.", qtype: dns.TypeTXT},
		{name: "MX", qname: "nx.default.svc.cluster.local.", qtype: dns.TypeMX},
		{name: "namespace", qname: "default.svc.cluster.local.", qtype: dns.TypeA},
		{name: "pod name", qname: "10-244-0-1.default.pod.cluster.local.", qtype: dns.TypeA},
		{name: "escaped dot", qname: `nx\.x.default.svc.cluster.local.`, qtype: dns.TypeA},
		{name: "not synced", qname: "nx.default.svc.cluster.local.", qtype: dns.TypeA,
			conn: func(c *kubeConn) { c.unsynced = true }},
		{name: "kubernetes falls through", qname: "nx.default.svc.cluster.local.", qtype: dns.TypeA,
			stanza: "kubernetes cluster.local {\n fallthrough\n}"},
		{name: "kubernetes falls through there", qname: "nx.default.svc.cluster.local.", qtype: dns.TypeA,
			stanza: "kubernetes cluster.local {\n fallthrough default.svc.cluster.local\n}"},
		{name: "kubernetes falls through elsewhere", qname: "nx.bench.svc.cluster.local.", qtype: dns.TypeA, headless: true,
			stanza: "kubernetes cluster.local {\n fallthrough default.svc.cluster.local\n}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := defaultConn()
			if tc.conn != nil {
				tc.conn(conn)
			}
			st := stanza
			if tc.stanza != "" {
				st = tc.stanza
			}
			k := newKube(t, st, conn)
			h := kubeHeadless(t, k, true)
			r := new(dns.Msg)
			r.SetQuestion(tc.qname, tc.qtype)

			// The decision alone.
			var buf [maxName]byte
			key, _, _ := fold(&buf, tc.qname)
			zi := h.zoneOf(key)
			direct := dnstest.NewRecorder(&discard{})
			if got := h.kube.answer(direct, r, key, zi); got != tc.headless {
				t.Fatalf("headless answers it: %v, want %v", got, tc.headless)
			}
			// Through the plugins, headless's reply must be the kubernetes
			// plugin's, whoever writes it; and when headless answers, the
			// kubernetes plugin must not have been asked: it checks
			// whether it has synced before every NXDOMAIN, headless only
			// until it has.
			conn.calls = nil
			viaHeadless := dnstest.NewRecorder(&discard{})
			hrc, herr := h.ServeDNS(context.Background(), viaHeadless, r)
			if tc.headless && (conn.calls["HasSynced"] != 0 || conn.calls["GetNamespaceByName"] != 0 || conn.calls["SvcIndex"] != 1) {
				t.Errorf("the kubernetes plugin answered, not headless: calls %v", conn.calls)
			}
			viaKube := dnstest.NewRecorder(&discard{})
			krc, kerr := k.ServeDNS(context.Background(), viaKube, r)
			if hrc != krc || (herr == nil) != (kerr == nil) {
				t.Errorf("ServeDNS returned %d, %v through headless; %d, %v from the kubernetes plugin", hrc, herr, krc, kerr)
			}
			if viaKube.Msg == nil {
				t.Fatalf("the kubernetes plugin wrote nothing (rcode %d)", viaKube.Rcode)
			}
			if viaHeadless.Msg == nil || viaHeadless.Msg.String() != viaKube.Msg.String() {
				t.Errorf("through headless:\n%v\nthe kubernetes plugin:\n%v", viaHeadless.Msg, viaKube.Msg)
			}
			if tc.headless {
				if direct.Msg.String() != viaKube.Msg.String() {
					t.Errorf("headless:\n%v\nthe kubernetes plugin:\n%v", direct.Msg, viaKube.Msg)
				}
				if direct.Msg.Rcode != dns.RcodeNameError || len(direct.Msg.Ns) != 1 {
					t.Errorf("want NXDOMAIN with one SOA, got\n%v", direct.Msg)
				}
			}
		})
	}
}

// TestKubeNXOwnAuthority checks that headless without fallthrough answers
// as its zones' authority, with its own SOA, even with the kubernetes
// plugin after it: nothing reaches that plugin, so headless never answers
// for it.
func TestKubeNXOwnAuthority(t *testing.T) {
	h := kubeHeadless(t, newKube(t, "kubernetes cluster.local {\n ttl 30\n}", defaultConn()), false)
	r := new(dns.Msg)
	r.SetQuestion("nx.default.svc.cluster.local.", dns.TypeA)
	rec := dnstest.NewRecorder(&discard{})
	h.ServeDNS(context.Background(), rec, r)
	if rec.Msg == nil || rec.Msg.Rcode != dns.RcodeNameError || len(rec.Msg.Ns) != 1 {
		t.Fatalf("want NXDOMAIN with the SOA, got\n%v", rec.Msg)
	}
	soa := rec.Msg.Ns[0].(*dns.SOA)
	if own := h.soa[0]; soa.Minttl != own.Minttl || soa.Hdr.Ttl != own.Hdr.Ttl || soa.Serial == uint32(1700000042) {
		t.Errorf("want headless's own SOA (TTL %d, its serial), got %v", own.Minttl, soa)
	}
}

// TestNewKubeNX checks when headless answers for the kubernetes plugin at
// all: only when it is the next plugin, and only in the zones whose names
// reach it with the same zone, outside multicluster zones.
func TestNewKubeNX(t *testing.T) {
	tests := []struct {
		name   string
		zones  []string
		stanza string // "" : the next plugin is not kubernetes
		want   []bool // per zone; nil: no kubeNX
	}{
		{name: "not kubernetes", zones: []string{"cluster.local."}},
		{name: "same zones", zones: []string{"cluster.local.", "in-addr.arpa."},
			stanza: "kubernetes cluster.local in-addr.arpa", want: []bool{true, false}},
		{name: "other zone", zones: []string{"cluster.local."}, stanza: "kubernetes example.org"},
		{name: "kubernetes zone above", zones: []string{"cluster.local."}, stanza: "kubernetes local"},
		{name: "kubernetes zone below", zones: []string{"cluster.local."}, stanza: "kubernetes cluster.local sub.cluster.local"},
		{name: "multicluster zone above", zones: []string{"cluster.local."},
			stanza: "kubernetes cluster.local local {\n multicluster local\n}"},
		{name: "multicluster zone", zones: []string{"cluster.local.", "clusterset.local."},
			stanza: "kubernetes cluster.local clusterset.local {\n multicluster clusterset.local\n}", want: []bool{true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &Headless{}
			if err := h.configure(tc.zones, 5, 3); err != nil {
				t.Fatal(err)
			}
			h.Next = nextHandler
			if tc.stanza != "" {
				h.Next = newKube(t, tc.stanza, defaultConn())
			}
			x, err := newKubeNX(h.Next, h.zones, h.reverse, h.flat)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if x != nil {
					t.Fatalf("got a kubeNX for zones %v", x.zones)
				}
				return
			}
			if x == nil {
				t.Fatal("no kubeNX")
			}
			for i, w := range tc.want {
				if x.zones[i].ok != w {
					t.Errorf("zone %s: %v, want %v", h.zones[i], x.zones[i].ok, w)
				}
			}
		})
	}
}

// BenchmarkKubeNX is a missing service's NXDOMAIN (a search-path
// expansion) answered by headless for the kubernetes plugin, beside the
// same answer from the kubernetes plugin reached through headless as
// before; and what headless's check adds to a name the kubernetes plugin
// answers (a ClusterIP service). Answers packed as the server packs them.
func BenchmarkKubeNX(b *testing.B) {
	k, err := kubernetes.ParseStanza(caddy.NewTestController("dns", "kubernetes cluster.local {\n ttl 30\n}"))
	if err != nil {
		b.Fatal(err)
	}
	k.APIConn = defaultConn()
	h := newTest(b, cluster(100, 10), true)
	h.Next = k
	for _, q := range []struct{ what, name string }{
		{"missing", "api.example.com.default.svc.cluster.local."},
		{"clusterip", "api.default.svc.cluster.local."},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, dns.TypeA)
		for _, on := range []bool{true, false} {
			h.kube = nil
			if on {
				h.kube, _ = newKubeNX(h.Next, h.zones, h.reverse, h.flat)
			}
			b.Run(fmt.Sprintf("%s/headless=%v", q.what, on), func(b *testing.B) {
				serveLoop(b, h, &packer{buf: make([]byte, 0, 512)}, m)
			})
		}
	}
}
