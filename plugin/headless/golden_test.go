package headless

import (
	"flag"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// dump renders every name of a table with its records, in name order.
// The records are those ServeDNS answers, owned by the name itself.
func dump(c *config, t *table) string {
	all := map[string]hit{}
	for apex, idx := range t.svcs.All() {
		all[apex] = idx.lookup(nil)
		for i, m := range idx.members {
			all[m.label+"."+apex] = hit{kind: hitMember, idx: idx, i: i}
		}
		for i, np := range idx.named {
			all[np.label+"."+apex] = hit{kind: hitPort, idx: idx, i: i}
		}
		for _, e := range idx.ents {
			all[e+"."+apex] = hit{kind: hitENT, idx: idx}
		}
	}
	for name := range t.ancestors.All() {
		all[name] = hit{kind: hitAncestor}
	}
	for a, s := range t.ptr4.All() {
		x := hit{kind: hitPTR, ptr: s, v4: true}
		x.addr[0], x.addr[1], x.addr[2], x.addr[3] = byte(a>>24), byte(a>>16), byte(a>>8), byte(a)
		all[reverseName(netip.AddrFrom4([4]byte(x.addr[:4])))] = x
	}
	for a, s := range t.ptr6.All() {
		all[reverseName(netip.AddrFrom16(a))] = hit{kind: hitPTR, ptr: s, addr: a}
	}
	names := slices.Sorted(maps.Keys(all))
	var b strings.Builder
	for _, name := range names {
		x := all[name]
		switch x.kind {
		case hitEmpty:
			b.WriteString("; " + name + " headless service without ready endpoints (NXDOMAIN)\n")
			continue
		case hitAncestor:
			b.WriteString("; " + name + " exists above headless services\n")
			continue
		}
		var rrs, glue []dns.RR
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR} {
			answer, extra, _ := c.records(t, x, qtype, name, 0)
			rrs = append(rrs, answer...)
			glue = append(glue, extra...)
		}
		if len(rrs) == 0 {
			b.WriteString("; " + name + " empty non-terminal\n")
			continue
		}
		for _, rr := range rrs {
			b.WriteString(rr.String())
			b.WriteByte('\n')
		}
		for _, g := range glue {
			b.WriteString("; glue " + g.String() + "\n")
		}
	}
	return b.String()
}

func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from what the plugin builds now (go test -update rewrites it); got:\n%s", path, got)
	}
}

// The records built from corefile/demo, as the README shows them.
func TestGoldenDemo(t *testing.T) {
	h := &Headless{}
	if err := h.configure([]string{"cluster.local.", "in-addr.arpa.", "ip6.arpa."}, 5, 5); err != nil {
		t.Fatal(err)
	}
	src := &manifestSource{paths: []string{filepath.Join("..", "..", "corefile", "demo")}}
	if err := src.start(h.publish); err != nil {
		t.Fatal(err)
	}
	defer src.stop()
	checkGolden(t, "demo.golden", dump(&h.cfg, h.snap.Load().table))
}
