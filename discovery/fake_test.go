package discovery

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

const svcName = "web.demo.svc.cluster.local."

// fakeResolver answers from a script: each name and type has a list of
// replies, given out in turn; the last one repeats.
type fakeResolver struct {
	mu      sync.Mutex
	replies map[string][]reply
	calls   map[string]int
}

type reply struct {
	msg *dns.Msg
	err error
}

func newFake() *fakeResolver {
	return &fakeResolver{replies: map[string][]reply{}, calls: map[string]int{}}
}

func fakeKey(name string, qtype uint16) string {
	return strings.ToLower(dns.Fqdn(name)) + " " + dns.TypeToString[qtype]
}

// on adds replies for name and qtype.
func (f *fakeResolver) on(name string, qtype uint16, rs ...reply) *fakeResolver {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey(name, qtype)
	f.replies[k] = append(f.replies[k], rs...)
	return f
}

func (f *fakeResolver) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey(name, qtype)
	rs := f.replies[k]
	n := f.calls[k]
	f.calls[k]++
	if len(rs) == 0 {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		m.Rcode = dns.RcodeNameError
		return m, nil
	}
	r := rs[min(n, len(rs)-1)]
	return r.msg, r.err
}

func (f *fakeResolver) count(name string, qtype uint16) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[fakeKey(name, qtype)]
}

// srvReply is a NOERROR reply for the service with one SRV record per host
// and port, and an A record of glue per host: 10.244.0.<ordinal+1>.
func srvReply(ttl uint32, hosts ...string) reply {
	m := new(dns.Msg)
	m.SetQuestion(svcName, dns.TypeSRV)
	m.Response, m.Authoritative = true, true
	for i, h := range hosts {
		target := h + ".web.demo.svc.cluster.local."
		for _, port := range []uint16{8080, 7946} {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: svcName, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl}, Priority: 0, Weight: 10, Port: port, Target: target})
		}
		n := ordinalOf(h)
		if n < 0 {
			n = i
		}
		m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: target, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IPv4(10, 244, byte(n/250), byte(n%250+1))})
	}
	return reply{msg: m}
}

// rcodeReply is a reply with rcode and an SOA whose MINIMUM is negTTL.
func rcodeReply(name string, qtype uint16, rcode int, negTTL uint32) reply {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Response, m.Rcode = true, rcode
	m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "cluster.local.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negTTL}, Ns: "ns.dns.cluster.local.", Mbox: "hostmaster.cluster.local.", Serial: 1, Minttl: negTTL}}
	return reply{msg: m}
}

func aReply(name string, ip string) reply {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.Response = true
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)}}
	return reply{msg: m}
}

// webs returns web-0 ... web-(n-1).
func webs(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("web-%d", i))
	}
	return out
}

// fqdns returns the peers' names, as peer-finder writes them.
func fqdns(hosts ...string) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h+".web.demo.svc.cluster.local")
	}
	return out
}

// testConfig parses a command line for the web service in demo, with
// fast polling, plus extra flags.
func testConfig(t *testing.T, extra ...string) *Config {
	t.Helper()
	args := append([]string{"-service", "web", "-ns", "demo", "-domain", "cluster.local", "-hostname", "web-0",
		"-dns-server", "127.0.0.1:9", "-interval", "1ms", "-max-interval", "20ms"}, extra...)
	c, err := ParseFlags(args, Environment{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("ParseFlags(%q): %v", args, err)
	}
	return c
}
