package headless

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// svcKey names a Service.
type svcKey = types.NamespacedName

// names are the zones one plugin instance serves, split by kind, and the
// TTL its records carry. All zones are lowercased and fully qualified.
type names struct {
	forward []string // the first is the primary zone: PTR targets live there
	reverse []string
	ttl     uint32
	// podNames names endpoints without a hostname after the pod their
	// targetRef names, as the kubernetes plugin's endpoint_pod_names does.
	podNames bool
}

// fragment is everything one headless Service contributes to the table.
type fragment struct {
	nodes     map[string]*node // forward names, all under the service
	ptrs      []ptrEntry       // reverse names with the names they point to
	ancestors []string         // svc.<zone>. and <ns>.svc.<zone>.
	endpoints int              // ready addresses served
}

type ptrEntry struct{ reverse, target string }

// member is one DNS identity inside a service: the endpoints that share a
// hostname (or, without one, an address).
type member struct {
	label    string
	hostname bool // label came from the endpoint's hostname
	v4, v6   []netip.Addr
	ports    []port
}

type port struct {
	name  string // lowercased; empty for an unnamed port
	proto string // lowercased: tcp, udp, sctp
	num   uint16
}

// IsHeadless reports whether svc is served by this plugin: a Service with
// clusterIP None. ExternalName services are never headless.
func IsHeadless(svc *corev1.Service) bool {
	return svc != nil && svc.Spec.ClusterIP == corev1.ClusterIPNone && svc.Spec.Type != corev1.ServiceTypeExternalName
}

// build computes the fragment of one headless service from its
// EndpointSlices. It is pure: the same input gives the same fragment.
func (z *names) build(svc *corev1.Service, sl []*discovery.EndpointSlice) *fragment {
	ns, name := strings.ToLower(svc.Namespace), strings.ToLower(svc.Name)
	members := collect(sl, z.podNames)
	f := &fragment{nodes: make(map[string]*node)}
	for _, m := range members {
		f.endpoints += len(m.v4) + len(m.v6)
	}

	for _, zone := range z.forward {
		f.ancestors = append(f.ancestors, "svc."+zone, ns+".svc."+zone)
		apex := name + "." + ns + ".svc." + zone
		if len(members) == 0 {
			f.nodes[apex] = &node{kind: kindEmptyService}
			continue
		}
		top := &node{}
		byPort := map[string]*node{} // _<port>._<proto>.<apex>
		for _, m := range members {
			target := m.label + "." + apex
			own := &node{}
			z.addrs(own, target, m)
			z.addrs(top, apex, m)
			for _, p := range portsOrNone(m.ports) {
				z.srv(own, target, target, p, m)
				z.srv(top, apex, target, p, m)
				if p.name == "" {
					continue
				}
				owner := "_" + p.name + "._" + p.proto + "." + apex
				n := byPort[owner]
				if n == nil {
					n = &node{}
					byPort[owner] = n
					f.nodes["_"+p.proto+"."+apex] = &node{} // empty non-terminal
				}
				z.srv(n, owner, target, p, m)
			}
			f.nodes[target] = finish(own)
			// A pod name with dots ("a.b") is several labels; the names
			// between it and the service ("b.<svc>...") exist, empty.
			for l := m.label; strings.Contains(l, "."); {
				_, l, _ = strings.Cut(l, ".")
				if _, ok := f.nodes[l+"."+apex]; !ok {
					f.nodes[l+"."+apex] = &node{}
				}
			}
		}
		for owner, n := range byPort {
			f.nodes[owner] = finish(n)
		}
		f.nodes[apex] = finish(top)
	}

	primary := ".svc." + z.forward[0] // setup insists on a forward zone
	for _, m := range members {
		if !m.hostname {
			continue
		}
		target := m.label + "." + name + "." + ns + primary
		for _, a := range append(slices.Clip(m.v4), m.v6...) {
			rev, err := dns.ReverseAddr(a.String())
			if err != nil || !inZones(rev, z.reverse) {
				continue
			}
			f.ptrs = append(f.ptrs, ptrEntry{reverse: rev, target: target})
		}
	}
	return f
}

// collect groups the ready endpoints of a service's slices into members,
// sorted by label. With podNames, endpoints without a hostname are named
// after their pods (see endpointLabel).
func collect(sl []*discovery.EndpointSlice, podNames bool) []*member {
	byLabel := map[string]*member{}
	for _, s := range sl {
		if s == nil || (s.AddressType != discovery.AddressTypeIPv4 && s.AddressType != discovery.AddressTypeIPv6) {
			continue
		}
		ports := slicePorts(s.Ports)
		for i := range s.Endpoints {
			ep := &s.Endpoints[i]
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, text := range ep.Addresses {
				a, err := netip.ParseAddr(text)
				if err != nil || a.Zone() != "" {
					continue
				}
				a = a.Unmap()
				// Each address is named on its own, as the kubernetes
				// plugin names them: an endpoint with two addresses and
				// no hostname has two names.
				label, fromHost := endpointLabel(ep, text, a, podNames)
				m := byLabel[label]
				if m == nil {
					m = &member{label: label, hostname: fromHost}
					byLabel[label] = m
				}
				if a.Is4() {
					m.v4 = appendUnique(m.v4, a)
				} else {
					m.v6 = appendUnique(m.v6, a)
				}
				for _, p := range ports {
					m.ports = appendUnique(m.ports, p)
				}
			}
		}
	}
	out := make([]*member, 0, len(byLabel))
	for _, m := range byLabel {
		slices.SortFunc(m.v4, netip.Addr.Compare)
		slices.SortFunc(m.v6, netip.Addr.Compare)
		slices.SortFunc(m.ports, comparePort)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *member) int { return strings.Compare(a.label, b.label) })
	return out
}

func slicePorts(in []discovery.EndpointPort) []port {
	var out []port
	for _, p := range in {
		if p.Port == nil || *p.Port < 0 || *p.Port > 65535 {
			continue // a nil port means "all ports": nothing to put in an SRV record
		}
		q := port{num: uint16(*p.Port), proto: "tcp"}
		if p.Protocol != nil {
			q.proto = strings.ToLower(string(*p.Protocol))
		}
		if p.Name != nil && *p.Name != "" {
			if !validLabel(*p.Name) {
				continue
			}
			q.name = strings.ToLower(*p.Name)
		}
		out = append(out, q)
	}
	return out
}

func comparePort(a, b port) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	if c := strings.Compare(a.proto, b.proto); c != 0 {
		return c
	}
	return int(a.num) - int(b.num)
}

// portsOrNone returns ps, or a single port 0 when a service has no ports,
// so that its members are still found through the port-less SRV query.
func portsOrNone(ps []port) []port {
	if len(ps) == 0 {
		return []port{{}}
	}
	return ps
}

func appendUnique[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// addrs adds m's addresses to n as A and AAAA records owned by owner.
func (z *names) addrs(n *node, owner string, m *member) {
	for _, a := range m.v4 {
		n.a = append(n.a, dns.A{Hdr: z.hdr(owner, dns.TypeA), A: net.IP(a.AsSlice())})
	}
	for _, a := range m.v6 {
		n.aaaa = append(n.aaaa, dns.AAAA{Hdr: z.hdr(owner, dns.TypeAAAA), AAAA: net.IP(a.AsSlice())})
	}
}

// srv adds an SRV record for port p of member m (known as target) to n,
// with m's addresses as glue.
func (z *names) srv(n *node, owner, target string, p port, m *member) {
	rr := dns.SRV{Hdr: z.hdr(owner, dns.TypeSRV), Port: p.num, Target: target}
	for _, have := range n.srv {
		if have.Port == rr.Port && have.Target == rr.Target {
			return
		}
	}
	n.srv = append(n.srv, rr)
	for _, have := range n.glueA {
		if have.Hdr.Name == target {
			return // glue for this target is there already
		}
	}
	for _, have := range n.glueAAAA {
		if have.Hdr.Name == target {
			return
		}
	}
	for _, a := range m.v4 {
		n.glueA = append(n.glueA, dns.A{Hdr: z.hdr(target, dns.TypeA), A: net.IP(a.AsSlice())})
	}
	for _, a := range m.v6 {
		n.glueAAAA = append(n.glueAAAA, dns.AAAA{Hdr: z.hdr(target, dns.TypeAAAA), AAAA: net.IP(a.AsSlice())})
	}
}

func (z *names) hdr(owner string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: z.ttl}
}

// finish orders n's records and spreads the SRV weight evenly.
func finish(n *node) *node {
	slices.SortFunc(n.a, func(x, y dns.A) int { return compareIP(x.A, y.A) })
	slices.SortFunc(n.aaaa, func(x, y dns.AAAA) int { return compareIP(x.AAAA, y.AAAA) })
	slices.SortFunc(n.srv, func(x, y dns.SRV) int {
		if c := strings.Compare(x.Target, y.Target); c != 0 {
			return c
		}
		return int(x.Port) - int(y.Port)
	})
	n.a = slices.CompactFunc(n.a, func(x, y dns.A) bool { return x.A.Equal(y.A) })
	n.aaaa = slices.CompactFunc(n.aaaa, func(x, y dns.AAAA) bool { return x.AAAA.Equal(y.AAAA) })
	if len(n.srv) > 0 {
		w := uint16(max(1, 100/len(n.srv)))
		for i := range n.srv {
			n.srv[i].Weight = w
		}
	}
	return n
}

func compareIP(a, b net.IP) int {
	x, _ := netip.AddrFromSlice(a)
	y, _ := netip.AddrFromSlice(b)
	return x.Compare(y)
}

func inZones(name string, zones []string) bool {
	for _, z := range zones {
		if dns.IsSubDomain(z, name) {
			return true
		}
	}
	return false
}
