package headless

import (
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// kubeNX gives, for the kubernetes plugin right after headless, its
// NXDOMAIN for an A, AAAA or SRV question under <svc>.<ns>.svc.<zone> when
// it has no such service. Pods' resolvers ask many such names (search-path
// expansions, services that are gone), and that plugin spends far more on
// each than a lookup in its service index. The answer is its own, byte for
// byte; every case it would answer otherwise is passed on (see answer and
// newKubeNX).
type kubeNX struct {
	k *kubernetes.Kubernetes
	// zones is, per headless zone, whether names under it reach the
	// kubernetes plugin with that same zone, and if so the SOA names it
	// gives (for the lowercased zone).
	zones []kubeZone
	// hasSynced is set once the kubernetes plugin has synced.
	hasSynced atomic.Bool
}

// synced reports whether the kubernetes plugin has synced.
func (x *kubeNX) synced() bool {
	if x.hasSynced.Load() {
		return true
	}
	if !x.k.APIConn.HasSynced() {
		return false
	}
	x.hasSynced.Store(true)
	return true
}

type kubeZone struct {
	ok             bool
	zone, ns, mbox string // lowercased
}

// newKubeNX returns the kubeNX for next, or nil when next is not the
// kubernetes plugin or none of zones qualifies. It fails when it cannot
// tell which zones are multicluster ones.
func newKubeNX(next plugin.Handler, zones []string, reverse []bool, flat []bool) (*kubeNX, error) {
	k, ok := next.(*kubernetes.Kubernetes)
	if !ok || k == nil || k.APIConn == nil {
		return nil, nil
	}
	probe := newKubeProbe(k)
	x := &kubeNX{k: k, zones: make([]kubeZone, len(zones))}
	found := false
	for i, z := range zones {
		if reverse[i] || flat[i] {
			continue
		}
		multi, err := probe.multicluster(z)
		if err != nil {
			return nil, err
		}
		if multi {
			continue
		}
		// Names under z reach the kubernetes plugin with zone z only if
		// it serves z and no zone of its own below z.
		serves, below := false, false
		for _, kz := range k.Zones {
			switch {
			case dns.CanonicalName(kz) == z:
				serves = true
			case dns.IsSubDomain(z, dns.CanonicalName(kz)):
				below = true
			}
		}
		if serves && !below {
			x.zones[i] = kubeZone{ok: true, zone: z, ns: dnsutil.Join("ns.dns", z), mbox: dnsutil.Join("hostmaster", z)}
			found = true
		}
	}
	if !found {
		return nil, nil
	}
	return x, nil
}

// answer writes the kubernetes plugin's NXDOMAIN for r and reports true,
// or writes nothing and reports false when the kubernetes plugin must
// answer. key is the question's name folded (as long as it), in headless
// zone zi, and owned by no headless service.
func (x *kubeNX) answer(w dns.ResponseWriter, r *dns.Msg, key []byte, zi int) bool {
	if x == nil || !x.zones[zi].ok {
		return false
	}
	q := r.Question[0]
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeSRV:
	default:
		return false
	}
	zl := len(x.zones[zi].zone)
	prefix := key[:len(key)-zl]
	s := apexStart(prefix)
	if s < 0 || hasEscape(key) {
		return false
	}
	// The kubernetes plugin's service index is keyed "<name>.<namespace>",
	// which is prefix[s:] without its ".svc.".
	svcKey := prefix[s : len(prefix)-len(".svc.")]
	// The kubernetes plugin's own order: its fallthrough, then its index,
	// and only for a service it does not have, whether it has synced
	// (informers never unsync, so that is asked until it says yes).
	if x.k.Fall.Through(q.Name) || len(x.k.APIConn.SvcIndex(string(svcKey))) > 0 || !x.synced() {
		return false
	}
	// The zone as the question spells it, as the kubernetes plugin keeps it.
	zone := q.Name[len(q.Name)-zl:]
	ns, mbox := x.zones[zi].ns, x.zones[zi].mbox
	if zone != x.zones[zi].zone {
		ns, mbox = dnsutil.Join("ns.dns", zone), dnsutil.Join("hostmaster", zone)
	}
	state := request.Request{Zone: zone}
	ttl := x.k.MinTTL(state)
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeNameError)
	m.Authoritative = true
	m.Ns = []dns.RR{&dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: min(ttl, 300)},
		Ns:      ns,
		Mbox:    mbox,
		Serial:  x.k.Serial(state),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  ttl,
	}}
	kubeNXDomain.Inc() // before the client can see the answer
	w.WriteMsg(m)
	return true
}
