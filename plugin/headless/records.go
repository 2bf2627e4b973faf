package headless

import (
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// records returns the records of x for qtype, owned by owner, and for SRV
// the targets' addresses as extra; PTR targets are read from t. Each call
// makes new records, so no caller can change the snapshot through them.
//
// limit is the size the reply will be truncated to (request.Request.Size),
// or 0 for none; only SRV answers use it. truncated reports that records
// the truncation would have removed were left out: the caller sets TC.
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
// With a limit (see records), when there are more records than srvKeep
// allows, it builds only the first srvKeep+1, with the full answer's
// weight and no glue, and reports truncated: the server's truncation keeps
// the same prefix of them as of the full answer, and drops the glue of
// both (TestSRVTruncationEquivalent).
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

func (c *config) hdr(owner string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: c.ttl}
}
