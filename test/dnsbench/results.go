package dnsbench

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Results is everything one benchmark run measured; it is written as
// results.json and drawn into BENCHMARKS.md and the SVG plots.
type Results struct {
	Date     string   `json:"date"`
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`
	Commands []string `json:"commands"`
	// ChurnPair compares the side-by-side churn's contenders change by
	// change.
	ChurnPair *ChurnPair `json:"churn_pair,omitempty"`
	// Exact is the command lines of CoreDNS and dnsperf as the benchmark
	// ran them (the first round of the first phase, and the churn).
	Exact []string `json:"exact_commands,omitempty"`
	// GoBench is the Go benchmarks' medians, when they ran, and their
	// command.
	GoBench        []GoBench `json:"go_bench,omitempty"`
	GoBenchCommand string    `json:"go_bench_command,omitempty"`
	Phases         []Phase   `json:"phases"`
	Churn          []Churn   `json:"churn,omitempty"`
	Ratios         []Ratio   `json:"ratios"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	DNSPerf   string `json:"dnsperf"`
	CoreDNS   string `json:"coredns"`
	Source    string `json:"source"`
	MemTotal  string `json:"mem_total"`
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
}

// Settings are the knobs of the run.
type Settings struct {
	Services     int     `json:"services_per_phase"`
	PodsPerPhase []int   `json:"pods_per_service"`
	Queries      int     `json:"queries_per_file"`
	Seed         uint64  `json:"seed"`
	Duration     float64 `json:"run_seconds"`
	Verbose      float64 `json:"verbose_run_seconds"`
	Clients      int     `json:"dnsperf_clients"`
	Outstanding  int     `json:"dnsperf_outstanding"`
	NoCache      bool    `json:"no_cache"`
	Repeat       int     `json:"rounds"`
	ChurnRate    int     `json:"churn_changes_per_second"`
	ChurnSeconds float64 `json:"churn_seconds"`
}

// Phase is one cluster size: Services more headless services with
// PodsPerService pods each, on top of the phases before.
type Phase struct {
	PodsPerService int     `json:"pods_per_service"`
	Services       int     `json:"services"`
	TotalPods      int     `json:"total_pods"`
	SetupSeconds   float64 `json:"setup_seconds"`
	// Runs is each contender's median round; AllRuns every round.
	Runs    []Run `json:"runs"`
	AllRuns []Run `json:"all_runs,omitempty"`
}

// Run is one contender serving one phase.
type Run struct {
	Contender string `json:"contender"`
	Round     int    `json:"round,omitempty"`
	// Mixed and PodA are full-speed runs of the two query files;
	// Verbose is a run of the mixed file with -v for the percentiles
	// (dnsperf printing every answer loads less than the others).
	Mixed *DNSPerf `json:"mixed"`
	PodA  *DNSPerf `json:"pod_a"`
	// CPU seconds (user + system, all threads) CoreDNS spent during the
	// mixed and the pod-A run: queries answered per CPU-second is what
	// the core would answer if CoreDNS had it to itself, which a shared
	// machine's queries/s cannot show.
	MixedCPU float64 `json:"mixed_cpu_s"`
	PodACPU  float64 `json:"pod_a_cpu_s"`
	// PodASmall is, in the last phase, the first phase's pod-A file (the
	// pods of the small services) run right after PodA by the same
	// server: service size alone, at one cluster size.
	PodASmall    *DNSPerf `json:"pod_a_small,omitempty"`
	PodASmallCPU float64  `json:"pod_a_small_cpu_s,omitempty"`
	Verbose      *DNSPerf `json:"verbose,omitempty"`
	// VmRSS of the CoreDNS process after the warm-up and after the runs,
	// and go_memstats_heap_inuse_bytes after the runs, in bytes.
	RSSWarm     int64   `json:"rss_warm_bytes"`
	RSSAfter    int64   `json:"rss_after_bytes"`
	HeapInuse   int64   `json:"heap_inuse_bytes"`
	SyncSeconds float64 `json:"sync_seconds"`
	Load        string  `json:"load"`
}

// Churn is one contender answering at full load while pods change
// readiness.
type Churn struct {
	Contender string   `json:"contender"`
	Changes   int      `json:"changes"`
	Failed    int      `json:"failed_changes"`
	Seconds   float64  `json:"seconds"`
	DNSPerf   *DNSPerf `json:"dnsperf"`
	// Programming latency: the p50/p99 of the plugin's own
	// dns_programming_duration_seconds histogram over the churn (bucket
	// upper bounds), and its sample count.
	HistogramCount int64   `json:"histogram_count"`
	HistogramP50   float64 `json:"histogram_p50_s"`
	HistogramP99   float64 `json:"histogram_p99_s"`
	// Observed: from the status write returning to the changed answer,
	// polled on sampled changes, on every server from the same moment.
	Observed    int     `json:"observed"`
	ObservedP50 float64 `json:"observed_p50_s"`
	ObservedP90 float64 `json:"observed_p90_s"`
	ObservedP99 float64 `json:"observed_p99_s"`
	NotObserved int     `json:"not_observed"`
	// SideBySide is how many contenders ran through the same churn at
	// once (each its own server and dnsperf).
	SideBySide int `json:"side_by_side"`
	// RSS: RSSStart idle before the load, RSSLoaded the most under load
	// before the first change, RSSEnd and RSSMax during the churn.
	RSSStart  int64 `json:"rss_start_bytes"`
	RSSLoaded int64 `json:"rss_loaded_bytes"`
	RSSEnd    int64 `json:"rss_end_bytes"`
	RSSMax    int64 `json:"rss_max_bytes"`
	// RSSSamples is VmRSS once a second during the churn, in bytes, and
	// RSSSlope their least-squares trend in bytes per second.
	RSSSamples []int64 `json:"rss_samples_bytes,omitempty"`
	RSSSlope   float64 `json:"rss_slope_bytes_per_s"`
	Load       string  `json:"load"`
}

// ChurnPair is the churn's observed changes that both servers answered,
// compared one by one: A's time minus B's.
type ChurnPair struct {
	A, B    string
	Changes int     `json:"changes"`
	DiffP50 float64 `json:"diff_p50_s"`
	DiffP99 float64 `json:"diff_p99_s"`
	// ALater is the share of changes A showed at least 10 ms after B,
	// BLater the other way round.
	ALater float64 `json:"a_later"`
	BLater float64 `json:"b_later"`
}

// Ratio is one of issue 9's goals, measured.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
	Goal  string  `json:"goal"`
	Met   bool    `json:"met"`
	// For throughput goals, the same ratio of queries per CPU-second.
	PerCPU    float64 `json:"per_cpu_value,omitempty"`
	PerCPUMet bool    `json:"per_cpu_met,omitempty"`
	// Missing says why the ratio could not be computed.
	Missing string `json:"missing,omitempty"`
	// Rounds is the value in each round it was computed in; Value is
	// their median.
	Rounds []float64 `json:"rounds,omitempty"`
	// Min or Max is the goal as a number: at least Min, or at most Max.
	Min float64 `json:"-"`
	Max float64 `json:"-"`
}

// roundRuns is one round of every phase: the runs a round's ratios are
// computed from, which ran minutes apart at most.
type roundRuns struct {
	r     *Results
	round int // 0: the phases' Runs (results without AllRuns)
}

func (v roundRuns) run(pods int, contender string) *Run {
	ph := v.r.phase(pods)
	if ph == nil {
		return nil
	}
	runs := ph.Runs
	if v.round > 0 {
		runs = ph.AllRuns
	}
	for i := range runs {
		if runs[i].Contender == contender && (v.round == 0 || runs[i].Round == v.round) {
			return &runs[i]
		}
	}
	return nil
}

// run is the contender's run in the phase's Runs (its median round).
func (r *Results) run(pods int, contender string) *Run { return roundRuns{r: r}.run(pods, contender) }

// rounds lists the rounds in the phases' AllRuns, or round 0 when there
// are none.
func (r *Results) rounds() []int {
	seen := map[int]bool{}
	var out []int
	for _, ph := range r.Phases {
		for _, run := range ph.AllRuns {
			if run.Round > 0 && !seen[run.Round] {
				seen[run.Round] = true
				out = append(out, run.Round)
			}
		}
	}
	if len(out) == 0 {
		return []int{0}
	}
	slices.Sort(out)
	return out
}

func (r *Results) phase(pods int) *Phase {
	for i := range r.Phases {
		if r.Phases[i].PodsPerService == pods {
			return &r.Phases[i]
		}
	}
	return nil
}

func (r *Results) churn(contender string) *Churn {
	for i := range r.Churn {
		if r.Churn[i].Contender == contender {
			return &r.Churn[i]
		}
	}
	return nil
}

// ComputeRatios derives issue 9's goals from the runs: small and large
// are the pods per service of the two phases (10 and 100). Each
// throughput and memory ratio is computed within every round, from runs
// that were minutes apart, and the median over the rounds is the value:
// a shared machine moves single runs by tens of percent, and a best or a
// worst round alone would measure that.
func ComputeRatios(r *Results, small, large int) []Ratio {
	var per [][]Ratio
	for _, round := range r.rounds() {
		per = append(per, roundRatios(roundRuns{r, round}, small, large))
	}
	out := medianRatios(per)
	out = append(out, inProcessRatios(r, small, large)...)
	return append(out, churnRatios(r)...)
}

// inProcessRatios is the goals the Go benchmarks measure, when they ran:
// whoami's in-process cost of a pod-A answer over headless's
// (PodABench: the pod-A goal without the socket and the neighbours), and
// the update goals (CPU ns per rebuild).
func inProcessRatios(r *Results, small, large int) []Ratio {
	if len(r.GoBench) == 0 {
		return nil
	}
	bench := func(name string) *GoBench {
		for i := range r.GoBench {
			if r.GoBench[i].Name == name {
				return &r.GoBench[i]
			}
		}
		return nil
	}
	// CPU ns when both have them (they count the collector's work on
	// the other core too), wall ns otherwise.
	unit := func(us ...map[string]float64) string {
		for _, u := range us {
			if u["cpu-ns/op"] <= 0 {
				return "ns/op"
			}
		}
		return "cpu-ns/op"
	}
	// ratio sets rt to a / b, two benchmarks' costs: the median of the
	// ratios of the runs that ran in the same round when both have one
	// value per round, the ratio of their medians otherwise.
	ratio := func(rt *Ratio, a, b string) bool {
		ga, gb := bench(a), bench(b)
		if ga == nil || gb == nil {
			return false
		}
		u := unit(ga.Units, gb.Units)
		if va, vb := ga.Values[u], gb.Values[u]; len(va) > 0 && len(va) == len(vb) {
			for i := range va {
				if va[i] <= 0 || vb[i] <= 0 {
					return false
				}
				rt.Rounds = append(rt.Rounds, round(va[i]/vb[i], 3))
			}
			v := median(rt.Rounds)
			rt.Value, rt.Met = round(v, 3), rt.meets(v)
			return true
		}
		x, y := ga.Units[u], gb.Units[u]
		if x <= 0 || y <= 0 {
			return false
		}
		rt.Value, rt.Met = round(x/y, 3), rt.meets(x/y)
		return true
	}
	pa := strings.TrimPrefix(PodABench, "Benchmark") + "/"
	var out []Ratio
	for _, pods := range []int{small, large} {
		rt := Ratio{Name: fmt.Sprintf("pod-A answer in process (plugin and packing), whoami CPU ns / headless CPU ns, %d pods per service", pods), Goal: ">= 1.0", Unit: "x", Min: 1}
		if !ratio(&rt, pa+"whoami", fmt.Sprintf("%sheadless/pods=%d", pa, pods)) {
			rt.Missing = "no " + PodABench + " result"
		}
		out = append(out, rt)
	}
	one := Ratio{Name: "one endpoint changing in a 1,000-endpoint service, rebuild CPU ns (BenchmarkRebuildOneEndpoint1000)", Goal: "< 1000000", Unit: "ns", Max: 999999}
	if b := bench("RebuildOneEndpoint1000"); b == nil {
		one.Missing = "no BenchmarkRebuildOneEndpoint1000 result"
	} else {
		v := b.Units[unit(b.Units)]
		one.Value, one.Met = math.Round(v), one.meets(v)
	}
	out = append(out, one)
	for _, pods := range []int{10, 1000} {
		rt := Ratio{Name: fmt.Sprintf("one service changing, 100,000 / 1,000 endpoints in the cluster, %d pods per service, rebuild CPU ns (BenchmarkRebuildOneService)", pods), Goal: "<= 1.2", Unit: "x", Max: 1.2}
		if !ratio(&rt, fmt.Sprintf("RebuildOneService/pods=%d/endpoints=100000", pods), fmt.Sprintf("RebuildOneService/pods=%d/endpoints=1000", pods)) {
			rt.Missing = "no BenchmarkRebuildOneService result"
		}
		out = append(out, rt)
	}
	return out
}

// medianRatios folds the same ratios of several rounds into one each: the
// median of the rounds that have it (the mean of the middle two for an
// even count), met when the median meets the goal.
func medianRatios(per [][]Ratio) []Ratio {
	if len(per) == 0 {
		return nil
	}
	out := slices.Clone(per[0])
	for i := range out {
		var vals, cpu []float64
		for _, rs := range per {
			if rt := rs[i]; rt.Missing == "" {
				vals = append(vals, rt.Value)
				if rt.PerCPU > 0 {
					cpu = append(cpu, rt.PerCPU)
				}
			}
		}
		if len(vals) == 0 {
			continue // every round misses it: keep the first one's reason
		}
		rt := &out[i]
		rt.Missing, rt.Rounds = "", vals
		rt.Value = round(median(vals), 3)
		rt.Met = rt.meets(rt.Value)
		rt.PerCPU, rt.PerCPUMet = 0, false
		if len(cpu) == len(vals) {
			rt.PerCPU = round(median(cpu), 3)
			rt.PerCPUMet = rt.meets(rt.PerCPU)
		}
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// meets says whether v meets the ratio's goal: at least Min, or at most
// Max, whichever is set.
func (rt *Ratio) meets(v float64) bool {
	if rt.Max != 0 {
		return v <= rt.Max
	}
	return v >= rt.Min
}

// roundRatios is the throughput and memory goals within one round.
func roundRatios(v roundRuns, small, large int) []Ratio {
	var out []Ratio
	qps := func(pods int, c string, podA bool) (rate, perCPU float64, missing string) {
		run := v.run(pods, c)
		if run == nil {
			return 0, 0, fmt.Sprintf("no %s run at %d pods per service", c, pods)
		}
		d, cpu := run.Mixed, run.MixedCPU
		if podA {
			d, cpu = run.PodA, run.PodACPU
		}
		if d == nil || d.QPS <= 0 {
			return 0, 0, fmt.Sprintf("no queries/s for %s at %d pods per service", c, pods)
		}
		if cpu > 0 {
			perCPU = float64(d.Completed) / cpu
		}
		return d.QPS, perCPU, ""
	}
	ratio := func(name, goal string, atLeast float64, a, b, ca, cb float64, missA, missB string) {
		rt := Ratio{Name: name, Goal: goal, Unit: "x", Min: atLeast}
		switch {
		case missA != "":
			rt.Missing = missA
		case missB != "":
			rt.Missing = missB
		default:
			rt.Value = round(a/b, 3)
			rt.Met = rt.meets(a / b)
			if ca > 0 && cb > 0 {
				rt.PerCPU = round(ca/cb, 3)
				rt.PerCPUMet = rt.meets(ca / cb)
			}
		}
		out = append(out, rt)
	}
	for _, g := range []struct {
		pods int
		min  float64
	}{{large, 2.5}, {small, 1.6}} {
		a, ca, ma := qps(g.pods, HeadlessKubernetes, false)
		b, cb, mb := qps(g.pods, Kubernetes, false)
		ratio(fmt.Sprintf("queries/s headless+kubernetes / kubernetes, mixed, %d pods per service", g.pods),
			fmt.Sprintf(">= %.1f", g.min), g.min, a, b, ca, cb, ma, mb)
	}
	for _, pods := range []int{small, large} {
		a, ca, ma := qps(pods, HeadlessKubernetes, true)
		b, cb, mb := qps(pods, Whoami, true)
		ratio(fmt.Sprintf("pod-A queries/s headless+kubernetes / whoami, %d pods per service", pods), ">= 1.0", 1.0, a, b, ca, cb, ma, mb)
	}
	{
		a, ca, ma := qps(large, HeadlessKubernetes, true)
		b, cb, mb := qps(small, HeadlessKubernetes, true)
		ratio(fmt.Sprintf("pod-A queries/s headless+kubernetes, %d / %d pods per service (the two phases)", large, small), ">= 0.95", 0.95, a, b, ca, cb, ma, mb)
	}
	{
		// The same server, one query file after the other.
		var b, cb float64
		mb := fmt.Sprintf("no %d-pod pod-A run in the %d-pod phase", small, large)
		if run := v.run(large, HeadlessKubernetes); run != nil && run.PodASmall != nil && run.PodASmall.QPS > 0 {
			b, mb = run.PodASmall.QPS, ""
			if run.PodASmallCPU > 0 {
				cb = float64(run.PodASmall.Completed) / run.PodASmallCPU
			}
		}
		a, ca, ma := qps(large, HeadlessKubernetes, true)
		ratio(fmt.Sprintf("pod-A queries/s headless+kubernetes, %d / %d pods per service (one server holding both)", large, small), ">= 0.95", 0.95, a, b, ca, cb, ma, mb)
	}
	hk, k := v.run(large, HeadlessKubernetes), v.run(large, Kubernetes)
	pods := 0
	if p := v.r.phase(large); p != nil {
		pods = p.TotalPods
	}
	rss := Ratio{Name: fmt.Sprintf("RSS headless+kubernetes / kubernetes, %d pods", pods), Goal: "<= 1.15", Unit: "x", Max: 1.15}
	own := Ratio{Name: fmt.Sprintf("headless's own memory per pod, (RSS(h+k) - RSS(k)) / pods, %d pods", pods), Goal: "<= 1024", Unit: "bytes/pod", Max: 1024}
	if hk == nil || k == nil || hk.RSSAfter <= 0 || k.RSSAfter <= 0 || pods == 0 {
		rss.Missing = "no RSS of both contenders at the large phase"
		own.Missing = rss.Missing
	} else {
		v := float64(hk.RSSAfter) / float64(k.RSSAfter)
		rss.Value, rss.Met = round(v, 3), rss.meets(v)
		per := float64(hk.RSSAfter-k.RSSAfter) / float64(pods)
		own.Value, own.Met = math.Round(per), own.meets(per)
	}
	return append(out, rss, own)
}

// churnRatios is the churn's goals, from its one side-by-side run.
func churnRatios(r *Results) []Ratio {
	var out []Ratio
	ch, ck := r.churn(HeadlessKubernetes), r.churn(Kubernetes)
	p99 := Ratio{Name: "DNS programming p99 under churn, headless / kubernetes (plugin histograms)", Goal: "<= 1.0", Unit: "x"}
	obs := Ratio{Name: "DNS programming p99 under churn, headless / kubernetes (observed: status write to changed answer)", Goal: "<= 1.0", Unit: "x"}
	switch {
	case ch == nil || ck == nil:
		obs.Missing = "no churn runs of both contenders"
	case ch.Observed == 0 || ck.Observed == 0 || ck.ObservedP99 <= 0:
		obs.Missing = "no observed changes"
	default:
		// A change never seen counts as worse than any seen.
		v := ch.ObservedP99 / ck.ObservedP99
		obs.Value, obs.Met = round(v, 3), v <= 1.0 && ch.NotObserved <= ck.NotObserved
	}
	lost := Ratio{Name: "lost queries and SERVFAIL answers at full load during churn (headless+kubernetes)", Goal: "== 0", Unit: "queries"}
	trend := Ratio{Name: "RSS trend during churn, growth over the churn / before the churn under the same load (headless+kubernetes)", Goal: "flat (<= 0.05)", Unit: "x"}
	flat := Ratio{Name: "RSS during churn, max / before the churn under the same load (headless+kubernetes)", Goal: "flat (<= 1.10)", Unit: "x"}
	switch {
	case ch == nil || ck == nil:
		p99.Missing = "no churn runs of both contenders"
	case ch.HistogramCount == 0 || ck.HistogramCount == 0 || ck.HistogramP99 <= 0:
		p99.Missing = "a programming-latency histogram saw no change"
	default:
		v := ch.HistogramP99 / ck.HistogramP99
		p99.Value, p99.Met = round(v, 3), v <= 1.0
	}
	if ch == nil || ch.DNSPerf == nil {
		lost.Missing = "no churn run of headless+kubernetes"
		flat.Missing, trend.Missing = lost.Missing, lost.Missing
	} else {
		bad := ch.DNSPerf.Lost + ch.DNSPerf.RCodes["SERVFAIL"]
		lost.Value, lost.Met = float64(bad), bad == 0
		if ch.RSSLoaded > 0 && ch.RSSMax > 0 {
			v := float64(ch.RSSMax) / float64(ch.RSSLoaded)
			flat.Value, flat.Met = round(v, 3), v <= 1.10
			g := ch.RSSSlope * ch.Seconds / float64(ch.RSSLoaded)
			trend.Value, trend.Met = round(g, 3), g <= 0.05
		} else {
			flat.Missing = "no RSS samples"
			trend.Missing = flat.Missing
		}
	}
	out = append(out, p99, obs, lost, flat, trend)
	return out
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
