package headless

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/plugin/kubernetes/object"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// stockConn serves fixed objects to CoreDNS's own kubernetes plugin, the
// way its tests feed it, so that the stock answers for the same objects
// can be asked in a unit test.
type stockConn struct {
	svcs []*object.Service
	eps  []*object.Endpoints
}

func newStockConn(t testing.TB, l *staticLister) *stockConn {
	t.Helper()
	c := &stockConn{}
	for _, k := range l.keys() {
		o, err := object.ToService(l.svcs[k].DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		c.svcs = append(c.svcs, o.(*object.Service))
	}
	for _, sl := range l.sl {
		for _, s := range sl {
			o, err := object.EndpointSliceToEndpoints(s.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			c.eps = append(c.eps, o.(*object.Endpoints))
		}
	}
	return c
}

func (c *stockConn) ServiceList() []*object.Service              { return c.svcs }
func (c *stockConn) EndpointsList() []*object.Endpoints          { return c.eps }
func (c *stockConn) ServiceImportList() []*object.ServiceImport  { return nil }
func (c *stockConn) SvcExtIndexReverse(string) []*object.Service { return nil }
func (c *stockConn) SvcImportIndex(string) []*object.ServiceImport {
	return nil
}
func (c *stockConn) PodIndex(string) []*object.Pod                    { return nil }
func (c *stockConn) McEpIndex(string) []*object.MultiClusterEndpoints { return nil }
func (c *stockConn) Run()                                             {}
func (c *stockConn) HasSynced() bool                                  { return true }
func (c *stockConn) Stop() error                                      { return nil }
func (c *stockConn) Modified(kubernetes.ModifiedMode) int64           { return 3 }
func (c *stockConn) GetNodeByName(context.Context, string) (*corev1.Node, error) {
	return nil, errors.New("no nodes")
}
func (c *stockConn) GetNamespaceByName(name string) (*object.Namespace, error) {
	return &object.Namespace{Name: name}, nil
}

func (c *stockConn) SvcIndex(k string) []*object.Service {
	var out []*object.Service
	for _, s := range c.svcs {
		if s.Index == k {
			out = append(out, s)
		}
	}
	return out
}

func (c *stockConn) SvcIndexReverse(ip string) []*object.Service {
	var out []*object.Service
	for _, s := range c.svcs {
		if slices.Contains(s.ClusterIPs, ip) {
			out = append(out, s)
		}
	}
	return out
}

func (c *stockConn) EpIndex(k string) []*object.Endpoints {
	var out []*object.Endpoints
	for _, e := range c.eps {
		if e.Index == k {
			out = append(out, e)
		}
	}
	return out
}

func (c *stockConn) EpIndexReverse(ip string) []*object.Endpoints {
	var out []*object.Endpoints
	for _, e := range c.eps {
		if slices.Contains(e.IndexIP, ip) {
			out = append(out, e)
		}
	}
	return out
}

// stockFixture holds the cases where names are formed: hostnames,
// endpoints named after pods, after IPv4 and IPv6 addresses (with the
// trailing-dash rule), endpoints with two addresses, and a pod name that
// is not one label.
func stockFixture() *staticLister {
	ports := []discovery.EndpointPort{epPort("http", corev1.ProtocolTCP, 80)}
	withPod := func(s *discovery.EndpointSlice, pods ...string) *discovery.EndpointSlice {
		for i, p := range pods {
			if p != "" {
				s.Endpoints[i].TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: s.Namespace, Name: p}
			}
		}
		return s
	}
	two := slice("ns", "multi", "multi-1", discovery.AddressTypeIPv4, ports, ep{addr: "10.244.0.30"})
	two.Endpoints[0].Addresses = append(two.Endpoints[0].Addresses, "10.244.0.31")
	api := svc("ns", "api", false)
	api.Spec.ClusterIPs = []string{api.Spec.ClusterIP}
	return newStatic(
		svc("ns", "headless-1", true),
		withPod(slice("ns", "headless-1", "headless-1-v4", discovery.AddressTypeIPv4, ports,
			ep{addr: "10.244.0.1", hostname: "web-0"},
			ep{addr: "10.244.0.2"},
			ep{addr: "10.244.0.3"},
			ep{addr: "10.244.0.4"},
			ep{addr: "10.244.0.5", ready: notReady},
		), "web-0-pod", "test-name", "", "a.b", "sleepy"),
		withPod(slice("ns", "headless-1", "headless-1-v6", discovery.AddressTypeIPv6, ports,
			ep{addr: "fd00::"},
			ep{addr: "fd00::1:0"},
			ep{addr: "2001:db8::5"},
			ep{addr: "fd00::7", hostname: "web-0"},
		), "", "", "v6-pod", "web-0-pod"),
		svc("ns", "multi", true),
		two,
		api,
		slice("ns", "api", "api-1", discovery.AddressTypeIPv4, ports, ep{addr: "10.244.0.2"}),
		svc("ns", "noports", true),
		slice("ns", "noports", "noports-1", discovery.AddressTypeIPv4, nil, ep{addr: "10.244.0.50"}),
	)
}

// differs lists the answers where headless differs from the stock plugin
// on purpose, by name/type/mode (mode "*": both modes), with the reason.
// Every other answer must be the same.
var differs = map[string]string{
	// Stock names the endpoint of pod "a.b" a.b.headless-1... in SRV
	// targets, PTR and AXFR, but its own queries for that name fail;
	// headless gives the same name and answers it, with the empty name
	// b.headless-1... above it.
	"a.b.headless-1.ns.svc.cluster.local./A/pods":    "headless answers the name stock gives pod a.b",
	"a.b.headless-1.ns.svc.cluster.local./AAAA/pods": "the name stock gives pod a.b exists (NODATA, not NXDOMAIN)",
	"a.b.headless-1.ns.svc.cluster.local./SRV/pods":  "headless answers the name stock gives pod a.b",
	"b.headless-1.ns.svc.cluster.local./A/pods":      "empty non-terminal above a.b (NODATA, not NXDOMAIN)",
	"b.headless-1.ns.svc.cluster.local./AAAA/pods":   "empty non-terminal above a.b (NODATA, not NXDOMAIN)",
	"b.headless-1.ns.svc.cluster.local./SRV/pods":    "empty non-terminal above a.b (NODATA, not NXDOMAIN)",
	// Stock answers A and AAAA at a port's SRV name with the addresses
	// behind that port; the DNS specification defines only SRV records
	// there, and headless answers NODATA.
	"_http._tcp.headless-1.ns.svc.cluster.local./A/*":    "only SRV at _port._proto names (spec 1.1.0)",
	"_http._tcp.headless-1.ns.svc.cluster.local./AAAA/*": "only SRV at _port._proto names (spec 1.1.0)",
	// A headless service without ports: stock has no SRV records for it
	// (NODATA); headless answers the port-less SRV form with port 0, so
	// that peer-finder finds the members.
	"noports.ns.svc.cluster.local./SRV/*":             "port-less SRV form with port 0",
	"10-244-0-50.noports.ns.svc.cluster.local./SRV/*": "port-less SRV form with port 0",
}

func TestSameNamesAsKubernetes(t *testing.T) {
	names := []string{
		"headless-1.ns.svc.cluster.local.",
		"web-0.headless-1.ns.svc.cluster.local.",
		"test-name.headless-1.ns.svc.cluster.local.",
		"10-244-0-2.headless-1.ns.svc.cluster.local.",
		"10-244-0-3.headless-1.ns.svc.cluster.local.",
		"10-244-0-4.headless-1.ns.svc.cluster.local.",
		"a.b.headless-1.ns.svc.cluster.local.",
		"b.headless-1.ns.svc.cluster.local.",
		"10-244-0-5.headless-1.ns.svc.cluster.local.",
		"sleepy.headless-1.ns.svc.cluster.local.",
		"fd00--0.headless-1.ns.svc.cluster.local.",
		"fd00--.headless-1.ns.svc.cluster.local.",
		"fd00--1-0.headless-1.ns.svc.cluster.local.",
		"2001-db8--5.headless-1.ns.svc.cluster.local.",
		"v6-pod.headless-1.ns.svc.cluster.local.",
		"fd00--7.headless-1.ns.svc.cluster.local.",
		"web-0-pod.headless-1.ns.svc.cluster.local.",
		"_http._tcp.headless-1.ns.svc.cluster.local.",
		"multi.ns.svc.cluster.local.",
		"10-244-0-30.multi.ns.svc.cluster.local.",
		"10-244-0-31.multi.ns.svc.cluster.local.",
		"nope.headless-1.ns.svc.cluster.local.",
		"api.ns.svc.cluster.local.",
		"noports.ns.svc.cluster.local.",
		"10-244-0-50.noports.ns.svc.cluster.local.",
		// Escaped dots: outside the zone, or one label under it.
		`web-0\.headless-1.ns.svc.cluster.local.`,
		`headless-1\.ns.svc.cluster.local.`,
		`foo\.cluster.local.`,
		`web-0.headless-1.ns.svc.cluster\.local.`,
	}
	for _, podNames := range []bool{false, true} {
		input := "kubernetes cluster.local in-addr.arpa ip6.arpa"
		mode := "addresses"
		if podNames {
			input += " {\nendpoint_pod_names\n}"
			mode = "pods"
		}
		stock, err := kubernetes.ParseStanza(caddyController(input))
		if err != nil {
			t.Fatal(err)
		}
		l := stockFixture()
		stock.APIConn = newStockConn(t, l)
		stock.Next = nextHandler

		h := &Headless{}
		if err := h.configure([]string{"cluster.local.", "in-addr.arpa.", "ip6.arpa."}, 5, 5); err != nil {
			t.Fatal(err)
		}
		// Inherited, as OnStartup does.
		if on, err := newKubeProbe(stock).podNames(); err != nil || on != podNames {
			t.Fatalf("%s: endpoint_pod_names %v, %v", mode, on, err)
		} else if on {
			h.setPodNames()
		}
		h.Fall.SetZonesFromArgs(nil)
		h.Next = stock
		h.publish(l, l.keys())

		for _, name := range names {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV} {
				want, got := ask(t, stock, name, qt), ask(t, h, name, qt)
				key := name + "/" + dns.TypeToString[qt] + "/"
				reason, ok := differs[key+mode]
				if !ok {
					reason, ok = differs[key+"*"]
				}
				key += mode
				if ok {
					if want == got {
						t.Errorf("%s: listed as different (%s), but the answers agree:\n%s", key, reason, got)
					}
					continue
				}
				if want != got {
					t.Errorf("%s: headless differs from kubernetes\nkubernetes:\n%s\nheadless:\n%s", key, want, got)
				}
			}
		}
	}
}

// ask sends one query to h and renders what matters for comparing answers:
// rcode, the answer and additional records in order, and the authority
// records with the SOA serial zeroed (each server counts its own). SRV
// weights are checked to be equal within the answer and then left out:
// stock divides 100 by the number of address and port pairs before it
// merges one target's duplicates, headless by the records it returns;
// weights are relative (RFC 2782), so equal weights select alike.
func ask(t *testing.T, h plugin.Handler, name string, qt uint16) string {
	t.Helper()
	r := new(dns.Msg)
	r.SetQuestion(name, qt)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	rcode, err := h.ServeDNS(context.Background(), rec, r)
	m := rec.Msg
	if m == nil {
		return fmt.Sprintf("rcode %s (not written) err %v", dns.RcodeToString[rcode], err != nil)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rcode %s\n", dns.RcodeToString[m.Rcode])
	weights := map[uint16]bool{}
	for _, sec := range []struct {
		name string
		rrs  []dns.RR
	}{{"answer", m.Answer}, {"authority", m.Ns}, {"extra", m.Extra}} {
		var lines []string
		for _, rr := range sec.rrs {
			rr = dns.Copy(rr)
			switch v := rr.(type) {
			case *dns.SOA:
				v.Serial = 0
			case *dns.SRV:
				weights[v.Weight] = true
				v.Weight = 0
			}
			lines = append(lines, sec.name+" "+rr.String())
		}
		slices.Sort(lines)
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	if len(weights) > 1 {
		fmt.Fprintf(&b, "unequal SRV weights %v\n", weights)
	}
	return b.String()
}
