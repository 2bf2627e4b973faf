package headless

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strconv"
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
	apexes    []string           // the service's name in each forward zone
	nodes     []map[string]*node // per forward zone: its names, all at or under the apex
	ptrs      []ptrEntry         // reverse names with the names they point to
	ancestors []string           // svc.<zone>. and <ns>.svc.<zone>.
	endpoints int                // ready addresses served
}

type ptrEntry struct{ reverse, target string }

// member is one DNS identity inside a service: the endpoints that share a
// hostname (or, without one, an address).
type member struct {
	label    string
	hostname bool // label came from the endpoint's hostname
	v4, v6   []netip.Addr
	ports    []port
	slice    int  // the last slice whose ports were added, plus one
	shared   bool // ports is one slice's list, not the member's own copy

	ip4, ip6 []net.IP      // v4 and v6 as records hold them, shared by all of them
	one      [1]netip.Addr // room for the usual single address
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

// sum is a digest of everything build reads: the service's name and its
// members. Two equal sums give the same fragment, so a rebuild whose sum
// did not change can keep what it served.
func (z *names) sum(svc *corev1.Service, members []*member) [32]byte {
	d := sha256.New()
	var buf []byte
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	str(strings.ToLower(svc.Namespace))
	str(strings.ToLower(svc.Name))
	for _, m := range members {
		str(m.label)
		buf = append(buf, boolByte(m.hostname))
		buf = binary.AppendUvarint(buf, uint64(len(m.v4)))
		for _, a := range m.v4 {
			buf = a.AppendTo(append(buf, ' '))
		}
		buf = binary.AppendUvarint(buf, uint64(len(m.v6)))
		for _, a := range m.v6 {
			buf = a.AppendTo(append(buf, ' '))
		}
		buf = binary.AppendUvarint(buf, uint64(len(m.ports)))
		for _, p := range m.ports {
			str(p.name)
			str(p.proto)
			buf = binary.BigEndian.AppendUint16(buf, p.num)
		}
		if len(buf) > 4096 {
			d.Write(buf)
			buf = buf[:0]
		}
	}
	d.Write(buf)
	var out [32]byte
	d.Sum(out[:0])
	return out
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// build computes the fragment of one headless service from its members
// (see collect). It is pure: the same input gives the same fragment.
func (z *names) build(svc *corev1.Service, members []*member) *fragment {
	ns, name := strings.ToLower(svc.Namespace), strings.ToLower(svc.Name)
	f := &fragment{}
	for _, m := range members {
		f.endpoints += len(m.v4) + len(m.v6)
	}

	// Every record of a member shares one net.IP per address, carved
	// from one allocation, and its own node is carved from slabs: a
	// service costs a few allocations per member, not one per record.
	var n4, n6 int
	for _, m := range members {
		n4 += len(m.v4)
		n6 += len(m.v6)
	}
	ipBytes := make([]byte, 0, 4*n4+16*n6)
	ipSlab := make([]net.IP, 0, n4+n6)
	for _, m := range members {
		for _, a := range m.v4 {
			b := a.As4()
			ipBytes = append(ipBytes, b[:]...)
			ipSlab = append(ipSlab, net.IP(ipBytes[len(ipBytes)-4:len(ipBytes):len(ipBytes)]))
		}
		m.ip4 = ipSlab[len(ipSlab)-len(m.v4) : len(ipSlab) : len(ipSlab)]
		for _, a := range m.v6 {
			b := a.As16()
			ipBytes = append(ipBytes, b[:]...)
			ipSlab = append(ipSlab, net.IP(ipBytes[len(ipBytes)-16:len(ipBytes):len(ipBytes)]))
		}
		m.ip6 = ipSlab[len(ipSlab)-len(m.v6) : len(ipSlab) : len(ipSlab)]
	}

	type portKey struct{ name, proto string }
	var nums []uint16 // scratch: a member's distinct port numbers
	for _, zone := range z.forward {
		f.ancestors = append(f.ancestors, "svc."+zone, ns+".svc."+zone)
		apex := name + "." + ns + ".svc." + zone
		f.apexes = append(f.apexes, apex)
		nodes := make(map[string]*node, len(members)+4)
		f.nodes = append(f.nodes, nodes)
		if len(members) == 0 {
			nodes[apex] = &node{kind: kindEmptyService}
			continue
		}
		var nSRV int
		for _, m := range members {
			nSRV += max(1, len(m.ports))
		}
		top := &node{
			a: make([]dns.A, 0, n4), aaaa: make([]dns.AAAA, 0, n6), srv: make([]dns.SRV, 0, nSRV),
			glueA: make([]dns.A, 0, n4), glueAAAA: make([]dns.AAAA, 0, n6),
		}
		own := newSlab(len(members), n4, n6, nSRV)
		type named struct {
			owner string // _<port>._<proto>.<apex>
			n     *node
		}
		byPort := map[portKey]*named{}
		for _, m := range members {
			target := m.label + "." + apex
			o := own.next(len(m.v4), len(m.v6), max(1, len(m.ports)))
			z.addrs(o, target, m)
			z.addrs(top, apex, m)
			// The member's own name and the service's name get one SRV
			// per distinct port number: labels are unique in a service,
			// so (port, target) is too, and no record needs looking for.
			nums = nums[:0]
			for _, p := range portsOrNone(m.ports) {
				nums = append(nums, p.num)
			}
			slices.Sort(nums)
			nums = slices.Compact(nums)
			for _, num := range nums {
				z.srv(o, target, target, num)
				z.srv(top, apex, target, num)
			}
			z.glue(o, target, m)
			z.glue(top, target, m)
			// Named ports: m.ports are distinct and sorted by name and
			// protocol, so one owner's records for m come together.
			var last *node
			for _, p := range m.ports {
				if p.name == "" {
					continue
				}
				pk := portKey{p.name, p.proto}
				np := byPort[pk]
				if np == nil {
					np = &named{owner: "_" + p.name + "._" + p.proto + "." + apex, n: &node{srv: make([]dns.SRV, 0, len(members))}}
					byPort[pk] = np
					nodes["_"+p.proto+"."+apex] = &node{} // empty non-terminal
				}
				z.srv(np.n, np.owner, target, p.num)
				if np.n != last {
					z.glue(np.n, target, m)
					last = np.n
				}
			}
			nodes[target] = finish(o)
			// A pod name with dots ("a.b") is several labels; the names
			// between it and the service ("b.<svc>...") exist, empty.
			for l := m.label; strings.Contains(l, "."); {
				_, l, _ = strings.Cut(l, ".")
				if _, ok := nodes[l+"."+apex]; !ok {
					nodes[l+"."+apex] = &node{}
				}
			}
		}
		for _, np := range byPort {
			nodes[np.owner] = finish(np.n)
		}
		nodes[apex] = finish(top)
	}

	primary := ".svc." + z.forward[0] // setup insists on a forward zone
	for _, m := range members {
		if !m.hostname {
			continue
		}
		target := m.label + "." + name + "." + ns + primary
		for _, a := range append(slices.Clip(m.v4), m.v6...) {
			rev := reverseName(a)
			if !inZones(rev, z.reverse) {
				continue
			}
			f.ptrs = append(f.ptrs, ptrEntry{reverse: rev, target: target})
		}
	}
	return f
}

// collect groups the ready endpoints of a service's slices into members,
// sorted by label, each with sorted distinct addresses and ports. With
// podNames, endpoints without a hostname are named after their pods (see
// endpointLabel).
func collect(sl []*discovery.EndpointSlice, podNames bool) []*member {
	n := 0
	for _, s := range sl {
		if s != nil {
			n += len(s.Endpoints)
		}
	}
	byLabel := make(map[string]*member, n)
	var chunk []member // members are carved from chunks that never move
	for si, s := range sl {
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
					if len(chunk) == 0 {
						chunk = make([]member, min(n, 1024))
					}
					m, chunk = &chunk[0], chunk[1:]
					m.label, m.hostname = label, fromHost
					byLabel[label] = m
				}
				if a.Is4() {
					m.v4 = m.addAddr(m.v4, m.v6, a)
				} else {
					m.v6 = m.addAddr(m.v6, m.v4, a)
				}
				if m.slice != si+1 {
					switch {
					case m.slice == 0:
						m.ports, m.shared = ports, true // sorted and distinct already
					default:
						m.ports, m.shared = append(slices.Clip(m.ports), ports...), false
					}
					m.slice = si + 1
				}
			}
		}
	}
	out := make([]*member, 0, len(byLabel))
	for _, m := range byLabel {
		if len(m.v4) > 1 {
			slices.SortFunc(m.v4, netip.Addr.Compare)
			m.v4 = slices.Clip(slices.Compact(m.v4))
		}
		if len(m.v6) > 1 {
			slices.SortFunc(m.v6, netip.Addr.Compare)
			m.v6 = slices.Clip(slices.Compact(m.v6))
		}
		if !m.shared {
			slices.SortFunc(m.ports, comparePort)
			m.ports = slices.Clip(slices.Compact(m.ports))
		}
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
	slices.SortFunc(out, comparePort)
	return slices.Clip(slices.Compact(out))
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

// addrs adds m's addresses to n as A and AAAA records owned by owner.
func (z *names) addrs(n *node, owner string, m *member) {
	for _, ip := range m.ip4 {
		n.a = append(n.a, dns.A{Hdr: z.hdr(owner, dns.TypeA), A: ip})
	}
	for _, ip := range m.ip6 {
		n.aaaa = append(n.aaaa, dns.AAAA{Hdr: z.hdr(owner, dns.TypeAAAA), AAAA: ip})
	}
}

// srv adds an SRV record for port num of target to n. Callers add each
// (port, target) pair once.
func (z *names) srv(n *node, owner, target string, num uint16) {
	n.srv = append(n.srv, dns.SRV{Hdr: z.hdr(owner, dns.TypeSRV), Port: num, Target: target})
}

// glue adds m's addresses, known as target, to n's additional section.
// Callers add each target once.
func (z *names) glue(n *node, target string, m *member) {
	for _, ip := range m.ip4 {
		n.glueA = append(n.glueA, dns.A{Hdr: z.hdr(target, dns.TypeA), A: ip})
	}
	for _, ip := range m.ip6 {
		n.glueAAAA = append(n.glueAAAA, dns.AAAA{Hdr: z.hdr(target, dns.TypeAAAA), AAAA: ip})
	}
}

// addAddr appends a to s, one of the member's address lists (other is the
// other one), using the member's room for one address first.
func (m *member) addAddr(s, other []netip.Addr, a netip.Addr) []netip.Addr {
	if s == nil && other == nil {
		m.one[0] = a
		return m.one[:1:1]
	}
	return append(s, a)
}

// slab hands out the nodes of a service's members with their record
// slices carved from shared arrays, each capped so that no append spills
// into a neighbour.
type slab struct {
	nodes []node
	a     []dns.A
	aaaa  []dns.AAAA
	srv   []dns.SRV
}

func newSlab(nodes, a, aaaa, srv int) *slab {
	return &slab{
		nodes: make([]node, nodes),
		a:     make([]dns.A, 0, 2*a), // addresses and glue
		aaaa:  make([]dns.AAAA, 0, 2*aaaa),
		srv:   make([]dns.SRV, 0, srv),
	}
}

// next returns an empty node with room for a A, aaaa AAAA and srv SRV
// records, and the same again as glue.
func (s *slab) next(a, aaaa, srv int) *node {
	n := &s.nodes[0]
	s.nodes = s.nodes[1:]
	n.a, s.a = carve(s.a, a)
	n.glueA, s.a = carve(s.a, a)
	n.aaaa, s.aaaa = carve(s.aaaa, aaaa)
	n.glueAAAA, s.aaaa = carve(s.aaaa, aaaa)
	n.srv, s.srv = carve(s.srv, srv)
	return n
}

// carve takes an empty slice with capacity n from the free room of buf,
// or makes one when buf has no room left.
func carve[T any](buf []T, n int) (part, rest []T) {
	if n == 0 {
		return nil, buf
	}
	if cap(buf)-len(buf) < n {
		return make([]T, 0, n), buf
	}
	return buf[len(buf) : len(buf) : len(buf)+n], buf[:len(buf)+n]
}

// reverseName is dns.ReverseAddr for an address already parsed, with one
// allocation: "4.3.2.1.in-addr.arpa." or the nibbles under ip6.arpa.
func reverseName(a netip.Addr) string {
	var buf [80]byte
	b := buf[:0]
	if a.Is4() {
		v := a.As4()
		for i := 3; i >= 0; i-- {
			b = strconv.AppendUint(b, uint64(v[i]), 10)
			b = append(b, '.')
		}
		return string(append(b, "in-addr.arpa."...))
	}
	const hex = "0123456789abcdef"
	v := a.As16()
	for i := 15; i >= 0; i-- {
		b = append(b, hex[v[i]&0xf], '.', hex[v[i]>>4], '.')
	}
	return string(append(b, "ip6.arpa."...))
}

func (z *names) hdr(owner string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: z.ttl}
}

// finish orders n's records and spreads the SRV weight evenly.
func finish(n *node) *node {
	// Every A holds 4 bytes and every AAAA 16 (see build), so byte order
	// is address order.
	slices.SortFunc(n.a, func(x, y dns.A) int { return bytes.Compare(x.A, y.A) })
	slices.SortFunc(n.aaaa, func(x, y dns.AAAA) int { return bytes.Compare(x.AAAA, y.AAAA) })
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

// inZones reports whether name, lowercased and without escapes, is one of
// zones or below one.
func inZones(name string, zones []string) bool {
	for _, z := range zones {
		if z == "." || name == z || len(name) > len(z) && name[len(name)-len(z)-1] == '.' && strings.HasSuffix(name, z) {
			return true
		}
	}
	return false
}
