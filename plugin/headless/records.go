package headless

import (
	"crypto/sha256"
	"encoding/binary"
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

// draft is one name inside a service as collect finds it: the ready
// endpoints that share a hostname (or, without one, an address).
type draft struct {
	label    string
	hostname bool // label came from the endpoint's hostname
	v4, v6   []netip.Addr
	ports    []port
	slice    int  // the last slice whose ports were added, plus one
	shared   bool // ports is one slice's list, not the draft's own copy

	one [1]netip.Addr // room for the usual single address
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
// buf is room to reuse; it returns it, grown, for the next call.
func (c *config) sum(svc *corev1.Service, members []*draft, buf []byte) ([32]byte, []byte) {
	buf = buf[:0]
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
			b := a.As4()
			buf = append(buf, b[:]...)
		}
		buf = binary.AppendUvarint(buf, uint64(len(m.v6)))
		for _, a := range m.v6 {
			b := a.As16()
			buf = append(buf, b[:]...)
		}
		buf = binary.AppendUvarint(buf, uint64(len(m.ports)))
		for _, p := range m.ports {
			str(p.name)
			str(p.proto)
			buf = binary.BigEndian.AppendUint16(buf, p.num)
		}
	}
	return sha256.Sum256(buf), buf
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// build makes the data of one headless service from its members (see
// collect): their addresses packed in one array, their ports shared per
// slice, and what the service's name, its named ports and its reverse
// names need, sorted for binary search. It is pure: the same input gives
// the same data.
func (c *config) build(drafts []*draft) *svcData {
	d := &svcData{}
	n4, n6 := 0, 0
	for _, m := range drafts {
		n4, n6 = n4+len(m.v4), n6+len(m.v6)
	}
	all4 := make([]uint32, 0, n4)
	var all6 []netip.Addr
	if n6 > 0 {
		all6 = make([]netip.Addr, 0, n6)
	}
	for _, m := range drafts {
		for _, a := range m.v4 {
			all4 = append(all4, be32(a.AsSlice()))
		}
		all6 = append(all6, m.v6...)
	}
	d.endpoints = len(all4) + len(all6)
	d.addrs = make([]byte, 0, 4*len(all4)+16*len(all6))
	d.members = make([]member, len(drafts))
	var sets map[*port]uint32 // made when a service has many port sets
	for i, m := range drafts {
		out := &d.members[i]
		out.label, out.hostname = m.label, m.hostname
		out.addr = uint32(len(d.addrs))
		out.n4, out.n6 = uint32(len(m.v4)), uint32(len(m.v6))
		for _, a := range m.v4 {
			b := a.As4()
			d.addrs = append(d.addrs, b[:]...)
		}
		for _, a := range m.v6 {
			b := a.As16()
			d.addrs = append(d.addrs, b[:]...)
		}
		out.set = d.portSet(m.ports, &sets)
		d.srvs += len(d.sets[out.set].nums)
	}

	// The service's own addresses, each once.
	slices.Sort(all4)
	slices.SortFunc(all6, netip.Addr.Compare)
	all4, all6 = slices.Compact(all4), slices.Compact(all6)
	d.all = make([]byte, 0, 4*len(all4)+16*len(all6))
	for _, a := range all4 {
		d.all = binary.BigEndian.AppendUint32(d.all, a)
	}
	d.all4 = len(d.all)
	for _, a := range all6 {
		b := a.As16()
		d.all = append(d.all, b[:]...)
	}

	// Named ports, and the _<proto> names above them: each set's named
	// ports give one SRV record per member that has the set.
	perSet := make([]int, len(d.sets))
	for i := range d.members {
		perSet[d.members[i].set]++
	}
	for si := range d.sets {
		for _, p := range d.sets[si].ports {
			if p.name == "" {
				continue
			}
			j := slices.IndexFunc(d.named, func(n namedPort) bool { return n.name == p.name && n.proto == p.proto })
			if j < 0 {
				j = len(d.named)
				d.named = append(d.named, namedPort{label: "_" + p.name + "._" + p.proto, name: p.name, proto: p.proto})
				d.ents = append(d.ents, "_"+p.proto)
			}
			d.named[j].srvs += perSet[si]
		}
	}
	slices.SortFunc(d.named, func(a, b namedPort) int { return labelOrder(a.label, b.label) })

	// A pod name with dots ("a.b") is several labels; the names between
	// it and the service ("b.<svc>...") exist, empty, unless a member has
	// that name.
	for i := range d.members {
		for l := d.members[i].label; strings.Contains(l, "."); {
			_, l, _ = strings.Cut(l, ".")
			if _, ok := slices.BinarySearchFunc(d.members, l, func(m member, l string) int { return labelOrder(m.label, l) }); !ok {
				d.ents = append(d.ents, l)
			}
		}
	}
	slices.SortFunc(d.ents, labelOrder)
	d.ents = slices.Clip(slices.Compact(d.ents))

	// Reverse names: the addresses of members named by their hostname,
	// in the reverse zones, each with its first member in name order.
	if len(c.reverse) > 0 {
		d.ptr4 = make([]uint64, 0, len(all4))
		for i := range d.members {
			m := &d.members[i]
			if !m.hostname {
				continue
			}
			v4, v6 := m.v4(d), m.v6(d)
			for j := 0; j < len(v4); j += 4 {
				if c.addrInZones(netip.AddrFrom4([4]byte(v4[j : j+4]))) {
					d.ptr4 = append(d.ptr4, uint64(be32(v4[j:]))<<32|uint64(i))
				}
			}
			for j := 0; j < len(v6); j += 16 {
				if c.addrInZones(netip.AddrFrom16([16]byte(v6[j : j+16]))) {
					d.ptr6 = append(d.ptr6, addrRef{off: m.addr + uint32(len(v4)+j), m: uint32(i)})
				}
			}
		}
		slices.Sort(d.ptr4)
		d.ptr4 = slices.Clip(slices.CompactFunc(d.ptr4, func(a, b uint64) bool { return a>>32 == b>>32 }))
		d.ptr6 = d.sortRefs(d.ptr6)
	}
	return d
}

// portSet returns the index of the set of ports ps in d.sets, adding it
// the first time. Members of one slice share its list, and so one set.
// seen indexes the sets once there are many.
func (d *svcData) portSet(ps []port, seen *map[*port]uint32) uint32 {
	var key *port
	if len(ps) > 0 {
		key = &ps[0]
	}
	same := func(i int) bool {
		q := d.sets[i].ports
		return len(q) == 0 && key == nil || len(q) > 0 && &q[0] == key
	}
	if n := len(d.sets); n > 0 && same(n-1) {
		return uint32(n - 1) // the same as the member before, usually
	}
	if *seen == nil {
		for i := range d.sets {
			if same(i) {
				return uint32(i)
			}
		}
	} else if i, ok := (*seen)[key]; ok {
		return i
	}
	s := portSet{ports: ps}
	for _, p := range portsOrNone(ps) {
		s.nums = append(s.nums, p.num)
	}
	slices.Sort(s.nums)
	s.nums = slices.Clip(slices.Compact(s.nums))
	i := uint32(len(d.sets))
	d.sets = append(d.sets, s)
	switch {
	case *seen != nil:
		(*seen)[key] = i
	case len(d.sets) > 8:
		*seen = map[*port]uint32{}
		for j := range d.sets {
			var k *port
			if len(d.sets[j].ports) > 0 {
				k = &d.sets[j].ports[0]
			}
			(*seen)[k] = uint32(j)
		}
	}
	return i
}

// sortRefs sorts refs to IPv6 addresses by address, then member, and keeps
// the first of each address.
func (d *svcData) sortRefs(refs []addrRef) []addrRef {
	addr := func(r addrRef) []byte { return d.addrs[r.off : r.off+16] }
	slices.SortFunc(refs, func(a, b addrRef) int {
		if c := compareBytes(addr(a), addr(b)); c != 0 {
			return c
		}
		return int(a.m) - int(b.m)
	})
	return slices.Clip(slices.CompactFunc(refs, func(a, b addrRef) bool { return compareBytes(addr(a), addr(b)) == 0 }))
}

// collector groups the ready endpoints of a service's slices into members
// (see collect), with buffers that one build after another reuses.
type collector struct {
	sum     []byte // for config.sum
	raw     []draft
	byLabel []*draft
	keys    []uint64
	sorted  []*draft
}

// keepDrafts is how many drafts a collector keeps room for between builds.
const keepDrafts = 4096

// release drops the collector's hold on the objects the last collect read,
// and its buffers when they grew beyond keepDrafts.
func (c *collector) release() {
	clear(c.raw)
	clear(c.byLabel)
	clear(c.sorted)
	if cap(c.raw) > keepDrafts || cap(c.sum) > 64*keepDrafts {
		*c = collector{}
	}
}

// collect returns the members of a service's slices, sorted by name (see
// compareLabels), each with sorted distinct addresses and ports. With
// podNames, endpoints without a hostname are named after their pods (see
// endpointLabel). Each address gets a draft of its own; sorting them by
// label brings those that share a name together, and where several do,
// the first in slice order gives the member its kind. What it returns
// lives in c's buffers: it is good until the next collect or release.
func (c *collector) collect(sl []*discovery.EndpointSlice, podNames bool) []*draft {
	n := 0
	for _, s := range sl {
		if s != nil {
			for i := range s.Endpoints {
				n += len(s.Endpoints[i].Addresses)
			}
		}
	}
	raw := c.raw[:0]
	if cap(raw) < n {
		raw = make([]draft, 0, n)
	}
	for si, s := range sl {
		if s == nil || (s.AddressType != discovery.AddressTypeIPv4 && s.AddressType != discovery.AddressTypeIPv6) {
			continue
		}
		ports := slicePorts(s.Ports) // sorted and distinct already
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
				raw = append(raw, draft{label: label, hostname: fromHost, ports: ports, shared: true, slice: si + 1, one: [1]netip.Addr{a}})
			}
		}
	}
	c.raw = raw
	byLabel := resize(c.byLabel, len(raw))
	c.byLabel = byLabel
	for i := range raw {
		byLabel[i] = &raw[i]
	}
	c.sortDrafts(byLabel)

	out := byLabel[:0]
	for i := 0; i < len(byLabel); {
		m := byLabel[i]
		j := i + 1
		for j < len(byLabel) && byLabel[j].label == m.label {
			j++
		}
		if j == i+1 {
			if m.one[0].Is4() {
				m.v4 = m.one[:1:1]
			} else {
				m.v6 = m.one[:1:1]
			}
		} else {
			for _, o := range byLabel[i:j] {
				if a := o.one[0]; a.Is4() {
					m.v4 = append(m.v4, a)
				} else {
					m.v6 = append(m.v6, a)
				}
				if o.slice != m.slice {
					m.ports, m.shared = append(slices.Clip(m.ports), o.ports...), false
					m.slice = o.slice
				}
			}
			slices.SortFunc(m.v4, netip.Addr.Compare)
			m.v4 = slices.Clip(slices.Compact(m.v4))
			slices.SortFunc(m.v6, netip.Addr.Compare)
			m.v6 = slices.Clip(slices.Compact(m.v6))
			if !m.shared {
				slices.SortFunc(m.ports, comparePort)
				m.ports = slices.Clip(slices.Compact(m.ports))
			}
		}
		out = append(out, m)
		i = j
	}
	return slices.Clip(out)
}

// sortDrafts sorts drafts by label (see compareLabels), and those with
// one label in the order they have. Labels of one service mostly share a
// prefix ("web-"); it sorts numbers made of the 6 bytes after that prefix
// and each draft's position, and compares whole labels only where those 6
// bytes are the same.
func (c *collector) sortDrafts(ds []*draft) {
	if len(ds) < 2 {
		return
	}
	p := len(ds[0].label)
	for _, d := range ds[1:] {
		p = min(p, len(d.label))
		for i := 0; i < p; i++ {
			if d.label[i] != ds[0].label[i] {
				p = i
				break
			}
		}
	}
	byLabel := func(a, b *draft) int { return labelOrder(a.label, b.label) }
	if len(ds) > 1<<16 {
		slices.SortStableFunc(ds, byLabel)
		return
	}
	keys := resize(c.keys, len(ds))
	c.keys = keys
	for i, d := range ds {
		keys[i] = labelKey(d.label[p:])&^0xffff | uint64(i)
	}
	slices.Sort(keys)
	sorted := resize(c.sorted, len(ds))
	c.sorted = sorted
	for i, k := range keys {
		sorted[i] = ds[uint16(k)]
	}
	// Labels that the key does not tell apart, in the order they had.
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j]>>16 == keys[i]>>16 {
			j++
		}
		if j > i+1 {
			slices.SortStableFunc(sorted[i:j], byLabel)
		}
		i = j
	}
	copy(ds, sorted)
}

// resize returns s with length n, reusing its array when it has room.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// labelKey is the first 8 bytes of s+".", padded with zeros, as a big
// endian number: keys that differ order as compareLabels orders the labels.
func labelKey(s string) uint64 {
	var k uint64
	for i := range 8 {
		var c byte
		switch {
		case i < len(s):
			c = s[i]
		case i == len(s):
			c = '.'
		}
		k = k<<8 | uint64(c)
	}
	return k
}

func slicePorts(in []discovery.EndpointPort) []port {
	out := make([]port, 0, len(in))
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

// maxReverse is the length of the longest reverse name, an IPv6 one.
const maxReverse = 64 + len("ip6.arpa.")

// addrInZones reports whether the reverse name of a is in the reverse
// zones.
func (c *config) addrInZones(a netip.Addr) bool {
	for _, r := range c.reverse {
		// The usual zones hold every address of a family.
		if r == "arpa." || a.Is4() && r == "in-addr.arpa." || a.Is6() && r == "ip6.arpa." {
			return true
		}
	}
	var buf [maxReverse]byte
	return inZones(appendReverse(buf[:0], a), c.reverse)
}

// appendReverse appends the reverse name of a to b.
func appendReverse(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		for i := 3; i >= 0; i-- {
			b = strconv.AppendUint(b, uint64(v[i]), 10)
			b = append(b, '.')
		}
		return append(b, "in-addr.arpa."...)
	}
	const hex = "0123456789abcdef"
	v := a.As16()
	for i := 15; i >= 0; i-- {
		b = append(b, hex[v[i]&0xf], '.', hex[v[i]>>4], '.')
	}
	return append(b, "ip6.arpa."...)
}

func (c *config) hdr(owner string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: c.ttl}
}

// inZones reports whether name, lowercased and without escapes, is one of
// zones or below one.
func inZones[T ~string | ~[]byte](name T, zones []string) bool {
	for _, z := range zones {
		if z == "." || string(name) == z || len(name) > len(z) && name[len(name)-len(z)-1] == '.' && string(name[len(name)-len(z):]) == z {
			return true
		}
	}
	return false
}
