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
	// Repeat is the rounds of each phase: every contender's runs, short
	// and interleaved (runPhase); each goal is computed within every round
	// and the median over rounds is kept, and the tables show each
	// contender's median round.
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
// services and pods, and measures every contender on it (runPhase).
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
		var exact *[]string
		if pods == cfg.PodsPerService[0] {
			exact = &res.Exact
		}
		all, verbose, err := runPhase(ctx, cfg, tb, string(shipped), pods, svcs, files, exact)
		if err != nil {
			return res, fmt.Errorf("%d pods per service: %w", pods, err)
		}
		ph.AllRuns = all
		ph.Runs = MedianRuns(ph.AllRuns)
		for i := range ph.Runs {
			ph.Runs[i].Verbose = verbose[ph.Runs[i].Contender]
		}
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

// live is one contender's server during a phase.
type live struct {
	contender string
	srv       *Server
	sync      float64 // seconds to ready
}

// runPhase serves one phase with every contender at once, each its own
// server pinned to ServerCPU (the ones not being measured idle), and
// measures them in short runs interleaved: every round runs each
// contender's mixed file, then each one's pod-A file (and, for
// headless+kubernetes, the small services' pod-A file when there is
// one), in an order that rotates from round to round. A contender's
// runs that a goal compares are then seconds apart, not minutes, and no
// contender always goes first. It returns every round's runs, and each
// contender's verbose run (once, after the rounds). Unless exact is nil,
// the command lines are appended to it.
func runPhase(ctx context.Context, cfg Config, tb *cluster.Cluster, shipped string, pods int, svcs []Service, files map[string]string, exact *[]string) ([]Run, map[string]*DNSPerf, error) {
	dir := filepath.Join(cfg.Work, fmt.Sprintf("phase-%d", pods))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	var servers []*live
	defer func() {
		for _, l := range servers {
			l.srv.Stop()
		}
	}()
	opts := func(l *live, file string, d time.Duration) DNSPerfOptions {
		return DNSPerfOptions{Addr: l.srv.Addr(), File: file, Duration: d, Clients: cfg.Clients, Outstanding: cfg.Outstanding, MaxQPS: cfg.MaxQPS, CPU: cfg.PerfCPU}
	}
	for _, c := range Contenders {
		start := time.Now()
		srv, err := StartServer(ctx, ServerOptions{Bin: cfg.CoreDNS, Shipped: shipped, Dir: dir, Kubeconfig: tb.Kubeconfig,
			Contender: c, CPU: cfg.ServerCPU, NoCache: cfg.NoCache, Timeout: 3 * time.Minute})
		if err != nil {
			return nil, nil, err
		}
		l := &live{contender: c, srv: srv, sync: time.Since(start).Seconds()}
		servers = append(servers, l)
		if err := CheckAnswers(srv.Addr(), c, svcs); err != nil {
			return nil, nil, err
		}
		cfg.Log("  %s ready in %.1fs (pid %d, %s)", c, l.sync, srv.PID(), srv.Addr())
		if exact != nil {
			*exact = append(*exact, cmdline(srv.cmd.Args))
			if args, err := opts(l, files["mixed"], cfg.Duration).Args(); err == nil {
				*exact = append(*exact, cmdline(args))
			}
		}
	}
	for _, l := range servers {
		if cfg.Warmup > 0 {
			if _, err := RunDNSPerf(ctx, opts(l, files["mixed"], cfg.Warmup)); err != nil {
				return nil, nil, fmt.Errorf("%s warm-up: %w", l.contender, err)
			}
		}
	}
	var all []Run
	for rep := range max(1, cfg.Repeat) {
		k := rep % len(servers)
		order := append(slices.Clone(servers[k:]), servers[:k]...)
		runs := map[string]*Run{}
		for _, l := range order {
			r := &Run{Contender: l.contender, Round: rep + 1, SyncSeconds: l.sync, Load: LoadAvg()}
			var err error
			if r.RSSWarm, err = VmRSS(l.srv.PID()); err != nil {
				return nil, nil, err
			}
			runs[l.contender] = r
		}
		for _, kind := range []string{"mixed", "pod-a", "pod-a-small"} {
			for _, l := range order {
				if files[kind] == "" || (kind == "pod-a-small" && l.contender != HeadlessKubernetes) {
					continue
				}
				d, cpu, err := measure(ctx, opts(l, files[kind], cfg.Duration), l.srv.PID())
				if err != nil {
					return nil, nil, fmt.Errorf("%s %s: %w", l.contender, kind, err)
				}
				r := runs[l.contender]
				switch kind {
				case "mixed":
					r.Mixed, r.MixedCPU = d, cpu
				case "pod-a":
					r.PodA, r.PodACPU = d, cpu
				default:
					r.PodASmall, r.PodASmallCPU = d, cpu
				}
			}
		}
		for _, l := range servers { // in Contenders' order
			c, r := l.contender, runs[l.contender]
			var err error
			if r.RSSAfter, err = VmRSS(l.srv.PID()); err != nil {
				return nil, nil, err
			}
			m, err := Scrape(l.srv.MetricsURL())
			if err != nil {
				return nil, nil, err
			}
			r.HeapInuse = int64(m["go_memstats_heap_inuse_bytes"])
			small := ""
			if r.PodASmall != nil {
				small = fmt.Sprintf(", small services' pod A %.0f q/s (lost %d)", r.PodASmall.QPS, r.PodASmall.Lost)
			}
			cfg.Log("  round %d %s: mixed %.0f q/s (lost %d, %.0f per CPU-s), pod A %.0f q/s (lost %d, %.0f per CPU-s)%s, RSS %.1f MB -> %.1f MB, heap in use %.1f MB, load %s",
				rep+1, c, r.Mixed.QPS, r.Mixed.Lost, float64(r.Mixed.Completed)/r.MixedCPU, r.PodA.QPS, r.PodA.Lost, float64(r.PodA.Completed)/r.PodACPU, small,
				float64(r.RSSWarm)/1e6, float64(r.RSSAfter)/1e6, float64(r.HeapInuse)/1e6, r.Load)
			all = append(all, *r)
		}
	}
	verbose := map[string]*DNSPerf{}
	if cfg.Verbose > 0 {
		for _, l := range servers {
			o := opts(l, files["mixed"], cfg.Verbose)
			o.Verbose = true
			d, err := RunDNSPerf(ctx, o)
			if err != nil {
				return nil, nil, fmt.Errorf("%s verbose: %w", l.contender, err)
			}
			verbose[l.contender] = d
		}
	}
	return all, verbose, nil
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
