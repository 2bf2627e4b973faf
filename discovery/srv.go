package discovery

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// answer is what one SRV lookup of the service said.
type answer struct {
	peers []Peer // distinct targets, in ordinal order
	ttl   uint32 // how long the answer may be cached: the smallest TTL used
	// dropped are the distinct targets outside the service, lower case,
	// without the final dot, sorted.
	dropped []string
}

// parseSRV turns a reply to an SRV query for qname into the peers it names.
// Only SRV records owned by qname count; a target of "." (RFC 2782: no
// service) is skipped; several records with one target (one per port in
// the port-less form) make one peer with every port. A target that is not
// <label>.<qname> (case-insensitive) is no member of the service: it is
// left out and listed in dropped. Addresses come from
// the A and AAAA glue in the additional section. NXDOMAIN is
// ErrNoSuchService; any rcode other than NOERROR is an error. A NOERROR
// reply without SRV records (NODATA) is an empty answer whose ttl is the
// SOA's negative TTL.
func parseSRV(m *dns.Msg, qname string) (answer, error) {
	qname = dns.Fqdn(qname)
	switch m.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return answer{ttl: negativeTTL(m)}, fmt.Errorf("%w: %s", ErrNoSuchService, strings.TrimSuffix(qname, "."))
	default:
		return answer{}, fmt.Errorf("lookup %s: %s", strings.TrimSuffix(qname, "."), rcodeName(m.Rcode))
	}
	var (
		a      answer
		first  = true
		index  = map[string]int{} // lower-case target -> a.peers index
		suffix = "." + strings.ToLower(qname)
	)
	for _, rr := range m.Answer {
		srv, ok := rr.(*dns.SRV)
		if !ok || !strings.EqualFold(srv.Hdr.Name, qname) || srv.Target == "." || srv.Target == "" {
			continue
		}
		key := strings.ToLower(dns.Fqdn(srv.Target))
		if label, ok := strings.CutSuffix(key, suffix); !ok || label == "" || strings.Contains(label, ".") {
			if d := strings.TrimSuffix(key, "."); !slices.Contains(a.dropped, d) {
				a.dropped = append(a.dropped, d)
			}
			continue
		}
		if first || srv.Hdr.Ttl < a.ttl {
			a.ttl, first = srv.Hdr.Ttl, false
		}
		i, ok := index[key]
		if !ok {
			name := strings.TrimSuffix(key, ".")
			host, _, _ := strings.Cut(name, ".")
			i = len(a.peers)
			index[key] = i
			a.peers = append(a.peers, Peer{Name: name, Host: host, Ordinal: ordinalOf(host), Addresses: []string{}, Ports: []int{}})
		}
		if p := int(srv.Port); !slices.Contains(a.peers[i].Ports, p) {
			a.peers[i].Ports = append(a.peers[i].Ports, p)
		}
	}
	if first {
		a.ttl = negativeTTL(m)
	}
	for _, rr := range m.Extra {
		var ip net.IP
		switch g := rr.(type) {
		case *dns.A:
			ip = g.A
		case *dns.AAAA:
			ip = g.AAAA
		default:
			continue
		}
		i, ok := index[strings.ToLower(rr.Header().Name)]
		if !ok || ip == nil {
			continue
		}
		if s := ip.String(); !slices.Contains(a.peers[i].Addresses, s) {
			a.peers[i].Addresses = append(a.peers[i].Addresses, s)
		}
	}
	slices.Sort(a.dropped)
	for i := range a.peers {
		slices.Sort(a.peers[i].Ports)
		slices.Sort(a.peers[i].Addresses)
	}
	slices.SortFunc(a.peers, func(x, y Peer) int {
		switch {
		case peerLess(x, y):
			return -1
		case peerLess(y, x):
			return 1
		}
		return 0
	})
	return a, nil
}

// negativeTTL is how long a negative reply may be cached (RFC 2308): the
// smaller of the SOA's TTL and its MINIMUM; 0 without an SOA.
func negativeTTL(m *dns.Msg) uint32 {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl)
		}
	}
	return 0
}

// hasAddress reports whether a reply to an A or AAAA query answers it.
func hasAddress(m *dns.Msg) bool {
	if m.Rcode != dns.RcodeSuccess {
		return false
	}
	for _, rr := range m.Answer {
		switch rr.(type) {
		case *dns.A, *dns.AAAA:
			return true
		}
	}
	return false
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", rc)
}
