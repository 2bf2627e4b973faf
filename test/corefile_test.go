package test

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/core/plugin" // CoreDNS's own plugins
	coretest "github.com/coredns/coredns/test"
	"github.com/miekg/dns"

	"petset.dev/petset/plugin/headless"
)

func init() {
	dnsserver.Directives = headless.InsertDirective(dnsserver.Directives)
	caddy.Quiet = true
	dnsserver.Quiet = true
}

// example is one Corefile to start, and a query that proves it serves.
type example struct {
	source string // file (and line) it came from
	body   string
}

// corefiles returns every Corefile in corefile/ and every Corefile example
// (a fenced block marked "corefile") in a README.md of the repository.
func corefiles(t *testing.T) []example {
	t.Helper()
	var out []example
	paths, _ := filepath.Glob("corefile/*.Corefile")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, example{source: p, body: string(b)})
	}
	filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == ".git" || d.Name() == ".cache") {
			return filepath.SkipDir
		}
		if d.Name() != "README.md" {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		var (
			in    bool
			body  strings.Builder
			start int
		)
		for line := 1; s.Scan(); line++ {
			text := s.Text()
			switch {
			case !in && (text == "~~~ corefile" || text == "``` corefile"):
				in, start = true, line
				body.Reset()
			case in && (text == "~~~" || text == "```"):
				in = false
				out = append(out, example{source: p + ":" + strconv.Itoa(start), body: body.String()})
			case in:
				body.WriteString(text + "\n")
			}
		}
		return nil
	})
	return append(out, deployCorefiles(t)...)
}

// TestCorefiles starts CoreDNS from every Corefile in corefile/, every
// Corefile example in a README and every Corefile ConfigMap in deploy/, and queries each one: a served headless
// name must be answered (from manifests), or be SERVFAIL while the
// Kubernetes source cannot sync, never NXDOMAIN.
func TestCorefiles(t *testing.T) {
	t.Chdir("..")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: none, context: {cluster: none, user: u}}]
current-context: none
`), 0o600)

	examples := corefiles(t)
	if len(examples) < 3 {
		t.Fatalf("found only %d Corefiles; the search is broken", len(examples))
	}
	for _, ex := range examples {
		t.Run(ex.source, func(t *testing.T) {
			body := Localize(ex.body, kubeconfig)
			i, udp, _, err := coretest.CoreDNSServerAndPorts(body)
			if err != nil {
				t.Fatalf("start failed: %v\n%s", err, body)
			}
			defer i.Stop()
			if !strings.Contains(body, "headless") || udp == "" {
				return
			}
			m := new(dns.Msg)
			m.SetQuestion("web-0.web.demo.svc.cluster.local.", dns.TypeA)
			c := &dns.Client{Timeout: 5 * time.Second}
			r, _, err := c.Exchange(m, udp)
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			fromManifests := strings.Contains(body, "manifests corefile/demo")
			switch {
			case fromManifests && (r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.244.1.10"):
				t.Fatalf("demo answer wrong:\n%s", r)
			case !fromManifests && strings.Contains(body, "kubeconfig "+kubeconfig) && r.Rcode != dns.RcodeServerFailure:
				t.Fatalf("without an API server the plugin must answer SERVFAIL, got:\n%s", r)
			}
		})
	}
}

// Every plugin README has CoreDNS's sections, in CoreDNS's order.
func TestPluginReadmeSections(t *testing.T) {
	t.Chdir("..")
	readmes, _ := filepath.Glob("plugin/*/README.md")
	if len(readmes) == 0 {
		t.Fatal("no plugin READMEs found")
	}
	want := []string{"## Name", "## Description", "## Syntax", "## Examples", "## Metrics", "## Ready", "## See Also"}
	for _, p := range readmes {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		next := 0
		for _, line := range strings.Split(string(b), "\n") {
			if next < len(want) && strings.HasPrefix(line, want[next]) {
				next++
			}
		}
		if next != len(want) {
			t.Errorf("%s: section %q missing or out of order; want %v", p, want[next], want)
		}
	}
}
