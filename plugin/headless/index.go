package headless

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
)

// svcIndex holds the names of one headless service in one forward zone,
// its own name among them. It keeps no records: answers are made from its
// members when asked (see records), so that it stays small and a change
// builds one small index.
type svcIndex struct {
	apex string // <svc>.<ns>.svc.<zone>., lowercased
	*svcData
}

// svcData is what a headless service serves, the same in every zone. Its
// names, relative to the service's name, are the members' labels, the
// named ports (_<port>._<proto>) and the empty non-terminals between them
// and the service. All of it is sorted in the order of the names it makes
// (see compareLabels) and never changed once published.
type svcData struct {
	members []member
	addrs   []byte // each member's addresses: its IPv4 (4 bytes each), then its IPv6 (16 bytes each)
	all     []byte // the service's distinct addresses: IPv4 sorted, then IPv6 sorted
	all4    int    // how many bytes of all are IPv4
	sets    []portSet
	named   []namedPort
	ents    []string // empty non-terminals: _<proto> and the parents of dotted labels
	// ptr4 and ptr6 are the addresses of members named by their hostname,
	// each once, sorted, with the first such member in name order: the
	// one its PTR record names. ptr4 holds address<<32 | member.
	ptr4      []uint64
	ptr6      []addrRef
	srvs      int // SRV records at the service's name
	endpoints int // ready addresses
}

// member is one name in a service: the endpoints that share a label.
type member struct {
	label    string // lowercased; "a.b" for a pod named so
	addr     uint32 // offset of its addresses in svcData.addrs
	n4, n6   uint32 // how many IPv4 and IPv6 addresses it has
	set      uint32 // its ports: svcData.sets[set]
	hostname bool   // label is the endpoint's hostname
}

// portSet is the ports of some members: one slice's ports, usually shared
// by all the service's members.
type portSet struct {
	ports []port   // distinct, sorted by name, protocol and number
	nums  []uint16 // the distinct numbers, sorted; a single 0 without ports
}

// namedPort is the name _<port>._<proto> of the service's named port.
type namedPort struct {
	label       string // _<name>._<proto>
	name, proto string
	srvs        int // its SRV records
}

// addrRef is an address and the member that names it.
type addrRef struct {
	off uint32 // of the address in svcData.addrs
	m   uint32
}

func (m *member) v4(d *svcData) []byte { return d.addrs[m.addr : m.addr+4*m.n4] }

func (m *member) v6(d *svcData) []byte {
	s := m.addr + 4*m.n4
	return d.addrs[s : s+16*m.n6]
}

// names counts the names of the index.
func (x *svcIndex) names() int { return 1 + len(x.members) + len(x.named) + len(x.ents) }

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

func compareBytes(a, b []byte) int { return bytes.Compare(a, b) }

// compareLabels orders labels as the names they begin: a label compares as
// if followed by a dot, as strings.Compare(a+".", b+".") would, so "a-b"
// sorts before "a" (as "a-b.web..." before "a.web..."), and "a" before
// "a.b"; SRV records, sorted by target, come in member order.
func compareLabels[A, B ~string | ~[]byte](a A, b B) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	switch {
	case len(a) == len(b):
		return 0
	case len(a) < len(b):
		if b[n] != '.' {
			return int('.') - int(b[n])
		}
		return -1 // a+"." is a prefix of b
	default:
		if a[n] != '.' {
			return int(a[n]) - int('.')
		}
		return 1
	}
}

// labelOrder is compareLabels for two strings, at the speed of
// strings.Compare.
func labelOrder(a, b string) int {
	n := min(len(a), len(b))
	if c := strings.Compare(a[:n], b[:n]); c != 0 {
		return c
	}
	return compareLabels(a[n:], b[n:])
}

// hit is what a name is in a snapshot.
type hit struct {
	kind hitKind
	idx  *svcIndex // hitApex, hitEmpty, hitMember, hitPort, hitENT
	i    int       // the member or named port
	ptr  *ptrSet   // hitPTR
	addr [16]byte  // hitPTR: the address, in the first 4 bytes when v4
	v4   bool
}

// address returns the address of a hitPTR, 4 or 16 bytes.
func (x *hit) address() []byte {
	if x.v4 {
		return x.addr[:4]
	}
	return x.addr[:]
}

type hitKind uint8

const (
	hitNone hitKind = iota
	// hitAncestor is svc.<zone>. or <ns>.svc.<zone>. above some headless
	// service: it exists, but the plugin does not own it, so with
	// fallthrough it goes to the next plugin.
	hitAncestor
	// hitEmpty is the name of a headless service without ready endpoints.
	// It does not exist (NXDOMAIN), but it still makes every name below it
	// the plugin's to answer.
	hitEmpty
	// The names the plugin owns and answers.
	hitApex
	hitMember
	hitPort
	hitENT // an empty non-terminal: NODATA for every type
	hitPTR
)

// owned reports whether the plugin answers the name itself.
func (x hit) owned() bool { return x.kind >= hitApex }

// lookup finds the name rel.<apex> in the index, rel being folded and ""
// for the service's own name. It never allocates.
func (x *svcIndex) lookup(rel []byte) hit {
	if len(rel) == 0 {
		if len(x.members) == 0 {
			return hit{kind: hitEmpty, idx: x}
		}
		return hit{kind: hitApex, idx: x}
	}
	if rel[0] == '_' {
		for i := range x.named {
			if x.named[i].label == string(rel) {
				return hit{kind: hitPort, idx: x, i: i}
			}
		}
	} else {
		// A binary search written out: through slices.BinarySearchFunc
		// the name would escape to the heap.
		lo, hi := 0, len(x.members)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			switch c := compareLabels(x.members[mid].label, rel); {
			case c == 0:
				return hit{kind: hitMember, idx: x, i: mid}
			case c < 0:
				lo = mid + 1
			default:
				hi = mid
			}
		}
	}
	lo, hi := 0, len(x.ents)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch c := compareLabels(x.ents[mid], rel); {
		case c == 0:
			return hit{kind: hitENT, idx: x}
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return hit{}
}

// namer returns the member whose name the PTR record of address a (4 or
// 16 bytes) gives, or nil.
func (d *svcData) namer(a []byte) *member {
	if len(a) == 4 {
		v := uint64(be32(a)) << 32
		i, _ := slices.BinarySearch(d.ptr4, v)
		if i == len(d.ptr4) || d.ptr4[i]>>32 != v>>32 {
			return nil
		}
		return &d.members[uint32(d.ptr4[i])]
	}
	// Written out: through slices.BinarySearchFunc, a would escape.
	lo, hi := 0, len(d.ptr6)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		r := d.ptr6[mid]
		switch c := bytes.Compare(d.addrs[r.off:r.off+16], a); {
		case c == 0:
			return &d.members[r.m]
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return nil
}
