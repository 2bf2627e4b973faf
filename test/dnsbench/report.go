package dnsbench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Files the benchmark writes into its output directory.
const (
	ResultsFile = "results.json"
	QPSSVG      = "qps.svg"
	RSSSVG      = "rss.svg"
	CPUSVG      = "qps-per-cpu.svg"
)

// HandWritten marks the start of what a person wrote at the end of the
// markdown report; WriteAll keeps it there.
const HandWritten = "<!-- Written by hand, not by make bench-dns, which keeps what follows this line. -->"

// WriteAll writes results.json and the two plots into dir, and the
// markdown report to mdPath, which links the plots relative to itself.
// What follows HandWritten in the report it replaces stays at its end.
func WriteAll(r *Results, dir, mdPath string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ResultsFile), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, QPSSVG), []byte(QPSPlot(r).SVG()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, CPUSVG), []byte(CPUPlot(r).SVG()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, RSSSVG), []byte(RSSPlot(r).SVG()), 0o644); err != nil {
		return err
	}
	if mdPath == "" {
		return nil
	}
	rel, err := filepath.Rel(filepath.Dir(mdPath), dir)
	if err != nil {
		rel = dir
	}
	md := Markdown(r, filepath.ToSlash(rel))
	if old, err := os.ReadFile(mdPath); err == nil {
		if i := strings.Index(string(old), HandWritten); i >= 0 {
			md += "\n" + string(old[i:])
		}
	}
	return os.WriteFile(mdPath, []byte(md), 0o644)
}

// Markdown renders the report: the table of every run, the ratios
// against issue 9's goals, the churn, the machine and the commands.
// plots is the directory of the SVGs relative to the report.
func Markdown(r *Results, plots string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# DNS benchmarks\n\n")
	p("Written by `make bench-dns` (`test/dnsbench`) from its own measurements on %s; the raw numbers are in [`%s/%s`](%s/%s).\n",
		r.Date, plots, ResultsFile, plots, ResultsFile)
	p("\n")
	p("CoreDNS (`cmd/coredns`, built by `make build`) serves a real control plane (`test/cluster`: etcd, kube-apiserver, kube-controller-manager with its EndpointSlice controller, kube-scheduler, kwok as the kubelet) on 127.0.0.1, pinned with `taskset -c` to one core; dnsperf runs on the other, and so does the control plane while queries/s are measured (it has both cores while it creates pods and during the churn, which is its work too). Nothing leaves the machine.\n\n")
	p("Contenders, all three running at once in each phase (each its own process on CoreDNS's core; the ones not being measured idle), each started from `corefile/cluster.Corefile` with only its addresses changed (listening on 127.0.0.1, health/ready/prometheus on loopback ports, `forward` to 127.0.0.1:9, the testbed's kubeconfig)")
	if r.Settings.NoCache {
		p(" and **without the `cache` line**, so every answer comes from the plugin under test")
	}
	p(":\n\n")
	p("- **%s**: the shipped Corefile.\n", HeadlessKubernetes)
	p("- **%s**: the same without the `headless` block (stock CoreDNS's plugin alone).\n", Kubernetes)
	p("- **%s**: the same without `headless`, `kubernetes` and `forward` (which would answer before `whoami`), `whoami` in their place: the ceiling of a plugin on this core.\n\n", Whoami)
	p("Each phase adds %d headless services; the first has %s pods per service. Query files (%d lines each, seed %d, the same for every contender): **mixed** = 60%% per-pod A, 10%% service A, 10%% SRV (`_http._tcp.<svc>`), 20%% names that do not exist (half a missing pod of a service, half a missing service); **pod A** = per-pod A only. Each run lasts %.0f s at full speed (`-c %d -q %d`) after a warm-up; latency percentiles come from a separate %.0f s run of the mixed file with `dnsperf -v` (one line per answer, which slows dnsperf itself, so that run's load is lighter).\n\n",
		r.Settings.Services, joinInts(r.Settings.PodsPerPhase, ", then "), r.Settings.Queries, r.Settings.Seed, r.Settings.Duration, r.Settings.Clients, r.Settings.Outstanding, r.Settings.Verbose)

	if r.Settings.Repeat > 1 {
		p("Each phase has %d rounds. A round runs every contender's mixed file, then every contender's pod-A file (then, in the last phase, headless+kubernetes on the first phase's pod-A file), the order of the contenders rotating from round to round, so the runs a goal compares are seconds apart and no contender always goes first. Every goal is computed within each round and the value is the median over the rounds; the goals table lists each round's value. On this machine (a VM whose cores are shared with other guests) the same server on the same queries moves by tens of percent between runs a minute apart, so a best or a worst round alone would measure the neighbours. The table of runs shows each contender's median round by mixed queries/s; `all_runs` in the JSON has every round. Latency percentiles come from one verbose run per contender after the rounds.\n\n", r.Settings.Repeat)
	}
	p("## Goals (issue 9)\n\nThroughput ratios are given twice: from queries/s, as the goals say, and from queries answered per CPU-second of CoreDNS (user + system time of all its threads during the run, from `/proc/PID/stat`), which is what the core would give if CoreDNS had it alone; on a shared machine the second is the steadier comparison. Per-pod A at 100 against 10 pods per service is measured two ways: across the two phases (1,000 and then 11,000 pods in the cluster, runs minutes apart), and in the last phase by the same server on the small services' pod-A file right after the large ones' (service size alone). Memory: headless's own cost is (RSS(headless+kubernetes) − RSS(kubernetes)) / pods, as headless keeps informers of its own beside the kubernetes plugin's; RSS after the runs, per round.")
	if k, w := r.run(lastPods(r), Kubernetes), r.run(lastPods(r), Whoami); k != nil && w != nil && k.RSSAfter > 0 && w.RSSAfter > 0 {
		if ph := r.phase(lastPods(r)); ph != nil && ph.TotalPods > 0 {
			p(" For scale, the stock plugin's own cost, (RSS(kubernetes) − RSS(whoami)) / pods, was %.0f bytes per pod in the median round.", float64(k.RSSAfter-w.RSSAfter)/float64(ph.TotalPods))
		}
	}
	p(" The churn's goals come from its one side-by-side run; the Go benchmarks' from their medians.\n\n")
	p("| goal | measured | met | per CPU-second | met | target | rounds |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	yes := map[bool]string{true: "yes", false: "**no**"}
	for _, rt := range r.Ratios {
		val, met, cpu, cpuMet := "n/a ("+rt.Missing+")", "n/a", "", ""
		if rt.Missing == "" {
			val = trimFloat(rt.Value) + " " + rt.Unit
			met = yes[rt.Met]
			if rt.PerCPU > 0 {
				cpu, cpuMet = trimFloat(rt.PerCPU)+" "+rt.Unit, yes[rt.PerCPUMet]
			}
		}
		var rounds []string
		if len(rt.Rounds) > 1 {
			for _, v := range rt.Rounds {
				rounds = append(rounds, trimFloat(round(v, 3)))
			}
		}
		p("| %s | %s | %s | %s | %s | %s | %s |\n", rt.Name, val, met, cpu, cpuMet, rt.Goal, strings.Join(rounds, ", "))
	}
	if len(r.GoBench) > 0 {
		p("\n## Go benchmarks\n\n`%s` (in `plugin/headless`, before the testbed starts). Each of the %d rounds runs every benchmark once, so the sizes and the contenders a goal compares ran seconds apart; the table has each unit's median over the rounds, and each goal is the median of its per-round ratios (listed in the goals table). `%s` calls each plugin's ServeDNS on one question and packs the answer into a reused buffer, as the server does before it writes: the part of a pod-A query that differs between headless and whoami, without the socket and the neighbours (whoami builds an A and an SRV record for every name; headless looks the name up in its snapshot). The rebuild benchmarks flip one endpoint's readiness before each rebuild and fail if a rebuild publishes nothing; cpu-ns/op counts the collector's work on the other core too. The memory benchmarks report the live heap per endpoint at 100,000 endpoints: the snapshot, and the informers' slimmed objects.\n\n",
			r.GoBenchCommand, r.GoBench[0].Runs, PodABench)
		units := goBenchUnits(r.GoBench)
		p("| benchmark | %s |\n|---|%s\n", strings.Join(units, " | "), strings.Repeat(" --- |", len(units)))
		for _, gb := range r.GoBench {
			var cells []string
			for _, u := range units {
				if v, ok := gb.Units[u]; ok {
					cells = append(cells, trimFloat(round(v, 1)))
				} else {
					cells = append(cells, "")
				}
			}
			p("| %s | %s |\n", gb.Name, strings.Join(cells, " | "))
		}
	}
	p("\n## Queries/s, latency, memory\n\n")
	p("![queries/s](%s/%s)\n![queries per CPU-second](%s/%s)\n![RSS](%s/%s)\n\n", plots, QPSSVG, plots, CPUSVG, plots, RSSSVG)
	p("| pods/svc (pods) | contender | mixed q/s | pod-A q/s | pod-A q/s, small services | mixed q/CPU-s | pod-A q/CPU-s | lost (mixed, pod A) | p50 / p90 / p99 / p99.9 ms | RSS warm → after MB | heap in use MB | rcodes (mixed) | load |\n")
	p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, ph := range r.Phases {
		for _, run := range ph.Runs {
			pct := "n/a"
			if v := run.Verbose; v != nil && v.Answers > 0 {
				pct = fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", v.P50*1e3, v.P90*1e3, v.P99*1e3, v.P999*1e3)
			}
			small := ""
			if run.PodASmall != nil {
				small = qpsOf(run.PodASmall)
			}
			p("| %d (%d) | %s | %s | %s | %s | %s | %s | %s, %s | %s | %.1f → %.1f | %.1f | %s | %s |\n", ph.PodsPerService, ph.TotalPods, run.Contender,
				qpsOf(run.Mixed), qpsOf(run.PodA), small, perCPU(run.Mixed, run.MixedCPU), perCPU(run.PodA, run.PodACPU), lostOf(run.Mixed), lostOf(run.PodA), pct,
				float64(run.RSSWarm)/1e6, float64(run.RSSAfter)/1e6, float64(run.HeapInuse)/1e6, rcodes(run.Mixed), run.Load)
		}
	}
	p("\nPods became ready endpoints in: ")
	for i, ph := range r.Phases {
		if i > 0 {
			p(", ")
		}
		p("%d × %d pods in %.0f s", ph.Services, ph.PodsPerService, ph.SetupSeconds)
	}
	p(".\n\n")
	if len(r.Churn) > 0 {
		p("## DNS programming under churn\n\n")
		side := ""
		if n := r.Churn[0].SideBySide; n > 1 {
			side = fmt.Sprintf(" The %d contenders run side by side through one churn, each its own server on CoreDNS's core and its own dnsperf: the same changes at the same moments through the same control plane, so their latencies compare change by change.", n)
		}
		p("%d readiness changes per second (a pod's Ready condition set False through the status subresource, and back True ten seconds later, as a readiness probe would, so half the changes take pods out and half bring them back; the EndpointSlice controller follows) for %.0f s, on the last phase's pods, while dnsperf sends the mixed file at full speed.%s CoreDNS and dnsperf run at nice %d: in a cluster the control plane has machines of its own, and here, at the same priority, it queued the changes for seconds behind two processes that take every cycle. **Programming** is the plugin's own `dns_programming_duration_seconds` histogram over the churn (from the EndpointSlice's `endpoints.kubernetes.io/last-change-trigger-time` to the new answer being served; bucket upper bounds, so the p99 is a power-of-two bound; the trigger time has one-second resolution in the API). **Observed** is from the status write returning to the changed answer, polled over DNS every 2 ms for the first second (every 20 ms after) on every fifth change. **RSS** is idle before the load, the most under load in the %.0f s before the first change, the end and the most during the churn, and the least-squares trend of the once-a-second samples during the churn. **Lost** counts dnsperf's lost queries and SERVFAIL answers.\n\n",
			r.Settings.ChurnRate, r.Settings.ChurnSeconds, side, churnNice, churnPreload.Seconds())
		p("| contender | changes (failed) in s | programming p50 / p99 s (count) | observed p50 / p90 / p99 s (n, not seen) | q/s | lost, SERVFAIL | RSS idle / loaded / end / max MB | RSS trend MB/min | load |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, c := range r.Churn {
			servfail := "n/a"
			if c.DNSPerf != nil {
				servfail = fmt.Sprint(c.DNSPerf.RCodes["SERVFAIL"])
			}
			p("| %s | %d (%d) in %.0f | %s / %s (%d) | %.3f / %.3f / %.3f (%d, %d) | %s | %s, %s | %.1f / %.1f / %.1f / %.1f | %+.2f | %s |\n", c.Contender, c.Changes, c.Failed, c.Seconds,
				trimFloat(c.HistogramP50), trimFloat(c.HistogramP99), c.HistogramCount, c.ObservedP50, c.ObservedP90, c.ObservedP99, c.Observed, c.NotObserved,
				qpsOf(c.DNSPerf), lostOf(c.DNSPerf), servfail, float64(c.RSSStart)/1e6, float64(c.RSSLoaded)/1e6, float64(c.RSSEnd)/1e6, float64(c.RSSMax)/1e6, c.RSSSlope*60/1e6, c.Load)
		}
		if cp := r.ChurnPair; cp != nil && cp.Changes > 0 {
			p("\nChange by change, over the %d observed changes both servers answered: %s's time minus %s's is %+.3f s at the median and %+.3f s at p99; %s answered at least 10 ms later in %.0f%% of them, %s in %.0f%%.\n",
				cp.Changes, cp.A, cp.B, cp.DiffP50, cp.DiffP99, cp.A, 100*cp.ALater, cp.B, 100*cp.BLater)
		}
		p("\n")
	}
	m := r.Machine
	p("## Machine\n\n- CPU: %s, %d cores (shared with other work: the load averages above and below are the 1/5/15-minute averages of the whole machine, so the numbers are noisy; compare contenders within one run)\n", m.CPU, m.Cores)
	p("- memory: %s; kernel %s; %s; dnsperf %s\n- CoreDNS: %s, built from `%s`\n- load average at the start: %s; at the end: %s\n\n", m.MemTotal, m.Kernel, m.Go, m.DNSPerf, m.CoreDNS, m.Source, m.LoadStart, m.LoadEnd)
	p("## Commands\n\n```sh\n")
	for _, c := range r.Commands {
		p("%s\n", c)
	}
	p("```\n")
	if len(r.Exact) > 0 {
		p("\nAs it ran them (the first round of the first phase, then the churn; the paths are the run's work directory):\n\n```sh\n")
		for _, c := range r.Exact {
			p("%s\n", c)
		}
		p("```\n")
	}
	return b.String()
}

// lastPods is the last phase's pods per service, 0 with no phase.
func lastPods(r *Results) int {
	if len(r.Phases) == 0 {
		return 0
	}
	return r.Phases[len(r.Phases)-1].PodsPerService
}

func qpsOf(d *DNSPerf) string {
	if d == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", d.QPS)
}

func lostOf(d *DNSPerf) string {
	if d == nil {
		return "n/a"
	}
	return fmt.Sprint(d.Lost)
}

func rcodes(d *DNSPerf) string {
	if d == nil || d.Completed == 0 {
		return "n/a"
	}
	var parts []string
	for _, k := range []string{"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"} {
		if v, ok := d.RCodes[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*float64(v)/float64(d.Completed)))
		}
	}
	return strings.Join(parts, ", ")
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, sep)
}

func trimFloat(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

func perCPU(d *DNSPerf, cpu float64) string {
	if d == nil || cpu <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", float64(d.Completed)/cpu)
}
