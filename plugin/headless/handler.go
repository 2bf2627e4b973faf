package headless

import (
	"context"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/tsig"
	"github.com/coredns/coredns/request"
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
		return h.notOurs(ctx, w, r, false, key, zi, 0)
	}

	x, under := h.find(snap.table, key, hsh, zi)
	switch {
	case x.owned():
		if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
			return dns.RcodeRefused, nil
		}
		return h.answer(ctx, w, r, snap, x, zi)
	case x.kind == hitEmpty, x.kind == hitNone && under:
		return h.negative(w, r, dns.RcodeNameError, zi, snap.serial)
	}
	return h.notOurs(ctx, w, r, x.kind == hitAncestor, key, zi, snap.serial)
}

// Name implements plugin.Handler.
func (h *Headless) Name() string { return pluginName }

// answer writes the records of x that the question asks for.
func (h *Headless) answer(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, snap *snapshot, x hit, zi int) (int, error) {
	w.WriteMsg(h.reply(r, snap, x, zi, srvLimit(ctx, w, r)))
	return dns.RcodeSuccess, nil
}

// reply is the answer to r from x: all of it with limit 0, or for SRV,
// no more than a reply truncated to limit bytes can keep (see records).
func (h *Headless) reply(r *dns.Msg, snap *snapshot, x hit, zi, limit int) *dns.Msg {
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	// The answer keeps the query's case.
	m.Answer, m.Extra, m.Truncated = h.cfg.records(snap.table, x, q.Qtype, q.Name, limit)
	if len(m.Answer) == 0 {
		m.Answer, m.Extra, m.Truncated = nil, nil, false
		m.Ns = h.soaRR(zi, snap.serial) // NODATA
	}
	return m
}

// srvLimit returns the size CoreDNS's ScrubWriter will truncate the reply
// to an SRV question to, so that srvRecords builds no more than can be
// sent; 0 (no limit) for other questions, and for replies the tsig plugin
// signs, which dns.Msg.Truncate never cuts. It reads the query the
// ScrubWriter reads, whatever plugins before headless (bufsize) made of it.
func srvLimit(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) int {
	if r.Question[0].Qtype != dns.TypeSRV {
		return 0
	}
	if _, signed := tsig.ValidatedKeyName(ctx); signed {
		return 0
	}
	return (&request.Request{W: w, Req: r}).Size()
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
// answers as the zone's authority. exists says the name is above some
// headless service.
func (h *Headless) notOurs(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, exists bool, key []byte, zi int, serial uint32) (int, error) {
	q := r.Question[0]
	if h.Fall.Through(q.Name) {
		if h.kube.answer(w, r, key, zi) {
			return dns.RcodeSuccess, nil
		}
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
	if apex || exists {
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

// find returns what key, a folded name in zone zi, is in t, and whether it
// is at or below a headless service's name, which makes a miss a sure
// NXDOMAIN. hsh is key's hash. It never allocates.
func (h *Headless) find(t *table, key []byte, hsh uint32, zi int) (x hit, under bool) {
	prefix := key[:len(key)-len(h.zones[zi])]
	if h.flat[zi] {
		x = h.exact(t, key, hsh)
		if x.kind != hitNone || hasEscape(prefix) {
			return x, false
		}
		if s := apexStart(prefix); s >= 0 {
			return hit{}, h.exact(t, key[s:], hash(key[s:])).kind != hitNone
		}
		return hit{}, false
	}
	s := apexStart(prefix)
	if s < 0 || hasEscape(prefix) {
		return h.exact(t, key, hsh), false
	}
	idx := t.service(key[s:], prefix[s:])
	if idx == nil {
		return hit{}, false
	}
	return idx.lookup(relative(key, s)), true
}

// exact finds key, a folded name, among the names not looked up through
// one zone's service index: the names above services, reverse names, and
// the names of the zones that flatZone picks, which are tried one by one.
// hsh is key's hash.
func (h *Headless) exact(t *table, key []byte, hsh uint32) hit {
	if hasEscape(key) {
		return hit{} // the plugin's names have none
	}
	if inZones(key, h.cfg.reverse) {
		if x, ok := parseReverse(key); ok {
			if s := t.namers(x.address()); s != nil {
				x.kind, x.ptr = hitPTR, s
				return x
			}
		}
	}
	if t.ancestor(key, hsh) {
		return hit{kind: hitAncestor}
	}
	for i, z := range h.zones {
		if h.reverse[i] || !h.flat[i] || !inZone(key, z) {
			continue
		}
		prefix := key[:len(key)-len(z)]
		s := apexStart(prefix)
		if s < 0 {
			continue
		}
		if idx := t.service(key[s:], prefix[s:]); idx != nil {
			if x := idx.lookup(relative(key, s)); x.kind != hitNone {
				return x
			}
		}
	}
	return hit{}
}

// relative returns the part of key before the service name that starts at
// s, without its dot: "web-0" in "web-0.web.ns.svc.cluster.local.".
func relative(key []byte, s int) []byte {
	if s == 0 {
		return nil
	}
	return key[:s-1]
}
