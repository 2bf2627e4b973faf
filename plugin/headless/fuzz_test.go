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

	auth := newTest(f, fixture(), false)
	fall := newTest(f, fixture(), true)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(data); err != nil {
			return
		}
		for _, h := range []*Headless{auth, fall} {
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
