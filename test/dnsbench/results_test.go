package dnsbench

import (
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// withSmall adds the small services' pod-A run at rate q/s to r, for
// 10 s on 5 CPU-seconds.
func withSmall(r Run, q float64) Run {
	r.PodASmall, r.PodASmallCPU = &DNSPerf{QPS: q, Completed: int64(q) * 10}, 5
	return r
}

// fixture is a run with round numbers, so every ratio can be worked out
// by hand.
func fixture() *Results {
	// Each run lasts 10 s and uses 5 CPU-seconds, but the CPU time of
	// kubernetes' runs is 10 s: twice the cost per query.
	run := func(c string, mixed, podA float64, rssMB int64) Run {
		cpu := 5.0
		if c == Kubernetes {
			cpu = 10
		}
		return Run{Contender: c, Mixed: &DNSPerf{QPS: mixed, Completed: int64(mixed) * 10, RCodes: map[string]int64{"NOERROR": int64(mixed) * 8, "NXDOMAIN": int64(mixed) * 2}},
			PodA: &DNSPerf{QPS: podA, Completed: int64(podA) * 10}, MixedCPU: cpu, PodACPU: cpu, Verbose: &DNSPerf{Answers: 10, P50: 0.0001, P90: 0.0002, P99: 0.0005, P999: 0.001},
			RSSWarm: rssMB * 1_000_000, RSSAfter: rssMB * 1_000_000, HeapInuse: rssMB * 100_000, Load: "1.00 1.00 1.00"}
	}
	return &Results{
		Date:      "2026-11-28 15:30 UTC",
		Machine:   Machine{CPU: "Test CPU", Cores: 2, Kernel: "6.1", Go: "go1.26", DNSPerf: "2.10.0", CoreDNS: "petset-coredns", Source: "abc1234 headless: less memory", LoadStart: "1 1 1", LoadEnd: "2 2 2"},
		Settings:  Settings{Services: 100, PodsPerPhase: []int{10, 100}, Queries: 1000, Seed: 1, Duration: 20, Verbose: 10, Clients: 4, Outstanding: 100, NoCache: true, ChurnRate: 50, ChurnSeconds: 60},
		Commands:  []string{"make bench-dns"},
		Exact:     []string{"taskset -c 0 bin/coredns -conf w/phase-10/headless+kubernetes.Corefile", "taskset -c 1 dnsperf -s 127.0.0.1 -p 5300 -d w/queries-10-mixed.txt -l 10 -c 4 -q 100"},
		ChurnPair: &ChurnPair{A: HeadlessKubernetes, B: Kubernetes, Changes: 600, DiffP50: -0.002, DiffP99: 0.05, ALater: 0.1, BLater: 0.3},
		Phases: []Phase{
			{PodsPerService: 10, Services: 100, TotalPods: 1000, Runs: []Run{
				run(HeadlessKubernetes, 40000, 50000, 80), run(Kubernetes, 20000, 25000, 75), run(Whoami, 55000, 50000, 60)}},
			{PodsPerService: 100, Services: 100, TotalPods: 11000, Runs: []Run{
				withSmall(run(HeadlessKubernetes, 36000, 48000, 92), 40000), run(Kubernetes, 12000, 10000, 81), run(Whoami, 55000, 52000, 60)}},
		},
		Churn: []Churn{
			{Contender: HeadlessKubernetes, Changes: 3000, Seconds: 60, DNSPerf: &DNSPerf{QPS: 30000}, HistogramCount: 3000, HistogramP50: 0.512, HistogramP99: 1.024, Observed: 600, ObservedP50: 0.3, ObservedP90: 0.5, ObservedP99: 0.8, SideBySide: 2, RSSStart: 85e6, RSSLoaded: 90e6, RSSEnd: 92e6, RSSMax: 95e6, RSSSlope: 60000},
			{Contender: Kubernetes, Changes: 3000, Seconds: 61, DNSPerf: &DNSPerf{QPS: 10000, Lost: 3}, HistogramCount: 2900, HistogramP50: 0.512, HistogramP99: 2.048, Observed: 600, ObservedP50: 0.3, ObservedP90: 0.6, ObservedP99: 1.0, SideBySide: 2, RSSStart: 75e6, RSSLoaded: 80e6, RSSEnd: 80e6, RSSMax: 81e6},
		},
	}
}

func TestComputeRatios(t *testing.T) {
	got := ComputeRatios(fixture(), 10, 100)
	want := []struct {
		value float64
		met   bool
	}{
		{3, true},          // 36000 / 12000 at 100 pods per service, goal 2.5
		{2, true},          // 40000 / 20000 at 10, goal 1.6
		{1, true},          // pod A 50000 / whoami 50000 at 10
		{48.0 / 52, false}, // pod A 48000 / whoami 52000 at 100
		{48.0 / 50, true},  // pod A 48000 at 100 / 50000 at 10, goal 0.95
		{48.0 / 40, true},  // the same server: 48000 / 40000 on the small services' file
		{92.0 / 81, true},  // RSS 92 MB / 81 MB = 1.136, goal 1.15
		{1000, true},       // (92 - 81) MB / 11,000 pods = 1000 bytes, goal 1024
		{0.5, true},        // programming p99 1.024 / 2.048
		{0.8, true},        // observed p99 0.8 / 1.0
		{0, true},          // headless lost nothing
		{95.0 / 90, true},  // RSS max during churn / most under load before it
		{0.04, true},       // trend 60000 B/s over 60 s / 90 MB loaded, goal 0.05
	}
	if len(got) != len(want) {
		t.Fatalf("%d ratios, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Missing != "" || math.Abs(got[i].Value-w.value) > 0.001 || got[i].Met != w.met {
			t.Errorf("%s: %v (met %v, missing %q), want %v (met %v)", got[i].Name, got[i].Value, got[i].Met, got[i].Missing, w.value, w.met)
		}
	}
	// Per CPU-second: kubernetes used twice the CPU for its queries, so
	// headless's ratios against it double; the others stay.
	for i, w := range []float64{6, 4, 1, 48.0 / 52, 48.0 / 50, 48.0 / 40} {
		if math.Abs(got[i].PerCPU-w) > 0.001 || got[i].PerCPUMet != (w >= []float64{2.5, 1.6, 1, 1, 0.95, 0.95}[i]) {
			t.Errorf("%s per CPU-second: %v (met %v), want %v", got[i].Name, got[i].PerCPU, got[i].PerCPUMet, w)
		}
	}
	for _, rt := range got[6:] {
		if rt.PerCPU != 0 {
			t.Errorf("%s: a per-CPU value %v", rt.Name, rt.PerCPU)
		}
	}
}

// TestInProcessRatios: with the Go benchmark's results, two more goals
// compare whoami's CPU per answer with headless's.
func TestInProcessRatios(t *testing.T) {
	r := fixture()
	r.GoBench = []GoBench{
		{Name: "PodAVsWhoami/headless/pods=10", Runs: 5, Units: map[string]float64{"ns/op": 1000, "cpu-ns/op": 1200}},
		{Name: "PodAVsWhoami/headless/pods=100", Runs: 5, Units: map[string]float64{"ns/op": 5000}},
		{Name: "PodAVsWhoami/whoami", Runs: 5, Units: map[string]float64{"ns/op": 4000, "cpu-ns/op": 4800}},
		{Name: "RebuildOneEndpoint1000", Runs: 5, Units: map[string]float64{"ns/op": 400000, "cpu-ns/op": 1200000}},
		{Name: "RebuildOneService/pods=10/endpoints=1000", Runs: 5, Units: map[string]float64{"cpu-ns/op": 10000}},
		{Name: "RebuildOneService/pods=10/endpoints=100000", Runs: 5, Units: map[string]float64{"cpu-ns/op": 11000}},
		{Name: "RebuildOneService/pods=1000/endpoints=1000", Runs: 5, Units: map[string]float64{"cpu-ns/op": 500000}},
		{Name: "RebuildOneService/pods=1000/endpoints=100000", Runs: 5, Units: map[string]float64{"cpu-ns/op": 650000}},
	}
	got := ComputeRatios(r, 10, 100)
	if len(got) != 18 {
		t.Fatalf("%d ratios", len(got))
	}
	// cpu-ns/op where both have it (4800 / 1200); ns/op otherwise.
	if rt := got[8]; rt.Value != 4 || !rt.Met || !strings.Contains(rt.Name, "10 pods") {
		t.Errorf("%+v", rt)
	}
	if rt := got[9]; math.Abs(rt.Value-0.8) > 0.001 || rt.Met { // 4000 / 5000 ns
		t.Errorf("%+v", rt)
	}
	// The CPU time counts: 1.2 ms misses the 1 ms goal.
	if rt := got[10]; rt.Value != 1200000 || rt.Met {
		t.Errorf("%+v", rt)
	}
	if rt := got[11]; rt.Value != 1.1 || !rt.Met {
		t.Errorf("%+v", rt)
	}
	if rt := got[12]; rt.Value != 1.3 || rt.Met {
		t.Errorf("%+v", rt)
	}
	md := Markdown(r, "results")
	if !strings.Contains(md, "| PodAVsWhoami/whoami | 4000 | 4800 |") {
		t.Errorf("report lacks the in-process table:\n%s", md)
	}
	// With each round's values, a goal is the median of the rounds'
	// ratios, not the ratio of the medians: rounds 1.0, 1.1 and 1.5 give
	// 1.1, where the medians (12000 / 10000) would give 1.2.
	r.GoBench[4].Values = map[string][]float64{"cpu-ns/op": {10000, 10000, 8000}}
	r.GoBench[5].Values = map[string][]float64{"cpu-ns/op": {10000, 11000, 12000}}
	if rt := ComputeRatios(r, 10, 100)[11]; rt.Value != 1.1 || !rt.Met || !slices.Equal(rt.Rounds, []float64{1, 1.1, 1.5}) {
		t.Errorf("%+v", rt)
	}
	// A benchmark missing from a round: the medians again.
	r.GoBench[5].Values["cpu-ns/op"] = r.GoBench[5].Values["cpu-ns/op"][:2]
	if rt := ComputeRatios(r, 10, 100)[11]; rt.Value != 1.1 || len(rt.Rounds) != 0 {
		t.Errorf("%+v", rt)
	}
	r.GoBench = r.GoBench[:1]
	if rt := ComputeRatios(r, 10, 100)[8]; rt.Missing == "" {
		t.Errorf("computed without whoami: %+v", rt)
	}
}

func TestComputeRatiosMissing(t *testing.T) {
	r := fixture()
	r.Phases = r.Phases[:1]
	r.Churn = nil
	for _, rt := range ComputeRatios(r, 10, 100) {
		small := strings.Contains(rt.Name, "10 pods per service") && !strings.Contains(rt.Name, "100")
		if small {
			if rt.Missing != "" {
				t.Errorf("%s: missing %q", rt.Name, rt.Missing)
			}
			continue
		}
		if rt.Missing == "" || rt.Met {
			t.Errorf("%s: computed without the large phase or churn: %+v", rt.Name, rt)
		}
	}
}

func TestPlots(t *testing.T) {
	r := fixture()
	for name, p := range map[string]Plot{"qps.svg.golden": QPSPlot(r), "rss.svg.golden": RSSPlot(r), "qps-per-cpu.svg.golden": CPUPlot(r)} {
		svg := p.SVG()
		golden(t, name, []byte(svg))
		// Well-formed XML, one circle per point.
		d := xml.NewDecoder(strings.NewReader(svg))
		circles := 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "circle" {
				circles++
			}
		}
		points := 0
		for _, s := range p.Series {
			for _, v := range s.Values {
				if !math.IsNaN(v) {
					points++
				}
			}
		}
		if circles != points || points == 0 {
			t.Errorf("%s: %d circles for %d points", name, circles, points)
		}
	}
	// A missing value is left out, not drawn at zero.
	r.Phases[1].Runs = r.Phases[1].Runs[:1]
	if strings.Count(RSSPlot(r).SVG(), "<circle") != 4 {
		t.Error("missing runs drawn")
	}
}

func TestMarkdown(t *testing.T) {
	r := fixture()
	r.Ratios = ComputeRatios(r, 10, 100)
	md := Markdown(r, "test/dnsbench/results")
	golden(t, "BENCHMARKS.md.golden", []byte(md))
	for _, s := range []string{"![queries/s](test/dnsbench/results/qps.svg)", "| 100 (11000) | kubernetes | 12000 | 10000 |  | 12000 | 10000 |", "| 100 (11000) | headless+kubernetes | 36000 | 48000 | 40000 | 72000 | 96000 |", "headless+kubernetes's time minus kubernetes's is -0.002 s at the median", "taskset -c 1 dnsperf -s 127.0.0.1", "load average at the start: 1 1 1", "make bench-dns", "| 3 x | yes | 6 x | yes | >= 2.5 |", "| 0.923 x | **no** | 0.923 x | **no** | >= 1.0 |"} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q", s)
		}
	}
}

// A report written again keeps what a person wrote at its end, once.
func TestWriteAllKeepsHandWritten(t *testing.T) {
	r := fixture()
	r.Ratios = ComputeRatios(r, 10, 100)
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	tail := HandWritten + "\n## By hand\n\nkept\n"
	if err := os.WriteFile(md, []byte("# an older report\n\n"+tail), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := WriteAll(r, filepath.Join(dir, "results"), md); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); !strings.HasPrefix(got, Markdown(r, "results")) || !strings.HasSuffix(got, tail) || strings.Count(got, HandWritten) != 1 || strings.Contains(got, "an older report") {
		t.Errorf("report written twice over a hand-written tail:\n%s", got)
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ raw, want float64 }{{0.3, 0.5}, {1, 1}, {1.1, 2}, {7000, 10000}, {11000, 20000}, {0, 1}} {
		if got := niceStep(tc.raw); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("niceStep(%v) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestMedianRuns(t *testing.T) {
	all := []Run{
		{Contender: HeadlessKubernetes, Round: 1, Mixed: &DNSPerf{QPS: 10}},
		{Contender: Kubernetes, Round: 1, Mixed: &DNSPerf{QPS: 30}},
		{Contender: Whoami, Round: 1}, // failed to parse: never kept
		{Contender: HeadlessKubernetes, Round: 2, Mixed: &DNSPerf{QPS: 20}},
		{Contender: Kubernetes, Round: 2, Mixed: &DNSPerf{QPS: 5}},
		{Contender: Whoami, Round: 2, Mixed: &DNSPerf{QPS: 1}},
		{Contender: HeadlessKubernetes, Round: 3, Mixed: &DNSPerf{QPS: 15}},
		{Contender: Kubernetes, Round: 3, Mixed: &DNSPerf{QPS: 50}},
	}
	got := MedianRuns(all)
	want := []struct {
		c     string
		round int
	}{{HeadlessKubernetes, 3}, {Kubernetes, 1}, {Whoami, 2}}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i, w := range want {
		if got[i].Contender != w.c || got[i].Round != w.round {
			t.Errorf("%d: %s round %d, want %s round %d", i, got[i].Contender, got[i].Round, w.c, w.round)
		}
	}
}

// TestComputeRatiosMedianOfRounds: each goal is computed within each
// round, and the value is the median of the rounds, not a ratio of
// medians or of one lucky round.
func TestComputeRatiosMedianOfRounds(t *testing.T) {
	r := fixture()
	for i := range r.Phases {
		ph := &r.Phases[i]
		for round, scale := range []float64{1, 0.5, 2} {
			for _, run := range ph.Runs {
				c := run
				c.Round = round + 1
				// headless's pod-A rate moves by scale, whoami's by 1/scale:
				// the round ratios are scale² times the fixture's.
				m, pa := *run.Mixed, *run.PodA
				switch c.Contender {
				case HeadlessKubernetes:
					pa.QPS *= scale
				case Whoami:
					pa.QPS /= scale
				}
				c.Mixed, c.PodA = &m, &pa
				ph.AllRuns = append(ph.AllRuns, c)
			}
		}
		ph.Runs = MedianRuns(ph.AllRuns)
	}
	got := ComputeRatios(r, 10, 100)
	// pod A 50000 / whoami 50000 at 10 pods: rounds 1, 0.25, 4.
	rt := got[2]
	if len(rt.Rounds) != 3 || rt.Rounds[0] != 1 || rt.Rounds[1] != 0.25 || rt.Rounds[2] != 4 {
		t.Fatalf("%s rounds %v", rt.Name, rt.Rounds)
	}
	if rt.Value != 1 || !rt.Met {
		t.Errorf("%s = %v (met %v), want the median 1", rt.Name, rt.Value, rt.Met)
	}
	// The mixed ratio is the same every round.
	if got[0].Value != 3 || len(got[0].Rounds) != 3 {
		t.Errorf("%s = %v over %v", got[0].Name, got[0].Value, got[0].Rounds)
	}
	// An even count takes the mean of the middle two.
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestComparePairs(t *testing.T) {
	// a's time minus b's: -0.1, 0, 0.005, 0.02, 0.5.
	p := comparePairs("a", "b", [][]float64{{0.1, 0.2}, {1, 1}, {0.105, 0.1}, {0.12, 0.1}, {1.5, 1}})
	if p.Changes != 5 || p.ALater != 0.4 || p.BLater != 0.2 {
		t.Errorf("%+v", p)
	}
	if math.Abs(p.DiffP50-0.005) > 1e-9 || math.Abs(p.DiffP99-0.5) > 1e-9 {
		t.Errorf("p50 %v p99 %v", p.DiffP50, p.DiffP99)
	}
	if p := comparePairs("a", "b", nil); p.Changes != 0 || p.ALater != 0 {
		t.Errorf("no pairs: %+v", p)
	}
}

func TestSlope(t *testing.T) {
	for _, tc := range []struct {
		in   []int64
		want float64
	}{
		{nil, 0},
		{[]int64{5}, 0},
		{[]int64{10, 12, 14, 16}, 2},
		{[]int64{10, 12, 10, 12}, 0.4}, // flat but noisy: a small trend
		{[]int64{20, 15, 10}, -5},
	} {
		if got := slope(tc.in); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("slope(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
