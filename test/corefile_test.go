package test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
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
	return out
}

var (
	keyPort     = regexp.MustCompile(`:\d+\b`)
	listenPlug  = regexp.MustCompile(`^(\s*)(health|ready|prometheus|pprof)\b(\s+\S*:\d+)?`)
	resolvConf  = regexp.MustCompile(`/etc/resolv\.conf`)
	kubeconfigL = regexp.MustCompile(`^(\s*)kubeconfig\s+.*$`)
	sourcePlug  = regexp.MustCompile(`^(\s*)(headless|kubernetes)\b([^{]*)(\{?)\s*$`)
)

// localize makes a Corefile safe to start in a test: servers listen on
// ephemeral loopback ports, health/ready/metrics too, nothing is forwarded
// off this machine, and plugins that need a cluster get a kubeconfig for
// an API server that is not there (tests here run without one).
func localize(body, kubeconfig string) string {
	var out []string
	lines := strings.Split(body, "\n")
	depth := 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if depth == 0 && strings.HasSuffix(trimmed, "{") && !strings.HasPrefix(trimmed, "#") {
			keys := strings.Fields(strings.TrimSuffix(trimmed, "{"))
			for j, k := range keys {
				if keyPort.MatchString(k) {
					keys[j] = keyPort.ReplaceAllString(k, ":0")
				} else {
					keys[j] = k + ":0"
				}
			}
			line = strings.Join(keys, " ") + " {"
		}
		line = listenPlug.ReplaceAllString(line, "${1}${2} 127.0.0.1:0")
		line = resolvConf.ReplaceAllString(line, "127.0.0.1:9")
		line = kubeconfigL.ReplaceAllString(line, "${1}kubeconfig "+kubeconfig)
		if m := sourcePlug.FindStringSubmatch(line); m != nil && depth > 0 && !hasSource(lines[i+1:], m[4] == "{") {
			if m[4] == "{" {
				line += "\n" + m[1] + "    kubeconfig " + kubeconfig
			} else {
				line = m[1] + m[2] + m[3] + " {\n" + m[1] + "    kubeconfig " + kubeconfig + "\n" + m[1] + "}"
			}
		}
		depth += strings.Count(trimmed, "{") - strings.Count(trimmed, "}")
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// hasSource reports whether the block that starts after an opening line
// names its own source (manifests, kubeconfig or an API endpoint).
func hasSource(rest []string, open bool) bool {
	if !open {
		return false
	}
	for _, l := range rest {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if f[0] == "}" {
			return false
		}
		switch f[0] {
		case "manifests", "kubeconfig", "endpoint":
			return true
		}
	}
	return false
}

// TestCorefiles starts CoreDNS from every Corefile in corefile/ and every
// Corefile example in a README, and queries each one: a served headless
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
			body := localize(ex.body, kubeconfig)
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
