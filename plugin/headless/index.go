package headless

import (
	"bytes"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// svcIndex holds the names of one headless service in one forward zone,
// its own name among them. It keeps no records: answers are made from its
// members when asked (see records), so a service costs a few dozen bytes
// per endpoint and a change to it builds one small index.
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

// records returns the records of x for qtype, owned by owner, and for SRV
// the addresses of the targets as extra. t is the table x comes from (PTR
// targets are read from it). Each call makes new records: nothing the
// caller does to them reaches the snapshot. Addresses share the snapshot's
// bytes, which no one writes.
//
// limit is the size the reply will be truncated to (request.Request.Size),
// or 0 for no limit; only SRV answers use it (see srvRecords). truncated
// reports that records were left out that the truncation would have
// removed: the caller sets TC.
func (c *config) records(t *table, x hit, qtype uint16, owner string, limit int) (answer, extra []dns.RR, truncated bool) {
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
		return c.addrRecords(nil, x, qtype, owner), nil, false
	case dns.TypeSRV:
		return c.srvRecords(x, owner, limit)
	case dns.TypePTR:
		return c.ptrRecords(nil, t, x, owner), nil, false
	case dns.TypeANY:
		answer = c.addrRecords(nil, x, dns.TypeA, owner)
		answer = c.addrRecords(answer, x, dns.TypeAAAA, owner)
		srv, _, _ := c.srvRecords(x, owner, 0)
		answer = append(answer, srv...)
		return c.ptrRecords(answer, t, x, owner), nil, false
	}
	return nil, nil, false
}

// addrRecords appends x's A or AAAA records.
func (c *config) addrRecords(dst []dns.RR, x hit, qtype uint16, owner string) []dns.RR {
	var b []byte
	switch x.kind {
	case hitApex:
		if qtype == dns.TypeA {
			b = x.idx.all[:x.idx.all4]
		} else {
			b = x.idx.all[x.idx.all4:]
		}
	case hitMember:
		m := &x.idx.members[x.i]
		if qtype == dns.TypeA {
			b = m.v4(x.idx.svcData)
		} else {
			b = m.v6(x.idx.svcData)
		}
	}
	return c.appendAddrs(dst, owner, qtype == dns.TypeA, b)
}

// appendAddrs appends an A (v4) or AAAA record owned by owner for each
// address packed in b. A single record and its list, the usual answer to
// a pod's name, come in one allocation.
func (c *config) appendAddrs(dst []dns.RR, owner string, v4 bool, b []byte) []dns.RR {
	if len(b) == 0 {
		return dst
	}
	if v4 {
		if dst == nil && len(b) == 4 {
			one := &oneA{rr: dns.A{Hdr: c.hdr(owner, dns.TypeA), A: net.IP(b[:4:4])}}
			one.list[0] = &one.rr
			return one.list[:]
		}
		vals := make([]dns.A, len(b)/4)
		dst = grow(dst, len(vals))
		for i := range vals {
			vals[i] = dns.A{Hdr: c.hdr(owner, dns.TypeA), A: net.IP(b[4*i : 4*i+4 : 4*i+4])}
			dst = append(dst, &vals[i])
		}
		return dst
	}
	if dst == nil && len(b) == 16 {
		one := &oneAAAA{rr: dns.AAAA{Hdr: c.hdr(owner, dns.TypeAAAA), AAAA: net.IP(b[:16:16])}}
		one.list[0] = &one.rr
		return one.list[:]
	}
	vals := make([]dns.AAAA, len(b)/16)
	dst = grow(dst, len(vals))
	for i := range vals {
		vals[i] = dns.AAAA{Hdr: c.hdr(owner, dns.TypeAAAA), AAAA: net.IP(b[16*i : 16*i+16 : 16*i+16])}
		dst = append(dst, &vals[i])
	}
	return dst
}

type oneA struct {
	rr   dns.A
	list [1]dns.RR
}

type onePTR struct {
	rr   dns.PTR
	list [1]dns.RR
}

type oneAAAA struct {
	rr   dns.AAAA
	list [1]dns.RR
}

// grow returns dst with room for n more records.
func grow(dst []dns.RR, n int) []dns.RR {
	if dst == nil {
		return make([]dns.RR, 0, n)
	}
	return slices.Grow(dst, n)
}

// minSRVLen is the fewest bytes an SRV record takes in a message, however
// it is compressed: an owner name of at least 1 byte (the root; a
// compression pointer takes 2, any other name more), type, class, TTL and
// rdlength (10), priority, weight and port (6), and a target of at least 1
// byte (miekg/dns never compresses it; were it compressed, 2). 18 holds
// even if a plugin between headless and the server rewrites the names.
const minSRVLen = 1 + 10 + 6 + 1

// srvKeep returns how many SRV records at most can stay in the Answer of
// a reply truncated to limit bytes by dns.Msg.Truncate, the way CoreDNS's
// ScrubWriter truncates every reply: it counts the 12-byte header (and the
// question, and takes the OPT record's length off the limit: both only
// lower the count), then keeps the Answer's longest prefix whose
// compressed length fits. Record i (from 0) fits only if
// 12 + minSRVLen*(i+1) <= limit. 0 means no limit.
func srvKeep(limit int) int {
	if limit <= 0 {
		return -1
	}
	// Truncate treats less than 512 as 512.
	return (max(limit, dns.MinMsgSize) - 12) / minSRVLen
}

// srvRecords returns x's SRV records, sorted by target and port, with the
// weight spread evenly, and the targets' addresses (A, then AAAA) as glue.
// It allocates a fixed number of times, whatever the number of targets.
//
// With a limit (see records), when the SRV records are more than srvKeep
// allows, it builds only the first srvKeep+1 of them, and no glue, and
// reports truncated. What the server's truncation makes of that reply is
// exactly what it makes of the full one: the records are the full
// answer's first ones, in the same order, with the same weight (computed
// from the full count); the full reply's truncation keeps a prefix of
// them no longer than srvKeep, runs out of room inside the Answer, so it
// keeps nothing of Authority or Additional (no glue) and sets TC; the short
// reply still holds record srvKeep, which cannot fit, so its truncation
// takes the same path (compressed, not the early return for a reply that
// fits uncompressed), keeps the same prefix, and drops the same sections.
func (c *config) srvRecords(x hit, owner string, limit int) (answer, extra []dns.RR, truncated bool) {
	d := x.idx
	var (
		from, to int // the members that may be targets
		count    int // SRV records
		np       *namedPort
	)
	switch x.kind {
	case hitApex:
		from, to, count = 0, len(d.members), d.srvs
	case hitMember:
		from, to = x.i, x.i+1
		count = len(d.sets[d.members[x.i].set].nums)
	case hitPort:
		np = &d.named[x.i]
		from, to, count = 0, len(d.members), np.srvs
	default:
		return nil, nil, false
	}
	build := count // SRV records to build
	if keep := srvKeep(limit); keep >= 0 && count > keep {
		build, truncated = keep+1, true
	}
	// The numbers each port set gives: all of them, or the named port's.
	var one [1][]uint16
	nums := one[:0]
	if len(d.sets) > 1 {
		nums = make([][]uint16, 0, len(d.sets))
	}
	for i := range d.sets {
		if np == nil {
			nums = append(nums, d.sets[i].nums)
			continue
		}
		var ns []uint16
		for _, p := range d.sets[i].ports {
			if p.name == np.name && p.proto == np.proto {
				ns = append(ns, p.num)
			}
		}
		nums = append(nums, ns)
	}
	var targetsLen, n4, n6 int
	for i, left := from, build; i < to && left > 0; i++ {
		m := &d.members[i]
		if len(nums[m.set]) > 0 {
			targetsLen += len(m.label) + 1 + len(d.apex)
			n4 += int(m.n4)
			n6 += int(m.n6)
			left -= len(nums[m.set])
		}
	}
	if truncated {
		n4, n6 = 0, 0 // the truncation would drop all the glue
	}
	// Every target is carved from one string.
	var tb strings.Builder
	tb.Grow(targetsLen)
	srvs := make([]dns.SRV, 0, build)
	glue4 := make([]dns.A, 0, n4)
	glue6 := make([]dns.AAAA, 0, n6)
	// The weight is the full answer's, whatever is built.
	weight := uint16(max(1, 100/max(1, count)))
	for i := from; i < to && len(srvs) < build; i++ {
		m := &d.members[i]
		if len(nums[m.set]) == 0 {
			continue
		}
		start := tb.Len()
		tb.WriteString(m.label)
		tb.WriteByte('.')
		tb.WriteString(d.apex)
		// tb's bytes never move: it was grown to the full length.
		target := tb.String()[start:]
		for _, num := range nums[m.set] {
			if len(srvs) == build {
				break
			}
			srvs = append(srvs, dns.SRV{Hdr: c.hdr(owner, dns.TypeSRV), Weight: weight, Port: num, Target: target})
		}
		if truncated {
			continue
		}
		v4, v6 := m.v4(d.svcData), m.v6(d.svcData)
		for j := 0; j < len(v4); j += 4 {
			glue4 = append(glue4, dns.A{Hdr: c.hdr(target, dns.TypeA), A: net.IP(v4[j : j+4 : j+4])})
		}
		for j := 0; j < len(v6); j += 16 {
			glue6 = append(glue6, dns.AAAA{Hdr: c.hdr(target, dns.TypeAAAA), AAAA: net.IP(v6[j : j+16 : j+16])})
		}
	}
	answer = make([]dns.RR, len(srvs))
	for i := range srvs {
		answer[i] = &srvs[i]
	}
	if truncated {
		return answer, nil, true
	}
	extra = make([]dns.RR, 0, len(glue4)+len(glue6))
	for i := range glue4 {
		extra = append(extra, &glue4[i])
	}
	for i := range glue6 {
		extra = append(extra, &glue6[i])
	}
	return answer, extra, false
}

// ptrRecords appends x's PTR records: one per headless service that names
// the address, in name order.
func (c *config) ptrRecords(dst []dns.RR, t *table, x hit, owner string) []dns.RR {
	if x.kind != hitPTR {
		return dst
	}
	primary := c.forward[0]
	if len(x.ptr.apexes) == 1 && dst == nil {
		// The usual case: one record and its list in one allocation.
		apex := x.ptr.apexes[0]
		idx, _ := t.svcs.Get(svcHash(apex[:len(apex)-len(primary)]), apex)
		if idx == nil {
			return nil
		}
		m := idx.namer(x.address())
		if m == nil {
			return nil
		}
		one := &onePTR{rr: dns.PTR{Hdr: c.hdr(owner, dns.TypePTR), Ptr: m.label + "." + apex}}
		one.list[0] = &one.rr
		return one.list[:]
	}
	vals := make([]dns.PTR, 0, len(x.ptr.apexes))
	for _, apex := range x.ptr.apexes {
		idx, _ := t.svcs.Get(svcHash(apex[:len(apex)-len(primary)]), apex)
		if idx == nil {
			continue
		}
		if m := idx.namer(x.address()); m != nil {
			vals = append(vals, dns.PTR{Hdr: c.hdr(owner, dns.TypePTR), Ptr: m.label + "." + apex})
		}
	}
	slices.SortFunc(vals, func(a, b dns.PTR) int { return strings.Compare(a.Ptr, b.Ptr) })
	if dst == nil {
		dst = make([]dns.RR, 0, len(vals))
	}
	for i := range vals {
		dst = append(dst, &vals[i])
	}
	return dst
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

func compareBytes(a, b []byte) int { return bytes.Compare(a, b) }
