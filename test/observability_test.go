package test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	coretest "github.com/coredns/coredns/test"
	"github.com/miekg/dns"
)

var (
	metricName   = regexp.MustCompile(`\b(?:coredns|petset)_[a-z0-9_]+\b`)
	promExported = regexp.MustCompile(`(?m)^# TYPE ([a-z0-9_:]+) `)
	// petset's own definitions: full names in the controller and
	// peer-finder, names under coredns_headless_ in the plugin.
	fullName   = regexp.MustCompile(`"(petset_[a-z0-9_]+)"`)
	pluginName = regexp.MustCompile(`Name:\s*"([a-z0-9_]+)"`)
)

// exportedMetrics returns the metric names petset's binaries export: the
// ones a CoreDNS server started from deploy/dns's Corefile (with the demo
// manifests as headless's source) shows on its prometheus endpoint after
// a query, and the ones defined in the metrics code of the plugin, the
// controller and peer-finder (vectors appear only once they have a child,
// so the definitions are read for those).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}

	cm := deployCorefiles(t)
	var body string
	for _, ex := range cm {
		if strings.HasPrefix(ex.source, filepath.Join("deploy", "dns")) {
			body = ex.body
		}
	}
	if body == "" {
		t.Fatal("no Corefile in deploy/dns")
	}
	body = regexp.MustCompile(`(?m)^(\s*)headless (.*)\{$`).ReplaceAllString(body, "${1}headless ${2}{\n${1}    manifests corefile/demo")
	// kubernetes, behind headless, gets an API server that is not there.
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: none, context: {cluster: none, user: u}}]
current-context: none
`), 0o600); err != nil {
		t.Fatal(err)
	}
	body = Localize(body, kubeconfig)
	metricsAddr := loopbackAddr(true)
	body = regexp.MustCompile(`prometheus 127\.0\.0\.1:0`).ReplaceAllString(body, "prometheus "+metricsAddr)
	if !strings.Contains(body, "prometheus "+metricsAddr) || !strings.Contains(body, "manifests corefile/demo") {
		t.Fatalf("Corefile not prepared:\n%s", body)
	}
	i, udp, _, err := coretest.CoreDNSServerAndPorts(body)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, body)
	}
	defer i.Stop()
	m := new(dns.Msg)
	m.SetQuestion("web-0.web.demo.svc.cluster.local.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, udp)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("query: %v\n%v", err, r)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	for _, m := range promExported.FindAllStringSubmatch(string(page), -1) {
		out[m[1]] = true
	}
	if !out["coredns_dns_requests_total"] || !out["coredns_headless_served_objects"] {
		t.Fatalf("CoreDNS's /metrics lacks its own or headless's metrics:\n%s", page)
	}

	b, err := os.ReadFile("plugin/headless/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Namespace: plugin.Namespace") || !strings.Contains(string(b), "Subsystem: pluginName") {
		t.Fatal("plugin/headless/metrics.go no longer names metrics coredns_headless_*; update this test")
	}
	for _, m := range pluginName.FindAllStringSubmatch(string(b), -1) {
		out["coredns_headless_"+m[1]] = true
	}
	for _, glob := range []string{"controller/*.go", "discovery/*.go"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range fullName.FindAllStringSubmatch(string(b), -1) {
				out[m[1]] = true
			}
		}
	}
	return out
}

// Every metric deploy/dashboards and deploy/alerts use is one petset's
// binaries export (histogram series by their base name).
func TestDashboardAndAlertMetrics(t *testing.T) {
	t.Chdir("..")
	exported := exportedMetrics(t)

	used := map[string][]string{}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err := os.ReadFile("deploy/dashboards/petset.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("petset.json: %v", err)
	}
	exprs := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs++
			for _, n := range metricName.FindAllString(tg.Expr, -1) {
				used[n] = append(used[n], "dashboard "+p.Title)
			}
		}
	}
	rules, _ := filepath.Glob("deploy/alerts/*.yaml")
	for _, f := range rules {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if e, ok := strings.CutPrefix(strings.TrimSpace(line), "expr:"); ok {
				exprs++
				for _, n := range metricName.FindAllString(e, -1) {
					used[n] = append(used[n], f)
				}
			}
		}
	}
	if exprs < 10 || len(used) < 10 {
		t.Fatalf("found %d expressions naming %d metrics; the search is broken", exprs, len(used))
	}
	var missing []string
	for n, where := range used {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if s, ok := strings.CutSuffix(n, suf); ok && exported[s] {
				base = s
			}
		}
		if !exported[base] {
			missing = append(missing, n+" ("+strings.Join(slices.Compact(where), ", ")+")")
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("not exported by petset's binaries: %s", m)
	}
}
