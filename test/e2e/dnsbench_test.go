//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"petset.dev/petset/test/dnsbench"
)

// make bench-dns in miniature, so the harness cannot rot: 3 services of
// 3 and then 4 pods, every contender, 2-second runs at a modest rate, and
// a short churn. Only what cannot flake is checked: the answers were
// right before each run (the harness checks them and fails otherwise),
// nothing was lost or failed at that rate, the files are written and
// parse. No timing is asserted.
func TestDNSBenchSmoke(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	res, err := dnsbench.Bench(ctx, dnsbench.Config{
		CoreDNS: filepath.Join(tb.Dir, "coredns"), Corefile: "../../corefile/cluster.Corefile",
		Work: filepath.Join(dir, "work"), Cluster: tb,
		Services: 3, PodsPerService: []int{3, 4}, Queries: 500, Seed: 1,
		Warmup: time.Second, Duration: 2 * time.Second, Verbose: 2 * time.Second,
		Clients: 2, Outstanding: 20, MaxQPS: 1000, NoCache: true,
		ChurnRate: 10, ChurnDuration: 3 * time.Second, ChurnDownFor: time.Second,
		Log: t.Logf,
	})
	t.Cleanup(func() {
		for _, ns := range []string{"bench-3", "bench-4"} {
			tb.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Phases) != 2 {
		t.Fatalf("%d phases", len(res.Phases))
	}
	for _, ph := range res.Phases {
		if len(ph.Runs) != len(dnsbench.Contenders) {
			t.Fatalf("%d pods per service: %d runs", ph.PodsPerService, len(ph.Runs))
		}
		for _, run := range ph.Runs {
			for what, d := range map[string]*dnsbench.DNSPerf{"mixed": run.Mixed, "pod A": run.PodA, "verbose": run.Verbose} {
				if d == nil || d.Completed == 0 || d.Lost != 0 || d.RCodes["SERVFAIL"] != 0 || d.RCodes["REFUSED"] != 0 {
					t.Errorf("%d/%s %s: %+v", ph.PodsPerService, run.Contender, what, d)
					continue
				}
				// Every pod exists; whoami says NOERROR to anything; the
				// others deny the mixed file's missing names.
				wantNX := what != "pod A" && run.Contender != dnsbench.Whoami
				if wantNX != (d.RCodes["NXDOMAIN"] != 0) {
					t.Errorf("%d/%s %s: rcodes %v", ph.PodsPerService, run.Contender, what, d.RCodes)
				}
			}
			// In the second phase headless+kubernetes also answers the
			// first phase's pod-A file.
			if second := ph.PodsPerService == 4 && run.Contender == dnsbench.HeadlessKubernetes; second != (run.PodASmall != nil) ||
				(second && (run.PodASmall.Completed == 0 || run.PodASmall.Lost != 0 || run.PodASmall.RCodes["NOERROR"] != run.PodASmall.Completed)) {
				t.Errorf("%d/%s small services' pod A: %+v", ph.PodsPerService, run.Contender, run.PodASmall)
			}
			if run.Verbose.Answers != run.Verbose.Completed || run.RSSAfter <= 0 || run.HeapInuse <= 0 {
				t.Errorf("%d/%s: %d verbose answers of %d, RSS %d, heap %d", ph.PodsPerService, run.Contender,
					run.Verbose.Answers, run.Verbose.Completed, run.RSSAfter, run.HeapInuse)
			}
		}
	}
	if len(res.Churn) != 2 {
		t.Fatalf("%d churn runs", len(res.Churn))
	}
	for _, c := range res.Churn {
		// Every change was written and every observed one was answered;
		// the plugin's histogram counted changes.
		if c.Changes != 30 || c.Failed != 0 || c.Observed == 0 || c.NotObserved != 0 || c.HistogramCount == 0 || c.DNSPerf.Lost != 0 {
			t.Errorf("churn %s: %+v", c.Contender, c)
		}
		// Side by side, with RSS sampled under load before the churn
		// (the flat-RSS goal's baseline) and during it.
		if c.SideBySide != 2 || c.RSSLoaded <= 0 || len(c.RSSSamples) == 0 || c.RSSMax <= 0 {
			t.Errorf("churn %s: side by side %d, RSS loaded %d, %d samples, max %d", c.Contender, c.SideBySide, c.RSSLoaded, len(c.RSSSamples), c.RSSMax)
		}
	}
	if len(res.Ratios) != 13 {
		t.Errorf("%d ratios", len(res.Ratios))
	}

	out := filepath.Join(dir, "out")
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := dnsbench.WriteAll(res, out, md); err != nil {
		t.Fatal(err)
	}
	var back dnsbench.Results
	b, err := os.ReadFile(filepath.Join(out, dnsbench.ResultsFile))
	if err != nil || json.Unmarshal(b, &back) != nil || len(back.Phases) != 2 {
		t.Errorf("results.json: %v", err)
	}
	for _, svg := range []string{dnsbench.QPSSVG, dnsbench.RSSSVG} {
		f, err := os.Open(filepath.Join(out, svg))
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(f)
		for {
			if _, err := d.Token(); err != nil {
				if err != io.EOF {
					t.Errorf("%s: %v", svg, err)
				}
				break
			}
		}
		f.Close()
	}
	report, _ := os.ReadFile(md)
	if !strings.Contains(string(report), "| 4 (21) | whoami |") || !strings.Contains(string(report), "![RSS](out/rss.svg)") {
		t.Errorf("report:\n%s", report)
	}
}
