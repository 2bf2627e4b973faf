package headless

import (
	"context"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
)

// ServeDNS implements plugin.Handler. It answers names at or below headless
// services and the reverse names of their endpoints; everything else goes
// to the next plugin when fallthrough allows it, and is answered as an
// authority would otherwise.
func (h *Headless) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	q := r.Question[0]
	var buf [maxName]byte
	key, hsh, ok := fold(&buf, q.Name)
	if !ok || q.Qclass != dns.ClassINET {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	zi := h.zoneOf(key)
	if zi < 0 {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}

	snap := h.snap.Load()
	if snap == nil {
		// Not synced yet: never claim a name does not exist. Only names
		// that cannot be ours (with fallthrough) and the zone apex are
		// answered.
		apex := len(key) == len(h.zones[zi])
		if h.mayOwn(key, zi) || (!apex && !h.Fall.Through(q.Name)) {
			return dns.RcodeServerFailure, nil
		}
		return h.notOurs(ctx, w, r, nil, key, zi, 0)
	}

	n, under := snap.names.find(key, hsh, len(h.zones[zi]), h.flat[zi])
	switch {
	case n != nil && n.kind == kindName:
		if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
			return dns.RcodeRefused, nil
		}
		return h.answer(w, r, n, zi, snap.serial)
	case n != nil && n.kind == kindEmptyService, n == nil && under:
		return h.negative(w, r, dns.RcodeNameError, zi, snap.serial)
	}
	return h.notOurs(ctx, w, r, n, key, zi, snap.serial)
}

// Name implements plugin.Handler.
func (h *Headless) Name() string { return pluginName }

// answer writes the records of n that the question asks for.
func (h *Headless) answer(w dns.ResponseWriter, r *dns.Msg, n *node, zi int, serial uint32) (int, error) {
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	owner := q.Name // the answer keeps the query's case
	switch q.Qtype {
	case dns.TypeA:
		m.Answer = appendCopies(nil, n.a, owner)
	case dns.TypeAAAA:
		m.Answer = appendCopies(nil, n.aaaa, owner)
	case dns.TypeSRV:
		m.Answer = appendCopies(nil, n.srv, owner)
		if len(m.Answer) > 0 {
			m.Extra = appendCopies(make([]dns.RR, 0, len(n.glueA)+len(n.glueAAAA)), n.glueA, "")
			m.Extra = appendCopies(m.Extra, n.glueAAAA, "")
		}
	case dns.TypePTR:
		m.Answer = appendCopies(nil, n.ptr, owner)
	case dns.TypeANY:
		m.Answer = make([]dns.RR, 0, len(n.a)+len(n.aaaa)+len(n.srv)+len(n.ptr))
		m.Answer = appendCopies(m.Answer, n.a, owner)
		m.Answer = appendCopies(m.Answer, n.aaaa, owner)
		m.Answer = appendCopies(m.Answer, n.srv, owner)
		m.Answer = appendCopies(m.Answer, n.ptr, owner)
	}
	if len(m.Answer) == 0 {
		m.Answer = nil
		m.Ns = h.soaRR(zi, serial) // NODATA
	}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// negative writes NXDOMAIN or NODATA (rcode success) with the zone's SOA.
func (h *Headless) negative(w dns.ResponseWriter, r *dns.Msg, rcode, zi int, serial uint32) (int, error) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.Authoritative = true
	m.Ns = h.soaRR(zi, serial)
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// notOurs handles a name in our zones that no headless service owns: the
// next plugin gets it when fallthrough covers it; otherwise the plugin
// answers as the zone's authority. n is the name's ancestor node, if any.
func (h *Headless) notOurs(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, n *node, key []byte, zi int, serial uint32) (int, error) {
	q := r.Question[0]
	if h.Fall.Through(q.Name) {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		return dns.RcodeRefused, nil
	}
	apex := len(key) == len(h.zones[zi])
	if apex && q.Qtype == dns.TypeSOA {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Answer = h.soaRR(zi, serial)
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	}
	if apex || n != nil {
		return h.negative(w, r, dns.RcodeSuccess, zi, serial)
	}
	return h.negative(w, r, dns.RcodeNameError, zi, serial)
}

// soaRR returns the SOA of zone zi with the given serial.
func (h *Headless) soaRR(zi int, serial uint32) []dns.RR {
	soa := h.soa[zi]
	soa.Serial = serial
	return []dns.RR{&soa}
}

// zoneOf returns the index of the most specific zone that contains key, a
// folded name, or -1.
func (h *Headless) zoneOf(key []byte) int {
	best := -1
	for i, z := range h.zones {
		if inZone(key, z) && (best < 0 || len(z) > len(h.zones[best])) {
			best = i
		}
	}
	return best
}

// mayOwn reports whether the plugin could own key once synced: a name
// below <svc>.<ns>.svc.<zone>, or any name in a reverse zone.
func (h *Headless) mayOwn(key []byte, zi int) bool {
	prefix := key[:len(key)-len(h.zones[zi])]
	if hasEscape(prefix) {
		return false
	}
	return h.reverse[zi] || apexStart(prefix) >= 0
}
