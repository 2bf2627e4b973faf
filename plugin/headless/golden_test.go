package headless

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// dump renders every name of a table with its records, in name order.
func dump(t *table) string {
	var names []string
	all := map[string]*node{}
	t.each(func(k string, n *node) {
		names = append(names, k)
		all[k] = n
	})
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		n := all[name]
		switch n.kind {
		case kindEmptyService:
			b.WriteString("; " + name + " headless service without ready endpoints (NXDOMAIN)\n")
			continue
		case kindAncestor:
			b.WriteString("; " + name + " exists above headless services\n")
			continue
		}
		count := len(n.a) + len(n.aaaa) + len(n.srv) + len(n.ptr)
		if count == 0 {
			b.WriteString("; " + name + " empty non-terminal\n")
			continue
		}
		write := func(rrs ...dns.RR) {
			for _, rr := range rrs {
				b.WriteString(rr.String())
				b.WriteByte('\n')
			}
		}
		write(appendCopies(nil, n.a, "")...)
		write(appendCopies(nil, n.aaaa, "")...)
		write(appendCopies(nil, n.srv, "")...)
		write(appendCopies(nil, n.ptr, "")...)
		for _, g := range append(appendCopies(nil, n.glueA, ""), appendCopies(nil, n.glueAAAA, "")...) {
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
	checkGolden(t, "demo.golden", dump(h.snap.Load().names))
}
