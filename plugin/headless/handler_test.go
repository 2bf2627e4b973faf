package headless

import (
	"context"
	"fmt"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/plugin/whoami"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

const soaLine = " 3 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 3"

func soa(zone string) dns.RR { return test.SOA(zone + soaLine) }

// Records every headless name gets, whatever the mode.
var headlessCases = []test.Case{
	// Per-endpoint names.
	{Qname: "web-0.web.ns.svc.cluster.local.", Qtype: dns.TypeA, Authoritative: true,
		Answer: []dns.RR{test.A("web-0.web.ns.svc.cluster.local. 5 IN A 10.244.0.10")}},
	{Qname: "web-0.web.ns.svc.cluster.local.", Qtype: dns.TypeAAAA,
		Answer: []dns.RR{test.AAAA("web-0.web.ns.svc.cluster.local. 5 IN AAAA fd00::10")}},
	{Qname: "web-1.web.ns.svc.cluster.local.", Qtype: dns.TypeA,
		Answer: []dns.RR{test.A("web-1.web.ns.svc.cluster.local. 5 IN A 10.244.0.11")}},
	{Qname: "web-1.web.ns.svc.cluster.local.", Qtype: dns.TypeAAAA, // NODATA
		Ns: []dns.RR{soa("cluster.local.")}},
	{Qname: "web-0.web.ns.svc.cluster.local.", Qtype: dns.TypeTXT,
		Ns: []dns.RR{soa("cluster.local.")}},
	{Qname: "web-2.web.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, // not ready
		Ns: []dns.RR{soa("cluster.local.")}},
	{Qname: "10-244-0-13.web.ns.svc.cluster.local.", Qtype: dns.TypeA, // no hostname
		Answer: []dns.RR{test.A("10-244-0-13.web.ns.svc.cluster.local. 5 IN A 10.244.0.13")}},
	{Qname: "nope.web.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}},
	{Qname: "a.b.web-0.web.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}},
	// Case: matched in any case, answered in the query's.
	{Qname: "WEB-0.Web.Ns.svc.Cluster.Local.", Qtype: dns.TypeA,
		Answer: []dns.RR{test.A("WEB-0.Web.Ns.svc.Cluster.Local. 5 IN A 10.244.0.10")}},
	{Qname: "NOPE.web.NS.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}},

	// The service name.
	{Qname: "web.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
		test.A("web.ns.svc.cluster.local. 5 IN A 10.244.0.10"),
		test.A("web.ns.svc.cluster.local. 5 IN A 10.244.0.11"),
		test.A("web.ns.svc.cluster.local. 5 IN A 10.244.0.13"),
	}},
	{Qname: "web.ns.svc.cluster.local.", Qtype: dns.TypeAAAA,
		Answer: []dns.RR{test.AAAA("web.ns.svc.cluster.local. 5 IN AAAA fd00::10")}},
	{Qname: "empty.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}},
	{Qname: "x.empty.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}},
	{Qname: "empty.ns.svc.cluster.local.", Qtype: dns.TypeSRV, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}},

	// SRV for a named port, with glue.
	{Qname: "_http._tcp.web.ns.svc.cluster.local.", Qtype: dns.TypeSRV, Answer: []dns.RR{
		test.SRV("_http._tcp.web.ns.svc.cluster.local. 5 IN SRV 0 33 8080 10-244-0-13.web.ns.svc.cluster.local."),
		test.SRV("_http._tcp.web.ns.svc.cluster.local. 5 IN SRV 0 33 8080 web-0.web.ns.svc.cluster.local."),
		test.SRV("_http._tcp.web.ns.svc.cluster.local. 5 IN SRV 0 33 8080 web-1.web.ns.svc.cluster.local."),
	}, Extra: []dns.RR{
		test.A("10-244-0-13.web.ns.svc.cluster.local. 5 IN A 10.244.0.13"),
		test.A("web-0.web.ns.svc.cluster.local. 5 IN A 10.244.0.10"),
		test.AAAA("web-0.web.ns.svc.cluster.local. 5 IN AAAA fd00::10"),
		test.A("web-1.web.ns.svc.cluster.local. 5 IN A 10.244.0.11"),
	}},
	{Qname: "_dns._udp.web.ns.svc.cluster.local.", Qtype: dns.TypeSRV, Answer: []dns.RR{
		test.SRV("_dns._udp.web.ns.svc.cluster.local. 5 IN SRV 0 33 53 10-244-0-13.web.ns.svc.cluster.local."),
		test.SRV("_dns._udp.web.ns.svc.cluster.local. 5 IN SRV 0 33 53 web-0.web.ns.svc.cluster.local."),
		test.SRV("_dns._udp.web.ns.svc.cluster.local. 5 IN SRV 0 33 53 web-1.web.ns.svc.cluster.local."),
	}, Extra: []dns.RR{
		test.A("10-244-0-13.web.ns.svc.cluster.local. 5 IN A 10.244.0.13"),
		test.A("web-0.web.ns.svc.cluster.local. 5 IN A 10.244.0.10"),
		test.AAAA("web-0.web.ns.svc.cluster.local. 5 IN AAAA fd00::10"),
		test.A("web-1.web.ns.svc.cluster.local. 5 IN A 10.244.0.11"),
	}},
	{Qname: "_http._udp.web.ns.svc.cluster.local.", Qtype: dns.TypeSRV, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}},
	{Qname: "_tcp.web.ns.svc.cluster.local.", Qtype: dns.TypeA, // empty non-terminal
		Ns: []dns.RR{soa("cluster.local.")}},
	{Qname: "_http._tcp.web.ns.svc.cluster.local.", Qtype: dns.TypeA,
		Ns: []dns.RR{soa("cluster.local.")}},

	// The port-less SRV form peer-finder uses: every port of every endpoint.
	{Qname: "web.ns.svc.cluster.local.", Qtype: dns.TypeSRV, Answer: []dns.RR{
		test.SRV("web.ns.svc.cluster.local. 5 IN SRV 0 16 53 10-244-0-13.web.ns.svc.cluster.local."),
		test.SRV("web.ns.svc.cluster.local. 5 IN SRV 0 16 53 web-0.web.ns.svc.cluster.local."),
		test.SRV("web.ns.svc.cluster.local. 5 IN SRV 0 16 53 web-1.web.ns.svc.cluster.local."),
		test.SRV("web.ns.svc.cluster.local. 5 IN SRV 0 16 8080 10-244-0-13.web.ns.svc.cluster.local."),
		test.SRV("web.ns.svc.cluster.local. 5 IN SRV 0 16 8080 web-0.web.ns.svc.cluster.local."),
		test.SRV("web.ns.svc.cluster.local. 5 IN SRV 0 16 8080 web-1.web.ns.svc.cluster.local."),
	}, Extra: []dns.RR{
		test.A("10-244-0-13.web.ns.svc.cluster.local. 5 IN A 10.244.0.13"),
		test.A("web-0.web.ns.svc.cluster.local. 5 IN A 10.244.0.10"),
		test.AAAA("web-0.web.ns.svc.cluster.local. 5 IN AAAA fd00::10"),
		test.A("web-1.web.ns.svc.cluster.local. 5 IN A 10.244.0.11"),
	}},
	// SRV on a per-endpoint name: that endpoint's ports.
	{Qname: "web-0.web.ns.svc.cluster.local.", Qtype: dns.TypeSRV, Answer: []dns.RR{
		test.SRV("web-0.web.ns.svc.cluster.local. 5 IN SRV 0 50 53 web-0.web.ns.svc.cluster.local."),
		test.SRV("web-0.web.ns.svc.cluster.local. 5 IN SRV 0 50 8080 web-0.web.ns.svc.cluster.local."),
	}, Extra: []dns.RR{
		test.A("web-0.web.ns.svc.cluster.local. 5 IN A 10.244.0.10"),
		test.AAAA("web-0.web.ns.svc.cluster.local. 5 IN AAAA fd00::10"),
	}},
	{Qname: "web-0.web.ns.svc.cluster.local.", Qtype: dns.TypeANY, Answer: []dns.RR{
		test.A("web-0.web.ns.svc.cluster.local. 5 IN A 10.244.0.10"),
		test.AAAA("web-0.web.ns.svc.cluster.local. 5 IN AAAA fd00::10"),
		test.SRV("web-0.web.ns.svc.cluster.local. 5 IN SRV 0 50 53 web-0.web.ns.svc.cluster.local."),
		test.SRV("web-0.web.ns.svc.cluster.local. 5 IN SRV 0 50 8080 web-0.web.ns.svc.cluster.local."),
	}},

	// Endpoints sharing a hostname: all their addresses. A service without
	// ports: the port-less SRV form still lists its members, on port 0.
	{Qname: "both.shared.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
		test.A("both.shared.ns.svc.cluster.local. 5 IN A 10.244.0.20"),
		test.A("both.shared.ns.svc.cluster.local. 5 IN A 10.244.0.21"),
	}},
	{Qname: "shared.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
		test.A("shared.ns.svc.cluster.local. 5 IN A 10.244.0.20"),
		test.A("shared.ns.svc.cluster.local. 5 IN A 10.244.0.21"),
		test.A("shared.ns.svc.cluster.local. 5 IN A 10.244.0.22"),
	}},
	{Qname: "shared.ns.svc.cluster.local.", Qtype: dns.TypeSRV, Answer: []dns.RR{
		test.SRV("shared.ns.svc.cluster.local. 5 IN SRV 0 33 0 a.shared.ns.svc.cluster.local."),
		test.SRV("shared.ns.svc.cluster.local. 5 IN SRV 0 33 0 b.shared.ns.svc.cluster.local."),
		test.SRV("shared.ns.svc.cluster.local. 5 IN SRV 0 33 0 both.shared.ns.svc.cluster.local."),
	}, Extra: []dns.RR{
		test.A("a.shared.ns.svc.cluster.local. 5 IN A 10.244.0.22"),
		test.A("b.shared.ns.svc.cluster.local. 5 IN A 10.244.0.22"),
		test.A("both.shared.ns.svc.cluster.local. 5 IN A 10.244.0.20"),
		test.A("both.shared.ns.svc.cluster.local. 5 IN A 10.244.0.21"),
	}},

	// PTR: exactly one name per headless service; none from ClusterIP
	// services (api selects web-0 too).
	{Qname: "10.0.244.10.in-addr.arpa.", Qtype: dns.TypePTR, Answer: []dns.RR{
		test.PTR("10.0.244.10.in-addr.arpa. 5 IN PTR pet.alias.other.svc.cluster.local."),
		test.PTR("10.0.244.10.in-addr.arpa. 5 IN PTR web-0.web.ns.svc.cluster.local."),
	}},
	{Qname: "22.0.244.10.in-addr.arpa.", Qtype: dns.TypePTR,
		Answer: []dns.RR{test.PTR("22.0.244.10.in-addr.arpa. 5 IN PTR a.shared.ns.svc.cluster.local.")}},
	{Qname: "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", Qtype: dns.TypePTR,
		Answer: []dns.RR{test.PTR("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 5 IN PTR web-0.web.ns.svc.cluster.local.")}},
	{Qname: "10.0.244.10.in-addr.arpa.", Qtype: dns.TypeA,
		Ns: []dns.RR{soa("in-addr.arpa.")}},
}

func TestServeDNSHeadless(t *testing.T) {
	for _, fall := range []bool{false, true} {
		h := newTest(t, fixture(), fall)
		for _, tc := range headlessCases {
			run(t, h, tc)
		}
	}
}

// Names no headless service owns: what happens depends on fallthrough.
var notOursCases = []struct {
	tc   test.Case // the answer without fallthrough
	next bool      // with fallthrough, the next plugin answers
}{
	{test.Case{Qname: "api.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: "ext.ns.svc.cluster.local.", Qtype: dns.TypeCNAME, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: "ns.svc.cluster.local.", Qtype: dns.TypeA,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: "svc.cluster.local.", Qtype: dns.TypeA,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: "nons.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: "cluster.local.", Qtype: dns.TypeSOA,
		Answer: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: "cluster.local.", Qtype: dns.TypeNS,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: "dns-version.cluster.local.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: "10-244-0-13.ns.pod.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: "13.0.244.10.in-addr.arpa.", Qtype: dns.TypePTR, Rcode: dns.RcodeNameError, // no hostname
		Ns: []dns.RR{soa("in-addr.arpa.")}}, true},
	{test.Case{Qname: "12.0.244.10.in-addr.arpa.", Qtype: dns.TypePTR, Rcode: dns.RcodeNameError, // not ready
		Ns: []dns.RR{soa("in-addr.arpa.")}}, true},
	{test.Case{Qname: "cluster.local.", Qtype: dns.TypeAXFR, Rcode: dns.RcodeRefused}, true},
	{test.Case{Qname: "web.ns.svc.cluster.local.", Qtype: dns.TypeAXFR, Rcode: dns.RcodeRefused}, false},
	{test.Case{Qname: "web.ns.svc.cluster.local.", Qtype: dns.TypeIXFR, Rcode: dns.RcodeRefused}, false},
	// Outside the plugin's zones: always the next plugin.
	{test.Case{Qname: "example.org.", Qtype: dns.TypeA, Answer: []dns.RR{nextTXT("example.org.")}}, true},
	// Escaped dots are inside labels. foo\.cluster.local. has the labels
	// "foo.cluster" and "local": outside cluster.local, as CoreDNS's zone
	// matching (plugin.Zones.Matches) says.
	{test.Case{Qname: `foo\.cluster.local.`, Qtype: dns.TypeA, Answer: []dns.RR{nextTXT(`foo\.cluster.local.`)}}, true},
	{test.Case{Qname: `web-0.web.ns.svc.cluster\.local.`, Qtype: dns.TypeA, Answer: []dns.RR{nextTXT(`web-0.web.ns.svc.cluster\.local.`)}}, true},
	{test.Case{Qname: `web\.ns.svc.cluster.local.`, Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	// In the zone, but never a headless name: "web-0.web" is one label.
	{test.Case{Qname: `web-0\.web.ns.svc.cluster.local.`, Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: `_http\._tcp.web.ns.svc.cluster.local.`, Qtype: dns.TypeSRV, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
	{test.Case{Qname: `10\.0.244.10.in-addr.arpa.`, Qtype: dns.TypePTR, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("in-addr.arpa.")}}, true},
	// An escaped backslash does not escape the dot after it.
	{test.Case{Qname: `foo\\.cluster.local.`, Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{soa("cluster.local.")}}, true},
}

func TestServeDNSNotOurs(t *testing.T) {
	auth := newTest(t, fixture(), false)
	fall := newTest(t, fixture(), true)
	for _, c := range notOursCases {
		run(t, auth, c.tc)
		tc := c.tc
		if c.next {
			tc = test.Case{Qname: tc.Qname, Qtype: tc.Qtype, Answer: []dns.RR{nextTXT(tc.Qname)}}
		}
		run(t, fall, tc)
	}
}

func TestServeDNSFallthroughZones(t *testing.T) {
	h := newTest(t, fixture(), false)
	h.Fall.SetZonesFromArgs([]string{"in-addr.arpa."})
	run(t, h, test.Case{Qname: "13.0.244.10.in-addr.arpa.", Qtype: dns.TypePTR, Answer: []dns.RR{nextTXT("13.0.244.10.in-addr.arpa.")}})
	run(t, h, test.Case{Qname: "api.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{soa("cluster.local.")}})
}

// Before the first snapshot: SERVFAIL for names the plugin may own, never a
// false NXDOMAIN; the rest as usual.
func TestServeDNSBeforeSync(t *testing.T) {
	h := &Headless{Next: nextHandler}
	if err := h.configure([]string{"cluster.local.", "in-addr.arpa."}, 5, 3); err != nil {
		t.Fatal(err)
	}
	if h.Ready() {
		t.Fatal("Ready() before the first snapshot")
	}
	for _, tc := range []test.Case{
		{Qname: "web-0.web.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeServerFailure},
		{Qname: "web.ns.svc.cluster.local.", Qtype: dns.TypeSRV, Rcode: dns.RcodeServerFailure},
		{Qname: "10.0.244.10.in-addr.arpa.", Qtype: dns.TypePTR, Rcode: dns.RcodeServerFailure},
		{Qname: "ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeServerFailure},
		{Qname: "cluster.local.", Qtype: dns.TypeSOA, Answer: []dns.RR{soa("cluster.local.")}},
		{Qname: "example.org.", Qtype: dns.TypeA, Answer: []dns.RR{nextTXT("example.org.")}},
		{Qname: `foo\.cluster.local.`, Qtype: dns.TypeA, Answer: []dns.RR{nextTXT(`foo\.cluster.local.`)}},
	} {
		run(t, h, tc)
	}
	// With fallthrough, a name with an escape below the zone is never
	// ours, so it is not held back before the sync.
	h.Fall.SetZonesFromArgs(nil)
	run(t, h, test.Case{Qname: `web-0\.web.ns.svc.cluster.local.`, Qtype: dns.TypeA, Answer: []dns.RR{nextTXT(`web-0\.web.ns.svc.cluster.local.`)}})
	h.Fall = fall.F{}
	h.publish(fixture(), fixture().keys())
	if !h.Ready() {
		t.Fatal("not Ready() after the first snapshot")
	}
	run(t, h, test.Case{Qname: "web-1.web.ns.svc.cluster.local.", Qtype: dns.TypeA,
		Answer: []dns.RR{test.A("web-1.web.ns.svc.cluster.local. 5 IN A 10.244.0.11")}})
}

func TestServeDNSOtherClassGoesNext(t *testing.T) {
	h := newTest(t, fixture(), false)
	m := new(dns.Msg)
	m.SetQuestion("web-0.web.ns.svc.cluster.local.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	if _, err := h.ServeDNS(context.Background(), rec, m); err != nil {
		t.Fatal(err)
	}
	if rec.Msg == nil || len(rec.Msg.Answer) != 1 || rec.Msg.Answer[0].(*dns.TXT).Txt[0] != "next" {
		t.Fatalf("CHAOS query not passed on: %v", rec.Msg)
	}
}

// The SOA serial moves forward with every change, and only then: a rebuild
// that changes nothing publishes nothing.
func TestSerialChanges(t *testing.T) {
	l := fixture()
	h := newTest(t, l, false)
	first := h.snap.Load()
	h.publish(l, l.keys())
	if again := h.snap.Load(); again != first || again.serial != first.serial {
		t.Fatalf("an unchanged rebuild published serial %d after %d", again.serial, first.serial)
	}
	k := svcKey{Namespace: "ns", Name: "web"}
	l.sl[k] = l.sl[k][:1] // web loses its IPv6 slice
	h.publish(l, []svcKey{k})
	second := h.snap.Load().serial
	if second <= first.serial {
		t.Fatalf("serial went from %d to %d", first.serial, second)
	}
	resp := run(t, h, test.Case{Qname: "nope.web.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{soa("cluster.local.")}})
	if got := resp.Ns[0].(*dns.SOA).Serial; got != second {
		t.Fatalf("SOA serial %d, want %d", got, second)
	}
}

// Answers are copies: changing one must not change the next.
func TestAnswersAreCopies(t *testing.T) {
	h := newTest(t, fixture(), false)
	tc := test.Case{Qname: "web.ns.svc.cluster.local.", Qtype: dns.TypeSRV}
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	h.ServeDNS(context.Background(), rec, tc.Msg())
	for _, rr := range append(rec.Msg.Answer, rec.Msg.Extra...) {
		rr.Header().Name = "mangled."
		rr.Header().Ttl = 9999
	}
	rec2 := dnstest.NewRecorder(&test.ResponseWriter{})
	h.ServeDNS(context.Background(), rec2, tc.Msg())
	for _, rr := range append(rec2.Msg.Answer, rec2.Msg.Extra...) {
		if rr.Header().Name == "mangled." || rr.Header().Ttl == 9999 {
			t.Fatalf("a change to an answer leaked into the snapshot: %s", rr)
		}
	}
}

func BenchmarkServeDNS(b *testing.B) {
	h := newTest(b, thousandPods(), true)
	queries := []struct {
		name  string
		qtype uint16
	}{
		{"set42-7.set42.bench.svc.cluster.local.", dns.TypeA},
		{"SET42-7.Set42.bench.svc.cluster.local.", dns.TypeA},
		{"set42.bench.svc.cluster.local.", dns.TypeA},
		{"_peer._tcp.set42.bench.svc.cluster.local.", dns.TypeSRV},
		{"set42.bench.svc.cluster.local.", dns.TypeSRV},
		{"7.42.244.10.in-addr.arpa.", dns.TypePTR},
		{"set42-99.set42.bench.svc.cluster.local.", dns.TypeA},   // NXDOMAIN
		{"set42-7.set42.bench.svc.cluster.local.", dns.TypeAAAA}, // NODATA
	}
	for _, q := range queries {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b.Run(dns.TypeToString[q.qtype]+"/"+q.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &discard{}
			ctx := context.Background()
			cpu := cpuTime()
			for b.Loop() {
				h.ServeDNS(ctx, w, m)
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkFallthrough is the cost headless adds to every name it does not
// own (ClusterIP services, pods) on its way to the kubernetes plugin.
func BenchmarkFallthrough(b *testing.B) {
	h := newTest(b, thousandPods(), true)
	h.Next = test.NextHandler(dns.RcodeSuccess, nil)
	m := new(dns.Msg)
	m.SetQuestion("api.default.svc.cluster.local.", dns.TypeA)
	w := &discard{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeDNS(ctx, w, m)
	}
}

// BenchmarkPodAVsWhoami sets a per-pod A answer (plugin and packing)
// beside whoami's, the ceiling of a CoreDNS plugin that BENCHMARKS.md's
// pod-A goal names, in services of 10 and of 100 pods. The rest of a query's
// cost (the socket, the server, the plugins before it) is the same for
// both. On a shared machine, compare the three in one run.
func BenchmarkPodAVsWhoami(b *testing.B) {
	run := func(b *testing.B, hd plugin.Handler, name string) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		serveLoop(b, hd, &packer{buf: make([]byte, 0, 512)}, m)
	}
	for _, pods := range []int{10, 100} {
		h := newTest(b, cluster(100, pods), true)
		name := fmt.Sprintf("set42-%d.set42.bench.svc.cluster.local.", pods-3)
		b.Run(fmt.Sprintf("headless/pods=%d", pods), func(b *testing.B) { run(b, h, name) })
	}
	b.Run("whoami", func(b *testing.B) { run(b, whoami.Whoami{}, "set42-7.set42.bench.svc.cluster.local.") })
}

// BenchmarkSRVScrubbed is a big service's SRV answer as the server sends
// it: through the ScrubWriter that truncates it to the client's buffer
// (512 bytes over UDP without EDNS0, everything over TCP), then packed.
// Both forms, the service's name and a named port, for 10 and 100 pods.
func BenchmarkSRVScrubbed(b *testing.B) {
	for _, pods := range []int{10, 100} {
		h := newTest(b, cluster(100, pods), true)
		for _, name := range []string{"set42.bench.svc.cluster.local.", "_http._tcp.set42.bench.svc.cluster.local."} {
			for _, tcp := range []bool{false, true} {
				proto := "udp512"
				if tcp {
					proto = "tcp"
				}
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeSRV)
				b.Run(fmt.Sprintf("pods=%d/%s/%s", pods, proto, name), func(b *testing.B) {
					p := &packer{ResponseWriter: test.ResponseWriter{TCP: tcp}, buf: make([]byte, 0, 512)}
					serveLoop(b, h, request.NewScrubWriter(m, p), m)
				})
			}
		}
	}
}

// FuzzServeDNS sends arbitrary messages to the plugin: it must never panic,
// and whatever it writes must be a valid reply to the query.
func FuzzServeDNS(f *testing.F) {
	seed := func(m *dns.Msg) {
		if b, err := m.Pack(); err == nil {
			f.Add(b)
		}
	}
	for _, tc := range headlessCases {
		seed(tc.Msg())
	}
	for _, c := range notOursCases {
		seed(c.tc.Msg())
	}
	odd := new(dns.Msg)
	odd.SetQuestion("web-0.web.ns.svc.cluster.local.", dns.TypeA)
	odd.Question = append(odd.Question, odd.Question[0])
	seed(odd)

	for _, name := range []string{"a.b.headless-1.ns.svc.cluster.local.", "b.headless-1.ns.svc.cluster.local.",
		"fd00--0.headless-1.ns.svc.cluster.local.", `test-name\.headless-1.ns.svc.cluster.local.`} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		seed(m)
	}

	auth := newTest(f, fixture(), false)
	fall := newTest(f, fixture(), true)
	// Endpoints named after pods, pod names with dots among them.
	pods := &Headless{}
	if err := pods.configure([]string{"cluster.local.", "in-addr.arpa.", "ip6.arpa."}, 5, 3); err != nil {
		f.Fatal(err)
	}
	pods.setPodNames()
	l := stockFixture()
	pods.publish(l, l.keys())
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(data); err != nil {
			return
		}
		for _, h := range []*Headless{auth, fall, pods} {
			rec := dnstest.NewRecorder(&test.ResponseWriter{})
			h.ServeDNS(context.Background(), request.NewScrubWriter(m, rec), m)
			if rec.Msg == nil {
				continue
			}
			if rec.Msg.Id != m.Id || !rec.Msg.Response {
				t.Fatalf("reply %d/%v to query %d", rec.Msg.Id, rec.Msg.Response, m.Id)
			}
			if _, err := rec.Msg.Pack(); err != nil {
				t.Fatalf("reply does not pack: %v\n%s", err, rec.Msg)
			}
		}
	})
}
