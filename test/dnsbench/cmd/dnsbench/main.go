// Command dnsbench is `make bench-dns`: it starts the testbed, creates
// headless services and pods, and measures CoreDNS with headless +
// kubernetes, with kubernetes alone and with whoami (test/dnsbench).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"petset.dev/petset/test/dnsbench"
)

func main() {
	var (
		coredns   = flag.String("coredns", "bin/coredns", "CoreDNS binary (make build)")
		corefile  = flag.String("corefile", "corefile/cluster.Corefile", "the shipped Corefile the contenders are made from")
		out       = flag.String("out", "test/dnsbench/results", "directory for results.json and the SVG plots")
		md        = flag.String("md", "BENCHMARKS.md", "markdown report to write (empty: none)")
		work      = flag.String("work", "", "directory for query files, Corefiles, logs and the testbed (default: a new temporary directory)")
		services  = flag.Int("services", 100, "headless services per phase")
		pods      = flag.String("pods", "10,100", "pods per service, one phase each (each phase adds its services)")
		queries   = flag.Int("queries", 200000, "lines per query file")
		seed      = flag.Uint64("seed", 1, "seed of the query files")
		warmup    = flag.Duration("warmup", 3*time.Second, "warm-up run before the measured runs")
		duration  = flag.Duration("duration", 5*time.Second, "each measured dnsperf run")
		verbose   = flag.Duration("verbose", 10*time.Second, "dnsperf -v run for latency percentiles (0: none)")
		clients   = flag.Int("clients", 4, "dnsperf -c")
		outst     = flag.Int("outstanding", 100, "dnsperf -q")
		maxQPS    = flag.Int("max-qps", 0, "dnsperf -Q (0: as fast as the server answers)")
		repeat    = flag.Int("repeat", 16, "rounds of interleaved runs of every contender; each goal is the median of its per-round values")
		cache     = flag.Bool("cache", false, "keep the shipped Corefile's cache plugin (default: drop it, so the plugins answer every query)")
		serverCPU = flag.String("server-cpu", "0", "taskset CPU list for CoreDNS")
		perfCPU   = flag.String("perf-cpu", "1", "taskset CPU list for dnsperf")
		churnRate = flag.Int("churn-rate", 50, "readiness changes per second in the churn run (0: no churn run)")
		churnDur  = flag.Duration("churn", 60*time.Second, "length of each churn run")
		goBench   = flag.Int("gobench", 9, "rounds of the in-process Go benchmarks ("+dnsbench.PodABench+", the rebuilds, the memory) in ./plugin/headless, before the testbed; each goal is the median of its per-round ratios (0: none)")
	)
	flag.Parse()
	var phases []int
	for f := range strings.SplitSeq(*pods, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "dnsbench: -pods: %q is not a positive number\n", f)
			os.Exit(2)
		}
		phases = append(phases, n)
	}
	temp := *work == ""
	if temp {
		d, err := os.MkdirTemp("", "dnsbench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "dnsbench:", err)
			os.Exit(1)
		}
		*work = d
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s dnsbench: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	bin, err := filepath.Abs(*coredns)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
	started := time.Now()
	res, err := dnsbench.Bench(ctx, dnsbench.Config{
		CoreDNS: bin, Corefile: *corefile, Work: *work,
		Services: *services, PodsPerService: phases, Queries: *queries, Seed: *seed,
		Warmup: *warmup, Duration: *duration, Verbose: *verbose, Clients: *clients, Outstanding: *outst,
		MaxQPS: *maxQPS, Repeat: *repeat, NoCache: !*cache, ServerCPU: *serverCPU, PerfCPU: *perfCPU,
		ChurnRate: *churnRate, ChurnDuration: *churnDur, GoBenchCount: *goBench, GoBenchDir: ".", Log: logf,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		fmt.Fprintln(os.Stderr, "dnsbench: logs and files kept in", *work)
		os.Exit(1)
	}
	res.Commands = []string{
		"make bench-dns   # = make setup build testbed, then:",
		"go run ./test/dnsbench/cmd/dnsbench " + strings.Join(os.Args[1:], " "),
	}
	if err := dnsbench.WriteAll(res, *out, *md); err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
	logf("done in %s; results in %s and %s", time.Since(started).Round(time.Second), *out, *md)
	for _, r := range res.Ratios {
		if r.Missing != "" {
			fmt.Printf("%-95s n/a (%s)\n", r.Name, r.Missing)
			continue
		}
		cpu := ""
		if r.PerCPU > 0 {
			cpu = fmt.Sprintf("  per CPU-second %.3f, met: %v", r.PerCPU, r.PerCPUMet)
		}
		fmt.Printf("%-95s %10.3f %-9s goal %-14s met: %v%s\n", r.Name, r.Value, r.Unit, r.Goal, r.Met, cpu)
	}
	if temp {
		os.RemoveAll(*work)
	}
}
