package dnsbench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"petset.dev/petset/test/cluster"
)

// programmingHistogram is the histogram each contender keeps of the time
// from an EndpointSlice's trigger time to its answers being served, and
// the labels that select it.
func programmingHistogram(contender string) (string, []string) {
	if contender == HeadlessKubernetes {
		return "coredns_headless_dns_programming_duration_seconds", nil
	}
	return "coredns_kubernetes_dns_programming_duration_seconds", []string{`service_kind="headless_with_selector"`}
}

// change is one readiness change the churn makes.
type change struct {
	svc, pod int
	ready    bool
	observe  bool
}

// churnPlan is the order of changes: at every tick one change; even
// ticks take a new pod out of readiness, odd ticks bring back the pod
// taken out lag ticks earlier (until then, odd ticks take pods out too).
// Pods go round-robin over the services. Every observeEvery-th change is
// observed through DNS.
func churnPlan(svcs []Service, n, lag, observeEvery int) []change {
	var out, down []change
	next := 0
	take := func() change {
		s := next % len(svcs)
		p := (next / len(svcs)) % len(svcs[s].Hosts)
		next++
		return change{svc: s, pod: p}
	}
	for i := range n {
		var c change
		if i%2 == 1 && len(down) > lag/2 {
			c, down = down[0], down[1:]
			c.ready = true
		} else {
			c = take()
			down = append(down, c)
		}
		c.observe = observeEvery > 0 && i%observeEvery == 0
		out = append(out, c)
	}
	return out
}

// churnNice is the niceness of CoreDNS and dnsperf during the churn. In a
// cluster the control plane has machines of its own; here it shares two
// cores with a server and a load generator that take all they get, and it
// queued the changes for seconds, which measured the control plane, not
// DNS. At default priority it goes first when it needs a core, and the two
// still get every cycle it leaves.
const churnNice = 10

// churnPreload is how long the load runs before the first change, so the
// RSS the churn is compared with is the server's under the same load.
const churnPreload = 5 * time.Second

// contenderRun is one server in the side-by-side churn.
type contenderRun struct {
	srv      *Server
	ch       *Churn
	before   Metrics
	mu       sync.Mutex
	observed []float64
}

// runChurn serves the last phase with the contenders side by side (each
// its own server on ServerCPU, each at full load from its own dnsperf)
// while ChurnRate pods per second change readiness: the same changes at
// the same moments, through the same control plane, so their latencies
// are comparable change by change. Then it restores the pods.
func runChurn(ctx context.Context, cfg Config, tb *cluster.Cluster, client kubernetes.Interface, shipped string, contenders []string, svcs []Service, mixedFile string) ([]Churn, *ChurnPair, []string, error) {
	dir := mkdir(filepath.Join(cfg.Work, "churn"))
	var runs []*contenderRun
	var exact []string
	defer func() {
		for _, r := range runs {
			r.srv.Stop()
		}
	}()
	for _, c := range contenders {
		srv, err := StartServer(ctx, ServerOptions{Bin: cfg.CoreDNS, Shipped: shipped, Dir: dir, Kubeconfig: tb.Kubeconfig,
			Contender: c, CPU: cfg.ServerCPU, Nice: churnNice, NoCache: cfg.NoCache, Timeout: 3 * time.Minute})
		if err != nil {
			return nil, nil, nil, err
		}
		runs = append(runs, &contenderRun{srv: srv, ch: &Churn{Contender: c, SideBySide: len(contenders)}})
		exact = append(exact, cmdline(srv.cmd.Args))
	}
	for _, r := range runs {
		if err := CheckAnswers(r.srv.Addr(), r.ch.Contender, svcs); err != nil {
			return nil, nil, nil, err
		}
		before, err := Scrape(r.srv.MetricsURL())
		if err != nil {
			return nil, nil, nil, err
		}
		r.before = before
		if r.ch.RSSStart, err = VmRSS(r.srv.PID()); err != nil {
			return nil, nil, nil, err
		}
		r.ch.Load = LoadAvg()
	}

	// RSS of every server every second, from the start of the load to its
	// end; the samples before the first change are the baseline.
	start := time.Now().Add(churnPreload)
	stopRSS := make(chan struct{})
	var rssWG sync.WaitGroup
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopRSS) }); rssWG.Wait() }
	defer stop() // also on an early return
	rssWG.Add(1)
	go func() {
		defer rssWG.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case now := <-t.C:
				for _, r := range runs {
					v, err := VmRSS(r.srv.PID())
					if err != nil {
						continue
					}
					if now.Before(start) {
						r.ch.RSSLoaded = max(r.ch.RSSLoaded, v)
						continue
					}
					r.ch.RSSMax = max(r.ch.RSSMax, v)
					r.ch.RSSEnd = v
					r.ch.RSSSamples = append(r.ch.RSSSamples, v)
				}
			}
		}
	}()

	perfDone := make(chan error, len(runs))
	for _, r := range runs {
		o := DNSPerfOptions{Addr: r.srv.Addr(), File: mixedFile, Duration: churnPreload + cfg.ChurnDuration,
			Clients: cfg.Clients, Outstanding: cfg.Outstanding, MaxQPS: cfg.MaxQPS, CPU: cfg.PerfCPU, Nice: churnNice}
		if args, err := o.Args(); err == nil {
			exact = append(exact, cmdline(args))
		}
		go func() {
			d, err := RunDNSPerf(ctx, o)
			r.ch.DNSPerf = d
			if err != nil {
				err = fmt.Errorf("%s: %w", r.ch.Contender, err)
			}
			perfDone <- err
		}()
	}
	select {
	case <-ctx.Done():
		return nil, nil, nil, ctx.Err()
	case <-time.After(time.Until(start)):
	}

	n := int(cfg.ChurnDuration.Seconds() * float64(cfg.ChurnRate))
	down := cfg.ChurnDownFor
	if down <= 0 {
		down = 10 * time.Second
	}
	plan := churnPlan(svcs, n, int(down.Seconds()*float64(cfg.ChurnRate)), 5)
	var mu sync.Mutex
	changes, failed := 0, 0
	var pairs [][]float64 // per observed change, each server's time
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	tick := time.NewTicker(time.Second / time.Duration(cfg.ChurnRate))
	for _, c := range plan {
		select {
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		case <-tick.C:
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(c change) {
			defer wg.Done()
			s := svcs[c.svc]
			err := setReady(ctx, client, s.Namespace, s.Hosts[c.pod], c.ready)
			<-sem // the writes are bounded; the observing is not
			mu.Lock()
			changes++
			if err != nil {
				failed++
			}
			mu.Unlock()
			if err != nil || !c.observe {
				return
			}
			// Every server is asked from the same moment.
			var each sync.WaitGroup
			pair := make([]float64, len(runs))
			for i, r := range runs {
				each.Add(1)
				go func() {
					defer each.Done()
					d, ok := observeAnswer(r.srv.Addr(), s.PodName(c.pod), s.IPs[c.pod], c.ready, 30*time.Second)
					r.mu.Lock()
					defer r.mu.Unlock()
					if ok {
						r.observed = append(r.observed, d.Seconds())
						pair[i] = d.Seconds()
					} else {
						r.ch.NotObserved++
						pair[i] = -1
					}
				}()
			}
			each.Wait()
			if !slices.Contains(pair, -1) {
				mu.Lock()
				pairs = append(pairs, pair)
				mu.Unlock()
			}
		}(c)
	}
	tick.Stop()
	wg.Wait()
	seconds := time.Since(start).Seconds()
	var perfErr error
	for range runs {
		if err := <-perfDone; err != nil && perfErr == nil {
			perfErr = err
		}
	}
	stop()
	if perfErr != nil {
		return nil, nil, nil, perfErr
	}
	var out []Churn
	for _, r := range runs {
		ch := r.ch
		ch.Changes, ch.Failed, ch.Seconds = changes, failed, seconds
		// The histogram is read once every observed change has been
		// answered (above): the rest have had as long.
		after, err := Scrape(r.srv.MetricsURL())
		if err != nil {
			return nil, nil, nil, err
		}
		name, labels := programmingHistogram(ch.Contender)
		diff := DiffBuckets(r.before.Histogram(name, labels...), after.Histogram(name, labels...))
		ch.HistogramP50, ch.HistogramCount = BucketQuantile(diff, 0.50)
		ch.HistogramP99, _ = BucketQuantile(diff, 0.99)
		// Beyond the last bucket: JSON has no +Inf, and the largest number
		// still compares as worse than any bucket.
		ch.HistogramP50, ch.HistogramP99 = finite(ch.HistogramP50), finite(ch.HistogramP99)
		ch.Observed = len(r.observed)
		slices.Sort(r.observed)
		ch.ObservedP50, ch.ObservedP90, ch.ObservedP99 = Percentile(r.observed, 50), Percentile(r.observed, 90), Percentile(r.observed, 99)
		ch.RSSSlope = slope(ch.RSSSamples)
		cfg.Log("  churn %s: %d changes (%d failed) in %.1fs; programming p50 %.3fs p99 %.3fs (histogram, %d); observed p50 %.3fs p90 %.3fs p99 %.3fs (%d, %d not seen); %.0f q/s, lost %d; RSS idle %.1f, loaded %.1f, churn end %.1f max %.1f MB",
			ch.Contender, ch.Changes, ch.Failed, ch.Seconds, ch.HistogramP50, ch.HistogramP99, ch.HistogramCount, ch.ObservedP50, ch.ObservedP90, ch.ObservedP99, ch.Observed, ch.NotObserved,
			ch.DNSPerf.QPS, ch.DNSPerf.Lost, float64(ch.RSSStart)/1e6, float64(ch.RSSLoaded)/1e6, float64(ch.RSSEnd)/1e6, float64(ch.RSSMax)/1e6)
		out = append(out, *ch)
	}

	// Everything back to ready for whoever comes next.
	var restore []change
	for _, c := range plan {
		restore = append(restore, change{svc: c.svc, pod: c.pod, ready: true})
	}
	if err := restoreReady(ctx, client, svcs, restore); err != nil {
		return nil, nil, nil, err
	}
	var pair *ChurnPair
	if len(runs) == 2 {
		pair = comparePairs(runs[0].ch.Contender, runs[1].ch.Contender, pairs)
		cfg.Log("  churn %s - %s, change by change: p50 %+.3fs, p99 %+.3fs; %s later in %.0f%%, %s later in %.0f%% of %d",
			pair.A, pair.B, pair.DiffP50, pair.DiffP99, pair.A, 100*pair.ALater, pair.B, 100*pair.BLater, pair.Changes)
	}
	return out, pair, exact, nil
}

// comparePairs sets two servers' times for the same changes side by side
// (each pair: a's, b's).
func comparePairs(a, b string, pairs [][]float64) *ChurnPair {
	p := &ChurnPair{A: a, B: b, Changes: len(pairs)}
	if len(pairs) == 0 {
		return p
	}
	diffs := make([]float64, 0, len(pairs))
	for _, pr := range pairs {
		d := pr[0] - pr[1]
		diffs = append(diffs, d)
		switch {
		case d >= 0.010:
			p.ALater++
		case d <= -0.010:
			p.BLater++
		}
	}
	slices.Sort(diffs)
	p.DiffP50, p.DiffP99 = Percentile(diffs, 50), Percentile(diffs, 99)
	p.ALater /= float64(len(pairs))
	p.BLater /= float64(len(pairs))
	return p
}

// slope is the least-squares trend of samples taken once a second, in
// units per second; 0 for fewer than two.
func slope(samples []int64) float64 {
	n := float64(len(samples))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i, v := range samples {
		x, y := float64(i), float64(v)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

// cmdline joins a command's arguments for the report.
func cmdline(args []string) string { return strings.Join(args, " ") }

// observeAnswer polls name until its answer shows the change: the pod's
// address when ready, NXDOMAIN when not, and returns how long that took.
func observeAnswer(addr, name, ip string, ready bool, timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < timeout {
		r, err := Ask(addr, name, dns.TypeA)
		if err == nil {
			has := len(r.Answer) == 1 && r.Rcode == dns.RcodeSuccess
			if a, ok := firstA(r); ok && has {
				has = a == ip
			}
			if (ready && has) || (!ready && r.Rcode == dns.RcodeNameError) {
				return time.Since(start), true
			}
		}
		// Fine-grained while a change is fresh, coarser after, so a slow
		// control plane does not flood the servers with polls.
		if time.Since(start) < time.Second {
			time.Sleep(2 * time.Millisecond)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return 0, false
}

func firstA(r *dns.Msg) (string, bool) {
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String(), true
		}
	}
	return "", false
}

// setReady sets a running pod's Ready and ContainersReady conditions as
// a readiness probe would, with one strategic merge patch of the status
// (conditions merge by type); kwok leaves running pods alone afterwards,
// and the EndpointSlice controller follows.
func setReady(ctx context.Context, client kubernetes.Interface, ns, name string, ready bool) error {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{
		{Type: corev1.PodReady, Status: status, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: status, LastTransitionTime: now},
	}}})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("pod %s/%s ready=%v: %w", ns, name, ready, err)
	}
	return nil
}

// restoreReady makes the given pods ready again and waits until their
// services' EndpointSlices say so.
func restoreReady(ctx context.Context, client kubernetes.Interface, svcs []Service, cs []change) error {
	seen := map[[2]int]bool{}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, c := range cs {
		if seen[[2]int{c.svc, c.pod}] {
			continue
		}
		seen[[2]int{c.svc, c.pod}] = true
		sem <- struct{}{}
		wg.Add(1)
		go func(c change) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := setReady(ctx, client, svcs[c.svc].Namespace, svcs[c.svc].Hosts[c.pod], true); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	cp := slices.Clone(svcs)
	return WaitServices(ctx, client, cp, 5*time.Minute, nil)
}

func mkdir(dir string) string {
	os.MkdirAll(dir, 0o755)
	return dir
}

func finite(v float64) float64 {
	if math.IsInf(v, 1) {
		return math.MaxFloat64
	}
	return v
}
