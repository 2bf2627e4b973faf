package headless

import (
	"net/netip"
	"strings"
	"testing"
)

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
