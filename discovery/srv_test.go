package discovery

import (
	"errors"
	"net"
	"reflect"
	"testing"

	"github.com/miekg/dns"
)

func TestOrdinalOf(t *testing.T) {
	for _, tc := range []struct {
		host string
		want int
	}{
		{"web-0", 0}, {"web-10", 10}, {"my-db-2", 2}, {"web", -1}, {"web-", -1},
		{"web-x", -1}, {"-3", 3}, {"web-1234567890", -1}, {"web-+1", -1}, {"10-244-1-5", 5},
	} {
		if got := ordinalOf(tc.host); got != tc.want {
			t.Errorf("ordinalOf(%q) = %d, want %d", tc.host, got, tc.want)
		}
	}
}

func TestParseSRV(t *testing.T) {
	srv := func(owner, target string, port uint16, ttl uint32) dns.RR {
		return &dns.SRV{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl}, Port: port, Target: target}
	}
	glue := func(owner, ip string) dns.RR {
		a := net.ParseIP(ip)
		if a.To4() != nil {
			return &dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: a}
		}
		return &dns.AAAA{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 5}, AAAA: a}
	}
	msg := func(rcode int, answer, extra []dns.RR) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(svcName, dns.TypeSRV)
		m.Rcode, m.Answer, m.Extra = rcode, answer, extra
		return m
	}
	const (
		w0  = "web-0.web.demo.svc.cluster.local."
		w2  = "web-2.web.demo.svc.cluster.local."
		w10 = "web-10.web.demo.svc.cluster.local."
	)
	tests := []struct {
		name    string
		m       *dns.Msg
		want    []Peer
		ttl     uint32
		dropped []string
		wantErr error
	}{
		{
			name: "ordinal order, ports merged, glue",
			m: msg(dns.RcodeSuccess,
				[]dns.RR{srv(svcName, w10, 8080, 5), srv(svcName, w2, 8080, 5), srv(svcName, w2, 7946, 3), srv(svcName, w0, 8080, 5), srv(svcName, w2, 8080, 5)},
				[]dns.RR{glue(w2, "10.244.0.2"), glue(w2, "fd00::2"), glue(w0, "10.244.0.1"), glue(w2, "10.244.0.2"), glue("other.", "10.0.0.9")}),
			want: []Peer{
				{Name: "web-0.web.demo.svc.cluster.local", Host: "web-0", Ordinal: 0, Addresses: []string{"10.244.0.1"}, Ports: []int{8080}},
				{Name: "web-2.web.demo.svc.cluster.local", Host: "web-2", Ordinal: 2, Addresses: []string{"10.244.0.2", "fd00::2"}, Ports: []int{7946, 8080}},
				{Name: "web-10.web.demo.svc.cluster.local", Host: "web-10", Ordinal: 10, Addresses: []string{}, Ports: []int{8080}},
			},
			ttl: 3,
		},
		{
			name: "case folded, foreign owners and the empty target skipped",
			m: msg(dns.RcodeSuccess, []dns.RR{
				srv("WEB.Demo.svc.cluster.local.", "Web-0.WEB.demo.svc.cluster.local.", 80, 9),
				srv("other.demo.svc.cluster.local.", "x-1.other.demo.svc.cluster.local.", 80, 1),
				srv(svcName, ".", 80, 1),
				&dns.A{Hdr: dns.RR_Header{Name: svcName, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.IPv4(1, 2, 3, 4)},
			}, []dns.RR{glue("WEB-0.web.demo.svc.cluster.local.", "10.244.0.1")}),
			want: []Peer{{Name: "web-0.web.demo.svc.cluster.local", Host: "web-0", Ordinal: 0, Addresses: []string{"10.244.0.1"}, Ports: []int{80}}},
			ttl:  9,
		},
		{
			name: "hosts without ordinals sort by name, before and after numbered ones",
			m: msg(dns.RcodeSuccess, []dns.RR{
				srv(svcName, "zeta.web.demo.svc.cluster.local.", 80, 5),
				srv(svcName, "10-244-1-5.web.demo.svc.cluster.local.", 80, 5),
				srv(svcName, "alpha.web.demo.svc.cluster.local.", 80, 5),
				srv(svcName, w2, 80, 5),
			}, nil),
			want: []Peer{
				{Name: "10-244-1-5.web.demo.svc.cluster.local", Host: "10-244-1-5", Ordinal: 5, Addresses: []string{}, Ports: []int{80}},
				{Name: "alpha.web.demo.svc.cluster.local", Host: "alpha", Ordinal: -1, Addresses: []string{}, Ports: []int{80}},
				{Name: "web-2.web.demo.svc.cluster.local", Host: "web-2", Ordinal: 2, Addresses: []string{}, Ports: []int{80}},
				{Name: "zeta.web.demo.svc.cluster.local", Host: "zeta", Ordinal: -1, Addresses: []string{}, Ports: []int{80}},
			},
			ttl: 5,
		},
		{
			name: "targets outside the service dropped, case-insensitively inside kept",
			m: msg(dns.RcodeSuccess, []dns.RR{
				srv(svcName, "evil.example.com.", 80, 1),
				srv(svcName, "web-0.other.demo.svc.cluster.local.", 80, 1),
				srv(svcName, "a.web-1.web.demo.svc.cluster.local.", 80, 1),
				srv(svcName, "WEB.demo.svc.cluster.local.", 80, 1),
				srv(svcName, "xweb.demo.svc.cluster.local.", 80, 1),
				srv(svcName, "evil.example.com.", 81, 1),
				srv(svcName, "Web-1.WEB.Demo.svc.cluster.local.", 80, 6),
			}, []dns.RR{glue("evil.example.com.", "192.0.2.1"), glue("web-1.web.demo.svc.cluster.local.", "10.244.0.2")}),
			want:    []Peer{{Name: "web-1.web.demo.svc.cluster.local", Host: "web-1", Ordinal: 1, Addresses: []string{"10.244.0.2"}, Ports: []int{80}}},
			ttl:     6,
			dropped: []string{"a.web-1.web.demo.svc.cluster.local", "evil.example.com", "web-0.other.demo.svc.cluster.local", "web.demo.svc.cluster.local", "xweb.demo.svc.cluster.local"},
		},
		{name: "NXDOMAIN", m: rcodeReply(svcName, dns.TypeSRV, dns.RcodeNameError, 7).msg, ttl: 7, wantErr: ErrNoSuchService},
		{name: "NODATA takes the SOA's negative TTL", m: rcodeReply(svcName, dns.TypeSRV, dns.RcodeSuccess, 4).msg, ttl: 4},
		{name: "SERVFAIL", m: msg(dns.RcodeServerFailure, nil, nil), wantErr: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseSRV(tc.m, svcName)
			switch {
			case tc.wantErr == errAny && err == nil, tc.wantErr == nil && err != nil:
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(a.peers, tc.want) {
				t.Errorf("peers:\n got %+v\nwant %+v", a.peers, tc.want)
			}
			if !reflect.DeepEqual(a.dropped, tc.dropped) {
				t.Errorf("dropped %q, want %q", a.dropped, tc.dropped)
			}
			if a.ttl != tc.ttl {
				t.Errorf("ttl = %d, want %d", a.ttl, tc.ttl)
			}
		})
	}
}

var errAny = errors.New("any error")

// Twelve peers come out web-0 ... web-11, not web-0, web-1, web-10, web-11, web-2.
func TestParseSRVOrdinalOrderTwelve(t *testing.T) {
	hosts := webs(12)
	shuffled := append([]string{}, hosts...)
	for i, j := 0, len(shuffled)-1; i < j; i, j = i+1, j-1 {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	a, err := parseSRV(srvReply(5, shuffled...).msg, svcName)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(a.peers), fqdns(hosts...); !reflect.DeepEqual(got, want) {
		t.Fatalf("order:\n got %v\nwant %v", got, want)
	}
}

// BenchmarkParseSRV100 turns the reply for a 100-member service with two
// ports each (what a lookup over TCP returns) into peers.
func BenchmarkParseSRV100(b *testing.B) {
	m := srvReply(5, webs(100)...).msg
	b.ReportAllocs()
	for b.Loop() {
		if a, err := parseSRV(m, svcName); err != nil || len(a.peers) != 100 {
			b.Fatal(err)
		}
	}
}
