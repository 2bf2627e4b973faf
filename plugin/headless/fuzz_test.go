package headless

import (
	"context"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

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
