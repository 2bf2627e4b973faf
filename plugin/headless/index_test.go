package headless

import (
	"math/rand/v2"
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
