package discovery

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzParseSRV feeds arbitrary DNS replies to the SRV handling: it must not
// panic, and the peers it returns must be distinct lower-case names under
// no final dot, each with its host and ordinal, in ordinal order, with
// sorted distinct ports; every peer is <label>.<service>, whatever targets
// the reply names.
func FuzzParseSRV(f *testing.F) {
	for _, r := range []reply{
		srvReply(5, webs(12)...),
		srvReply(0, "web-0"),
		rcodeReply(svcName, dns.TypeSRV, dns.RcodeNameError, 3),
		rcodeReply(svcName, dns.TypeSRV, dns.RcodeSuccess, 3),
		rcodeReply(svcName, dns.TypeSRV, dns.RcodeServerFailure, 3),
		outside(),
	} {
		if b, err := r.msg.Pack(); err != nil {
			f.Fatal(err)
		} else {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(data); err != nil {
			return
		}
		a, err := parseSRV(m, svcName)
		if err != nil {
			if len(a.peers) != 0 {
				t.Fatalf("error %v with peers", err)
			}
			return
		}
		seen := map[string]bool{}
		for i, p := range a.peers {
			if seen[p.Name] {
				t.Fatalf("%s twice", p.Name)
			}
			seen[p.Name] = true
			if label, ok := strings.CutSuffix(p.Name, "."+strings.TrimSuffix(svcName, ".")); !ok || label == "" || strings.Contains(label, ".") {
				t.Fatalf("peer %q is not <label>.%s", p.Name, svcName)
			}
			if p.Name != strings.ToLower(p.Name) || strings.HasSuffix(p.Name, ".") {
				t.Fatalf("name %q", p.Name)
			}
			if host, _, _ := strings.Cut(p.Name, "."); host != p.Host || p.Ordinal != ordinalOf(p.Host) {
				t.Fatalf("peer %+v", p)
			}
			if i > 0 && peerLess(p, a.peers[i-1]) {
				t.Fatalf("%s before %s", a.peers[i-1].Name, p.Name)
			}
			for j := 1; j < len(p.Ports); j++ {
				if p.Ports[j] <= p.Ports[j-1] {
					t.Fatalf("ports %v", p.Ports)
				}
			}
			if len(p.Ports) == 0 {
				t.Fatalf("peer %s without a port", p.Name)
			}
		}
		// The peer list a hook gets has one line per peer.
		if got := strings.Count(peerLines(Data{Peers: a.peers}), "\n"); got != len(a.peers) {
			t.Fatalf("%d lines for %d peers", got, len(a.peers))
		}
	})
}

// FuzzResolvConf feeds arbitrary files to the resolv.conf reader: no
// panic, and a domain it finds is a suffix of a search entry after "svc.".
func FuzzResolvConf(f *testing.F) {
	f.Add("search demo.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n")
	f.Add("nameserver fd00::53\nsearch svc.\n")
	f.Add("search a.svc.b svc\n")
	f.Fuzz(func(t *testing.T, file string) {
		rc, err := ParseResolvConf(strings.NewReader(file))
		if err != nil {
			return
		}
		d := rc.Domain()
		if d == "" {
			return
		}
		for _, s := range rc.Search {
			if strings.HasSuffix(strings.ToLower(s), "svc."+d) {
				return
			}
		}
		t.Fatalf("domain %q from search list %q", d, rc.Search)
	})
}

// outside is a reply that names targets outside the service besides web-0.
func outside() reply {
	r := srvReply(0, "web-0", "a.web-1")
	for _, target := range []string{"evil.example.com.", "web.demo.svc.cluster.local.", "web-2.other.demo.svc.cluster.local."} {
		r.msg.Answer = append(r.msg.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: svcName, Rrtype: dns.TypeSRV, Class: dns.ClassINET}, Port: 80, Target: target})
	}
	return r
}

// FuzzSplitWords feeds arbitrary hook flag values to the word splitter: no
// panic, and the words it returns, each put in single quotes, split back
// into the same words.
func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{`/bin/hook a b`, `"/work-dir/on-start.sh"`, `'/my dir/x' "a\"b" c\ d ''`, `"abc`, `x\`, "a\\\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitWords(s)
		if err != nil {
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		again, err := splitWords(strings.Join(quoted, " "))
		if err != nil || !slices.Equal(again, words) {
			t.Fatalf("%q split into %q; quoted again %q: %v", s, words, again, err)
		}
	})
}
