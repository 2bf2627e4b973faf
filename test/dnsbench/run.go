package dnsbench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"petset.dev/petset/test/cluster"
)

// Config is one benchmark run.
type Config struct {
	CoreDNS  string // the binary (make build: bin/coredns)
	Corefile string // the shipped Corefile (corefile/cluster.Corefile)
	Work     string // query files, Corefiles, logs
	// Cluster to use; when nil, Run starts a testbed and stops it after.
	Cluster *cluster.Cluster

	Services       int   // headless services per phase
	PodsPerService []int // one phase per entry, each adding Services services
	Queries        int   // lines per query file
	Seed           uint64
	Warmup         time.Duration
	Duration       time.Duration // each full-speed run
	Verbose        time.Duration // the -v run for percentiles; 0: none
	Clients        int
	Outstanding    int
	MaxQPS         int // 0: full speed (the benchmark); the smoke test limits it
	// Repeat runs the contenders this many rounds, interleaved; each goal
	// is computed within every round and the median over rounds is kept,
	// and the tables show each contender's median round.
	Repeat    int
	NoCache   bool
	ServerCPU string // taskset CPU list for CoreDNS
	PerfCPU   string // and for dnsperf
	// Churn: readiness changes per second during a full-load run of
	// ChurnDuration on the last phase, for headless+kubernetes and
	// kubernetes; 0 skips it.
	ChurnRate     int
	ChurnDuration time.Duration
	// ChurnDownFor is how long a pod stays not ready before it is made
	// ready again (default 10s): long enough for the change to be seen.
	ChurnDownFor time.Duration
	// GoBenchCount, when above 0, first runs GoBenches this many times in
	// ./plugin/headless of the module at GoBenchDir (the repository).
	GoBenchCount int
	GoBenchDir   string
	Log          func(format string, args ...any)
}

// Bench brings the testbed up (unless given), creates each phase's
// services and pods, and runs every contender on it, one after another.
func Bench(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	shipped, err := os.ReadFile(cfg.Corefile)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Work, 0o755); err != nil {
		return nil, err
	}
	res := &Results{
		Date:    time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Machine: describeMachine(cfg.CoreDNS),
		Settings: Settings{
			Services: cfg.Services, PodsPerPhase: cfg.PodsPerService, Queries: cfg.Queries, Seed: cfg.Seed,
			Duration: cfg.Duration.Seconds(), Verbose: cfg.Verbose.Seconds(), Clients: cfg.Clients,
			Outstanding: cfg.Outstanding, Repeat: max(1, cfg.Repeat), NoCache: cfg.NoCache, ChurnRate: cfg.ChurnRate, ChurnSeconds: cfg.ChurnDuration.Seconds(),
		},
	}
	if cfg.GoBenchCount > 0 {
		// Before the testbed, on a machine as quiet as it gets.
		cfg.Log("go test -bench %s, %d times", strings.Join(GoBenches, ","), cfg.GoBenchCount)
		if res.GoBench, res.GoBenchCommand, err = RunGoBench(ctx, cfg.GoBenchDir, "./plugin/headless", GoBenches, cfg.GoBenchCount); err != nil {
			return nil, err
		}
	}
	tb := cfg.Cluster
	if tb == nil {
		cfg.Log("starting the testbed")
		// kube-controller-manager's clients default to 20 requests/s: at
		// 50 readiness changes a second its EndpointSlice controller
		// would queue for seconds, and the churn would measure that
		// queue instead of DNS.
		tb, err = cluster.Start(ctx, cluster.Options{Dir: filepath.Join(cfg.Work, "cluster"), Volumes: 1, Log: cfg.Log,
			ControllerManagerArgs: []string{"--kube-api-qps=1000", "--kube-api-burst=2000"}})
		if err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		defer tb.Stop()
	}
	// A client of its own, with room for thousands of creates.
	rc := rest.CopyConfig(tb.Config)
	rc.QPS, rc.Burst = 2000, 4000
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	total := 0
	var last []Service
	for _, pods := range cfg.PodsPerService {
		ns := fmt.Sprintf("bench-%d", pods)
		if cfg.ServerCPU != "" && cfg.PerfCPU != "" {
			if err := PinTestbed(tb.Dir, "0-"+strconv.Itoa(runtime.NumCPU()-1)); err != nil {
				return res, err
			}
		}
		start := time.Now()
		cfg.Log("phase %d pods per service: creating %d services and %d pods in %s", pods, cfg.Services, cfg.Services*pods, ns)
		svcs, err := CreateServices(ctx, client, ns, cfg.Services, pods, 32)
		if err != nil {
			return res, err
		}
		err = WaitServices(ctx, client, svcs, 15*time.Minute, func(ready, want int) { cfg.Log("  %d of %d endpoints ready", ready, want) })
		if err != nil {
			return res, err
		}
		total += cfg.Services * pods
		ph := Phase{PodsPerService: pods, Services: cfg.Services, TotalPods: total, SetupSeconds: time.Since(start).Seconds()}
		cfg.Log("  all %d endpoints ready after %.1fs; %d pods in the cluster", cfg.Services*pods, ph.SetupSeconds, total)

		// The control plane idles while CoreDNS is measured, but it does
		// run (watches, kwok's heartbeats): keep it off CoreDNS's CPU.
		if cfg.ServerCPU != "" && cfg.PerfCPU != "" {
			if err := PinTestbed(tb.Dir, cfg.PerfCPU); err != nil {
				return res, err
			}
		}

		mixed, podA, err := Queries(svcs, cfg.Queries, cfg.Seed+uint64(pods))
		if err != nil {
			return res, err
		}
		files := map[string]string{
			"mixed": filepath.Join(cfg.Work, fmt.Sprintf("queries-%d-mixed.txt", pods)),
			"pod-a": filepath.Join(cfg.Work, fmt.Sprintf("queries-%d-pod-a.txt", pods)),
		}
		if pods != cfg.PodsPerService[0] {
			// The first phase's pods are still there: their file, run by
			// the same server, is service size alone.
			files["pod-a-small"] = filepath.Join(cfg.Work, fmt.Sprintf("queries-%d-pod-a.txt", cfg.PodsPerService[0]))
		}
		if err := WriteQueryFile(files["mixed"], mixed); err != nil {
			return res, err
		}
		if err := WriteQueryFile(files["pod-a"], podA); err != nil {
			return res, err
		}
		for rep := range max(1, cfg.Repeat) {
			for _, c := range Contenders {
				var exact *[]string
				if rep == 0 && pods == cfg.PodsPerService[0] {
					exact = &res.Exact
				}
				run, err := runContender(ctx, cfg, tb, string(shipped), c, pods, svcs, files, rep == 0, exact)
				if err != nil {
					return res, fmt.Errorf("%s at %d pods per service: %w", c, pods, err)
				}
				run.Round = rep + 1
				ph.AllRuns = append(ph.AllRuns, *run)
			}
		}
		ph.Runs = MedianRuns(ph.AllRuns)
		res.Phases = append(res.Phases, ph)
		last = svcs
	}
	if cfg.ChurnRate > 0 && cfg.ChurnDuration > 0 && len(last) > 0 {
		// The churn is the control plane's work too (50 status writes a
		// second, the EndpointSlice controller, the watches): squeezed
		// onto dnsperf's CPU it queued changes for seconds. It gets
		// every CPU back, CoreDNS's included, and runs at a higher
		// priority than CoreDNS and dnsperf (churnNice).
		if cfg.ServerCPU != "" && cfg.PerfCPU != "" {
			if err := PinTestbed(tb.Dir, "0-"+strconv.Itoa(runtime.NumCPU()-1)); err != nil {
				return res, err
			}
		}
		pods := cfg.PodsPerService[len(cfg.PodsPerService)-1]
		mixedFile := filepath.Join(cfg.Work, fmt.Sprintf("queries-%d-mixed.txt", pods))
		ch, pair, exact, err := runChurn(ctx, cfg, tb, client, string(shipped), []string{HeadlessKubernetes, Kubernetes}, last, mixedFile)
		if err != nil {
			return res, fmt.Errorf("churn: %w", err)
		}
		res.Churn, res.ChurnPair = ch, pair
		res.Exact = append(res.Exact, exact...)
	}
	res.Machine.LoadEnd = LoadAvg()
	if n := len(cfg.PodsPerService); n >= 2 {
		res.Ratios = ComputeRatios(res, cfg.PodsPerService[0], cfg.PodsPerService[n-1])
	}
	return res, nil
}

// runContender serves one phase with one contender: warm-up, the mixed
// and the pod-A file at full speed (for headless+kubernetes, then the
// small services' pod-A file when there is one), then, when verbose (the
// first round), the verbose run. Unless exact is nil, the command lines
// are appended to it.
func runContender(ctx context.Context, cfg Config, tb *cluster.Cluster, shipped, contender string, pods int, svcs []Service, files map[string]string, verbose bool, exact *[]string) (*Run, error) {
	dir := filepath.Join(cfg.Work, fmt.Sprintf("phase-%d", pods))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	srv, err := StartServer(ctx, ServerOptions{Bin: cfg.CoreDNS, Shipped: shipped, Dir: dir, Kubeconfig: tb.Kubeconfig,
		Contender: contender, CPU: cfg.ServerCPU, NoCache: cfg.NoCache, Timeout: 3 * time.Minute})
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	run := &Run{Contender: contender, SyncSeconds: time.Since(start).Seconds()}
	if err := CheckAnswers(srv.Addr(), contender, svcs); err != nil {
		return nil, err
	}
	cfg.Log("  %s ready in %.1fs (pid %d, %s)", contender, run.SyncSeconds, srv.PID(), srv.Addr())
	opts := DNSPerfOptions{Addr: srv.Addr(), Clients: cfg.Clients, Outstanding: cfg.Outstanding, MaxQPS: cfg.MaxQPS, CPU: cfg.PerfCPU}
	if exact != nil {
		o := opts
		o.File, o.Duration = files["mixed"], cfg.Duration
		*exact = append(*exact, cmdline(srv.cmd.Args))
		if args, err := o.Args(); err == nil {
			*exact = append(*exact, cmdline(args))
		}
	}
	if cfg.Warmup > 0 {
		o := opts
		o.File, o.Duration = files["mixed"], cfg.Warmup
		if _, err := RunDNSPerf(ctx, o); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	if run.RSSWarm, err = VmRSS(srv.PID()); err != nil {
		return nil, err
	}
	run.Load = LoadAvg()
	o := opts
	o.File, o.Duration = files["mixed"], cfg.Duration
	if run.Mixed, run.MixedCPU, err = measure(ctx, o, srv.PID()); err != nil {
		return nil, err
	}
	o.File = files["pod-a"]
	if run.PodA, run.PodACPU, err = measure(ctx, o, srv.PID()); err != nil {
		return nil, err
	}
	if f := files["pod-a-small"]; f != "" && contender == HeadlessKubernetes {
		o.File = f
		if run.PodASmall, run.PodASmallCPU, err = measure(ctx, o, srv.PID()); err != nil {
			return nil, err
		}
	}
	if cfg.Verbose > 0 && verbose {
		o.File, o.Duration, o.Verbose = files["mixed"], cfg.Verbose, true
		if run.Verbose, err = RunDNSPerf(ctx, o); err != nil {
			return nil, err
		}
	}
	if run.RSSAfter, err = VmRSS(srv.PID()); err != nil {
		return nil, err
	}
	if m, err := Scrape(srv.MetricsURL()); err == nil {
		run.HeapInuse = int64(m["go_memstats_heap_inuse_bytes"])
	} else {
		return nil, err
	}
	cfg.Log("  %s: mixed %.0f q/s (lost %d, %.0f per CPU-s), pod A %.0f q/s (lost %d, %.0f per CPU-s), RSS %.1f MB -> %.1f MB, heap in use %.1f MB, load %s",
		contender, run.Mixed.QPS, run.Mixed.Lost, float64(run.Mixed.Completed)/run.MixedCPU, run.PodA.QPS, run.PodA.Lost, float64(run.PodA.Completed)/run.PodACPU, float64(run.RSSWarm)/1e6, float64(run.RSSAfter)/1e6, float64(run.HeapInuse)/1e6, run.Load)
	return run, nil
}

// CheckAnswers asks a few names before a contender is measured, so a
// misconfigured server is never timed: the first and last pod of the
// first and last service (their addresses), a service's SRV, and a name
// that does not exist. whoami answers anything with NOERROR.
func CheckAnswers(addr, contender string, svcs []Service) error {
	for _, s := range []Service{svcs[0], svcs[len(svcs)-1]} {
		for _, i := range []int{0, len(s.Hosts) - 1} {
			r, err := Ask(addr, s.PodName(i), dns.TypeA)
			if err != nil {
				return fmt.Errorf("%s: %w", s.PodName(i), err)
			}
			if contender == Whoami {
				if r.Rcode != dns.RcodeSuccess {
					return fmt.Errorf("whoami answered %s with %s", s.PodName(i), dns.RcodeToString[r.Rcode])
				}
				continue
			}
			if len(r.Answer) != 1 || !strings.HasSuffix(r.Answer[0].String(), "\t"+s.IPs[i]) {
				return fmt.Errorf("%s %s: want %s, got:\n%s", contender, s.PodName(i), s.IPs[i], r)
			}
		}
		if contender == Whoami {
			continue
		}
		srv := "_" + s.PortName + "._tcp." + s.ServiceName()
		r, err := Ask(addr, srv, dns.TypeSRV)
		if err != nil {
			return fmt.Errorf("%s: %w", srv, err)
		}
		if len(r.Answer) != len(s.Hosts) {
			return fmt.Errorf("%s %s SRV: want %d records, got:\n%s", contender, srv, len(s.Hosts), r)
		}
		nx := s.Name + "-nx0." + s.ServiceName()
		if r, err = Ask(addr, nx, dns.TypeA); err != nil {
			return fmt.Errorf("%s: %w", nx, err)
		}
		if r.Rcode != dns.RcodeNameError {
			return fmt.Errorf("%s %s: want NXDOMAIN, got:\n%s", contender, nx, r)
		}
	}
	return nil
}

func describeMachine(coredns string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadStart: LoadAvg(), CPU: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("dnsperf", "-h").CombinedOutput(); err == nil || len(out) > 0 {
		for line := range strings.SplitSeq(string(out), "\n") {
			if strings.HasPrefix(line, "Version ") {
				m.DNSPerf = strings.TrimPrefix(line, "Version ")
			}
		}
	}
	if out, err := exec.Command("git", "log", "-1", "--format=%h %s").Output(); err == nil {
		m.Source = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.Source += " (with uncommitted changes)"
		}
	}
	if out, err := exec.Command(coredns, "-version").Output(); err == nil {
		m.CoreDNS = strings.Join(strings.Fields(string(out)), " ")
	}
	return m
}

// MedianRuns keeps, per contender in running order, its median round by
// mixed queries/s (the lower of the middle two for an even count): a
// real run that stands for the contender in the tables.
func MedianRuns(all []Run) []Run {
	var out []Run
	for _, c := range Contenders {
		var mine []Run
		for _, r := range all {
			if r.Contender == c && r.Mixed != nil {
				mine = append(mine, r)
			}
		}
		if len(mine) == 0 {
			continue
		}
		slices.SortStableFunc(mine, func(a, b Run) int { return cmp.Compare(a.Mixed.QPS, b.Mixed.QPS) })
		out = append(out, mine[(len(mine)-1)/2])
	}
	return out
}

// PinTestbed sets the CPU affinity of every thread of the testbed's
// processes (their NAME.pid files in dir) to cpus.
func PinTestbed(dir, cpus string) error {
	pids, err := filepath.Glob(filepath.Join(dir, "*.pid"))
	if err != nil {
		return err
	}
	for _, f := range pids {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		pid := strings.TrimSpace(string(b))
		if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, pid).CombinedOutput(); err != nil {
			return fmt.Errorf("taskset %s %s (%s): %w: %s", cpus, pid, filepath.Base(f), err, out)
		}
	}
	return nil
}

// measure runs dnsperf and returns, with its report, the CPU time the
// server spent meanwhile.
func measure(ctx context.Context, o DNSPerfOptions, pid int) (*DNSPerf, float64, error) {
	before, err := CPUSeconds(pid)
	if err != nil {
		return nil, 0, err
	}
	d, err := RunDNSPerf(ctx, o)
	if err != nil {
		return nil, 0, err
	}
	after, err := CPUSeconds(pid)
	if err != nil {
		return nil, 0, err
	}
	return d, after - before, nil
}
