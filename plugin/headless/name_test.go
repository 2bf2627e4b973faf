package headless

import (
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
)

var zoneTests = []string{
	"cluster.local.",
	"Cluster.Local.",
	"web.ns.svc.cluster.local.",
	`foo\.cluster.local.`,
	`foo\\.cluster.local.`,
	`foo\\\.cluster.local.`,
	`foo\\\\.cluster.local.`,
	`\.cluster.local.`,
	`cluster\.local.`,
	`web-0\.web.ns.svc.cluster.local.`,
	`a.b\.c.cluster.local.`,
	`\099luster.local.`,
	`foo.\099luster.local.`,
	`foo\046cluster.local.`,
	"xcluster.local.",
	"local.",
	"10.0.244.10.in-addr.arpa.",
	`10\.0.244.10.in-addr.arpa.`,
	`1.0.244.10.in-addr\.arpa.`,
	"a.example.org.",
	"in-addr.arpa.",
	".",
}

var zoneSets = [][]string{
	{"cluster.local.", "in-addr.arpa.", "ip6.arpa."},
	{"cluster.local.", "svc.cluster.local."},
	{"example.org.", "cluster.local."},
	{"."},
}

// zoneOf agrees with CoreDNS's own zone matching, escaped dots included.
func TestZoneOfMatchesCoreDNS(t *testing.T) {
	for _, zones := range zoneSets {
		h := &Headless{zones: zones}
		for _, name := range zoneTests {
			checkZone(t, h, name)
		}
	}
}

func checkZone(t *testing.T, h *Headless, name string) {
	t.Helper()
	want := plugin.Zones(h.zones).Matches(name)
	var buf [maxName]byte
	key, _, ok := fold(&buf, name)
	if !ok {
		return
	}
	got := ""
	if i := h.zoneOf(key); i >= 0 {
		got = h.zones[i]
	}
	if got != want {
		t.Errorf("zones %v, name %q: zone %q, CoreDNS says %q", h.zones, name, got, want)
	}
}

func FuzzZoneOf(f *testing.F) {
	for _, name := range zoneTests {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if _, ok := dnsName(name); !ok {
			return
		}
		for _, zones := range zoneSets {
			checkZone(t, &Headless{zones: zones}, name)
		}
	})
}

// dnsName reports whether name is a fully qualified name in presentation
// form that a query could carry: it survives packing.
func dnsName(name string) (string, bool) {
	if len(name) == 0 || name[len(name)-1] != '.' {
		return "", false
	}
	_, ok := dns.IsDomainName(name)
	if !ok {
		return "", false
	}
	buf := make([]byte, 256)
	if _, err := dns.PackDomainName(name, buf, 0, nil, false); err != nil {
		return "", false
	}
	return name, true
}
