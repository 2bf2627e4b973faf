package headless

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// compareLabels, labelOrder and the key sortDrafts sorts by order labels as
// strings.Compare orders the names they begin, label+".".
func TestCompareLabels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "ab.-0"
	label := func() string {
		var b strings.Builder
		for range r.IntN(11) {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 20000 {
		a, b := label(), label()
		want := sign(strings.Compare(a+".", b+"."))
		if got := sign(compareLabels(a, []byte(b))); got != want {
			t.Fatalf("compareLabels(%q, %q) = %d, want %d", a, b, got, want)
		}
		if got := sign(labelOrder(a, b)); got != want {
			t.Fatalf("labelOrder(%q, %q) = %d, want %d", a, b, got, want)
		}
		if ka, kb := labelKey(a), labelKey(b); ka != kb && sign(strings.Compare(a+".", b+".")) != sign(cmpU64(ka, kb)) {
			t.Fatalf("labelKey orders %q and %q wrongly", a, b)
		}
	}
	// sortDrafts: label order, and the order they had among equal labels.
	for range 200 {
		var ds []*draft
		for i := range r.IntN(40) {
			ds = append(ds, &draft{label: "pre" + label(), slice: i})
		}
		new(collector).sortDrafts(ds)
		for i := 1; i < len(ds); i++ {
			c := strings.Compare(ds[i-1].label+".", ds[i].label+".")
			if c > 0 || c == 0 && ds[i-1].slice > ds[i].slice {
				t.Fatalf("sortDrafts: %q (%d) before %q (%d)", ds[i-1].label, ds[i-1].slice, ds[i].label, ds[i].slice)
			}
		}
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Members whose labels are prefixes of one another ("a", "a-b", "a.b")
// are each found by their own name, and the names between a dotted label
// and the service exist without records.
func TestLookupPrefixLabels(t *testing.T) {
	s := slice("ns", "web", "web-1", discovery.AddressTypeIPv4, nil,
		ep{addr: "10.244.0.1"}, ep{addr: "10.244.0.2"}, ep{addr: "10.244.0.3"}, ep{addr: "10.244.0.4"}, ep{addr: "10.244.0.5"})
	for i, pod := range []string{"a", "a-b", "a.b", "b0", "x.y.a"} {
		s.Endpoints[i].TargetRef = &corev1.ObjectReference{Name: pod}
	}
	l := newStatic(svc("ns", "web", true), s)
	cfg := config{forward: []string{"cluster.local."}, ttl: 5, podNames: true}
	snap := newBuilder(cfg).apply(l, l.keys())
	idx := snap.table.service([]byte("web.ns.svc.cluster.local."), []byte("web.ns.svc."))
	if idx == nil {
		t.Fatal("no index for web")
	}
	tests := []struct {
		rel  string
		kind hitKind
		addr string
	}{
		{"a", hitMember, "10.244.0.1"},
		{"a-b", hitMember, "10.244.0.2"},
		{"a.b", hitMember, "10.244.0.3"},
		{"b0", hitMember, "10.244.0.4"},
		{"x.y.a", hitMember, "10.244.0.5"},
		{"b", hitENT, ""},
		{"y.a", hitENT, ""},
		{"a.", hitNone, ""},
		{"a-", hitNone, ""},
		{"b.a", hitNone, ""},
		{"c", hitNone, ""},
	}
	for _, tc := range tests {
		x := idx.lookup([]byte(tc.rel))
		if x.kind != tc.kind {
			t.Errorf("%s: kind %d, want %d", tc.rel, x.kind, tc.kind)
			continue
		}
		if tc.addr == "" {
			continue
		}
		rrs, _, _ := cfg.records(snap.table, x, 1, tc.rel+".web.ns.svc.cluster.local.", 0)
		if len(rrs) != 1 || !strings.HasSuffix(rrs[0].String(), "\t"+tc.addr) {
			t.Errorf("%s: %v, want %s", tc.rel, rrs, tc.addr)
		}
	}
}

// parseReverse reads exactly the names reverseName writes.
func TestParseReverse(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "10.244.1.5", "255.255.255.255", "1.2.3.4", "::", "::1", "fd00::", "fd00::10", "2001:db8:ffff:1:2:3:4:5", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		a := netip.MustParseAddr(s)
		rev := reverseName(a)
		x, ok := parseReverse([]byte(rev))
		if !ok {
			t.Errorf("%s: not parsed", rev)
			continue
		}
		if got, _ := netip.AddrFromSlice(x.address()); got != a {
			t.Errorf("%s: %s, want %s", rev, got, a)
		}
	}
	for _, rev := range []string{
		"in-addr.arpa.", "1.in-addr.arpa.", "0.0.10.in-addr.arpa.", "1.0.0.0.10.in-addr.arpa.",
		"01.0.0.10.in-addr.arpa.", "256.0.0.10.in-addr.arpa.", "1000.0.0.10.in-addr.arpa.", ".0.0.10.in-addr.arpa.",
		"1..0.10.in-addr.arpa.", "a.0.0.10.in-addr.arpa.", "-1.0.0.10.in-addr.arpa.", "1.0.0.10in-addr.arpa.",
		"ip6.arpa.", "0.ip6.arpa.",
		strings.Repeat("0.", 31) + "ip6.arpa.", strings.Repeat("0.", 33) + "ip6.arpa.",
		strings.Repeat("0.", 31) + "g.ip6.arpa.", strings.Repeat("0.", 30) + "00.ip6.arpa.",
		strings.Repeat("0.", 32) + "ip6.arpa.x.",
	} {
		if x, ok := parseReverse([]byte(rev)); ok {
			t.Errorf("%s: parsed as %v", rev, x.address())
		}
	}
}

// FuzzParseReverse: whatever parseReverse accepts is the reverse name of
// the address it returns, so a reverse name has exactly one address.
func FuzzParseReverse(f *testing.F) {
	for _, s := range []string{"5.1.244.10.in-addr.arpa.", "01.0.0.10.in-addr.arpa.", reverseName(netip.MustParseAddr("fd00::10")), "ip6.arpa."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		x, ok := parseReverse([]byte(name))
		if !ok {
			return
		}
		a, _ := netip.AddrFromSlice(x.address())
		if rev := reverseName(a); rev != name {
			t.Fatalf("%q parsed as %s, whose reverse name is %q", name, a, rev)
		}
	})
}
