package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options are Run's dependencies; the zero value uses the real ones.
type Options struct {
	// Resolver answers the DNS questions; nil asks cfg.Servers.
	Resolver Resolver
	Stdout   io.Writer // peer lists, rendered templates, hook output
	Stderr   io.Writer // hook errors
	Log      logr.Logger
	// Environ is the base environment of hooks; nil is os.Environ().
	Environ []string
	// Dial connects for -wait-tcp; nil is a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// HookGrace is how long a hook may run after SIGTERM before it is
	// killed; 0 is 20s.
	HookGrace time.Duration
	// Listening, if set, is called with the health server's address.
	Listening func(net.Addr)
	// Jitter returns a number in [0,1); nil is math/rand.
	Jitter func() float64

	// sleep pauses between lookups; tests see the pauses through it.
	sleep func(context.Context, time.Duration) error
	// etcd connects to an etcd cluster through some of its client URLs;
	// nil is dialEtcd.
	etcd func(ctx context.Context, endpoints []string) (etcdCluster, error)
	// set reads the scale of -etcd-leave's set; nil reads it from the
	// Kubernetes API.
	set setReader
}

type finder struct {
	cfg   *Config
	o     Options
	log   logr.Logger
	res   Resolver
	m     *metrics
	ready atomic.Bool
	// dropped are the SRV targets outside the service already logged.
	dropped map[string]bool
	// latest are the peers of the last successful lookup.
	latest atomic.Pointer[[]Peer]
	// etcd is what -etcd-join found, for the templates.
	etcd    *EtcdCluster
	leaveMu sync.Mutex
}

// Run finds the peers and does what cfg asks: waits for -wait-dns and
// -wait-tcp, then until this pod's own name and -min-peers peers are
// published, renders -template, runs -on-start (or -on-change) or prints
// the peers; with -on-change or -watch it keeps watching and acts on every
// change until ctx ends, then returns nil. ExitCode maps the error to
// peer-finder's exit status.
func Run(ctx context.Context, cfg *Config, o Options) error {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	if o.HookGrace <= 0 {
		o.HookGrace = 20 * time.Second
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	if o.sleep == nil {
		o.sleep = sleep
	}
	if o.etcd == nil {
		dial := o.Dial
		o.etcd = func(ctx context.Context, endpoints []string) (etcdCluster, error) {
			return dialEtcd(ctx, endpoints, dial)
		}
	}
	if cfg.EtcdLeave != "" && o.set == nil {
		kind, name, err := parseSetRef(cfg.EtcdLeave)
		if err != nil {
			return &UsageError{Err: fmt.Errorf("-etcd-leave: %w", err)}
		}
		if o.set, err = newKubeSet(kind, name, cfg.Namespace, cfg.ServiceAccountDir, os.Getenv); err != nil {
			return fmt.Errorf("-etcd-leave: %w", err)
		}
	}
	f := &finder{cfg: cfg, o: o, log: o.Log, m: newMetrics(), res: o.Resolver}
	if f.res == nil {
		var warned atomic.Bool
		f.res = &DNSResolver{Servers: cfg.Servers, Log: o.Log, Truncated: func() {
			f.m.tcpRetries.Inc()
			if !warned.Swap(true) {
				f.log.Info("UDP reply truncated, asking over TCP (logged once)", "name", cfg.ServiceName())
			}
		}}
	}
	return f.run(ctx)
}

func (f *finder) run(ctx context.Context) error {
	cfg := f.cfg
	if cfg.ReadyFile != "" {
		// A stale file is removed; a directory never is (ParseFlags
		// refuses one, but the Config may come from elsewhere).
		if isDir(cfg.ReadyFile) {
			return fmt.Errorf("-ready-file %s is a directory", cfg.ReadyFile)
		}
		if err := os.Remove(cfg.ReadyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale -ready-file: %w", err)
		}
	}
	if cfg.HealthAddr != "" {
		stop, err := f.serveHealth()
		if err != nil {
			return err
		}
		defer stop()
	}
	f.log.Info("looking for peers", "service", cfg.ServiceName(), "self", cfg.SelfName(), "servers", cfg.Servers, "minPeers", cfg.MinPeers, "timeout", cfg.Timeout)

	wctx := ctx
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	if cfg.EtcdLeave != "" && !cfg.Watching() {
		return f.leaveOnce(ctx, wctx)
	}
	first, err := f.wait(ctx, wctx)
	peers := first.peers
	if err != nil {
		if errors.Is(err, ErrInterrupted) && cfg.Watching() {
			f.log.Info("stopped before the first run")
			return nil
		}
		return err
	}
	if cfg.EtcdJoin {
		if f.etcd, err = f.etcdJoin(ctx, wctx, peers); err != nil {
			return err
		}
	}
	if cfg.EtcdPromote {
		var wg sync.WaitGroup
		pctx, stop := context.WithCancel(ctx)
		wg.Go(func() { f.etcdPromote(pctx) })
		defer wg.Wait()
		defer stop()
	}

	err = f.apply(ctx, peers, true)
	if !cfg.Watching() {
		if err == nil {
			f.markReady(peers)
		}
		return err
	}
	var applied []Peer
	// failures counts failed lookups in a row, applyFailures failed
	// attempts to act on a change; either backs the next lookup off.
	failures, applyFailures := 0, 0
	if err != nil {
		var h *HookError
		if errors.As(err, &h) && h.Hook == "on-start" {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		f.log.Error(err, "first run failed; trying again")
		applyFailures++
	} else {
		applied = peers
		f.markReady(peers)
	}

	ttl := first.ttl
	lastSkip := ""
	for {
		if f.sleep(ctx, f.delay(ttl, max(failures, applyFailures))) != nil {
			f.log.Info("stopping")
			return nil
		}
		a, err := f.lookup(ctx)
		ttl = a.ttl
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			f.log.Error(err, "lookup failed; keeping the last peers")
			continue
		}
		failures = 0
		if why := f.check(a.peers); why != "" {
			if why != lastSkip {
				f.log.Info("ignoring a peer set", "reason", why)
			}
			lastSkip = why
			continue
		}
		lastSkip = ""
		if applied != nil && sameNames(applied, a.peers) {
			continue
		}
		f.log.Info("peers changed", "was", names(applied), "now", names(a.peers))
		if err := f.apply(ctx, a.peers, false); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			applyFailures++
			f.log.Error(err, "acting on the change failed; trying again")
			continue
		}
		applyFailures = 0
		applied = a.peers
		f.markReady(a.peers)
	}
}

// wait waits for the dependencies and then for an answer with an
// acceptable peer set.
// When wctx ends first it is a *TimeoutError naming what was missing, or
// ErrInterrupted when ctx itself ended. It asks again every -interval, not
// after the answer's TTL: the pods of a set starting together are
// published within moments of each other, and the first run waits on the
// last of them.
func (f *finder) wait(ctx, wctx context.Context) (answer, error) {
	var (
		missing  string
		logged   string
		failures int
	)
	end := func() error { return f.stopped(ctx, missing) }
	// note logs what is missing when it changes in kind (errors carry
	// changing details such as source ports), and at -v=1 every time.
	note := func(kind string) {
		if kind != logged {
			f.log.Info("waiting", "for", missing)
			logged = kind
			return
		}
		f.log.V(1).Info("waiting", "for", missing)
	}
	for pending := f.depsPending(wctx); len(pending) > 0; pending = f.depsPending(wctx) {
		missing = strings.Join(pending, "; ")
		note("deps " + missing)
		if wctx.Err() != nil || f.sleep(wctx, f.delay(0, 0)) != nil {
			return answer{}, end()
		}
	}
	for {
		a, err := f.lookup(wctx)
		var kind string
		switch {
		case errors.Is(err, ErrNoSuchService):
			failures = 0
			kind = "nxdomain"
			missing = fmt.Sprintf("no such service %s (NXDOMAIN): check -service, -ns and -domain; a headless service has no name while none of its endpoints is ready either, so if this pod is its first member, publishNotReadyAddresses looks unset", f.cfg.ServiceName())
		case err != nil:
			if wctx.Err() != nil {
				if missing == "" {
					missing = "no answer from DNS for " + f.cfg.ServiceName() + " yet: " + err.Error()
				}
				return answer{}, end()
			}
			failures++
			missing = "DNS lookups of " + f.cfg.ServiceName() + " failing: " + err.Error()
			kind = "error"
		default:
			failures = 0
			missing = f.check(a.peers)
			if missing == "" {
				return a, nil
			}
			kind = missing
		}
		note(kind)
		if f.sleep(wctx, f.delay(0, failures)) != nil {
			return answer{}, end()
		}
	}
}

// stopped is the error of a wait that ended: ErrInterrupted when ctx
// ended, with the signal if one did it, else a *TimeoutError (-timeout)
// naming what was missing.
func (f *finder) stopped(ctx context.Context, missing string) error {
	if ctx.Err() != nil {
		var sig *SignalError
		if errors.As(context.Cause(ctx), &sig) {
			return fmt.Errorf("%w: %w", ErrInterrupted, sig)
		}
		return ErrInterrupted
	}
	return &TimeoutError{After: f.cfg.Timeout.String(), Missing: missing}
}

// peers are the peers of the last successful lookup.
func (f *finder) peers() []Peer {
	if p := f.latest.Load(); p != nil {
		return *p
	}
	return nil
}

// check says why a peer set is not acceptable yet, or "".
func (f *finder) check(peers []Peer) string {
	self := f.cfg.SelfName()
	found := false
	for _, p := range peers {
		if p.Name == self {
			found = true
			break
		}
	}
	switch {
	case len(peers) == 0:
		return fmt.Sprintf("service %s answers no SRV records: a headless service needs at least one port for them", f.cfg.ServiceName())
	case !found:
		return fmt.Sprintf("own name %s is not published yet: the service lists %d peers (%s) but not this pod; if this pod is not ready, publishNotReadyAddresses looks unset on the service (a pod is not ready while its init containers run); else check that the pod's hostname and subdomain match -hostname and -service",
			self, len(peers), strings.Join(names(peers), ", "))
	case len(peers) < f.cfg.MinPeers:
		return fmt.Sprintf("fewer than -min-peers %d: found %d (%s)", f.cfg.MinPeers, len(peers), strings.Join(names(peers), ", "))
	}
	return ""
}

// depsPending lists the -wait-dns and -wait-tcp dependencies not there yet.
func (f *finder) depsPending(ctx context.Context) []string {
	var out []string
	for _, n := range f.cfg.WaitDNS {
		ok := false
		var why string
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			m, err := f.res.Exchange(ctx, n, t)
			switch {
			case err != nil:
				why = err.Error()
			case hasAddress(m):
				ok = true
			case why == "":
				why = "no A or AAAA record (" + rcodeName(m.Rcode) + ")"
			}
			if ok {
				break
			}
		}
		if !ok {
			out = append(out, "-wait-dns "+n+": "+why)
		}
	}
	for _, a := range f.cfg.WaitTCP {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := f.o.Dial(dctx, "tcp", a)
		cancel()
		if err != nil {
			out = append(out, "-wait-tcp "+a+": "+err.Error())
			continue
		}
		c.Close()
	}
	return out
}

func (f *finder) lookup(ctx context.Context) (answer, error) {
	m, err := f.res.Exchange(ctx, f.cfg.ServiceName(), dns.TypeSRV)
	if err != nil {
		f.m.lookups.WithLabelValues("error").Inc()
		return answer{}, err
	}
	a, err := parseSRV(m, f.cfg.ServiceName())
	var fresh []string
	for _, d := range a.dropped {
		if !f.dropped[d] {
			if f.dropped == nil {
				f.dropped = map[string]bool{}
			}
			f.dropped[d] = true
			fresh = append(fresh, d)
		}
	}
	if len(fresh) > 0 {
		f.log.Info("ignoring SRV targets outside the service (logged once each)", "service", f.cfg.ServiceName(), "targets", fresh)
	}
	switch {
	case errors.Is(err, ErrNoSuchService):
		f.m.lookups.WithLabelValues("nxdomain").Inc()
	case err != nil:
		f.m.lookups.WithLabelValues("error").Inc()
	default:
		f.m.lookups.WithLabelValues("ok").Inc()
		f.m.peers.Set(float64(len(a.peers)))
		f.latest.Store(&a.peers)
	}
	return a, err
}

// apply acts on a peer set: renders the template, then runs the hook
// (-on-start on the first run if there is one, else -on-change) or, with
// neither a hook nor a template, prints the peers.
func (f *finder) apply(ctx context.Context, peers []Peer, first bool) error {
	cfg := f.cfg
	d := f.data(peers)
	if cfg.tmpl != nil {
		out, err := render(cfg.tmpl, d)
		if err != nil {
			return err
		}
		if cfg.Out != "" {
			if err := writeAtomic(cfg.Out, out, 0o644); err != nil {
				return err
			}
			f.log.Info("rendered", "template", cfg.TemplateName, "out", cfg.Out, "peers", len(peers))
		} else if _, err := f.o.Stdout.Write(out); err != nil {
			return fmt.Errorf("write rendered template: %w", err)
		}
	}
	hook, name := cfg.OnChange, "on-change"
	if first && cfg.OnStart != nil {
		hook, name = cfg.OnStart, "on-start"
	}
	if hook == nil {
		if cfg.tmpl == nil {
			return f.print(d)
		}
		return nil
	}
	f.log.Info("running hook", "hook", name, "program", hook[0], "peers", names(peers))
	err := runHook(ctx, name, hook, d, f.o.Environ, f.o.Stdout, f.o.Stderr, f.o.HookGrace)
	result := "ok"
	if err != nil {
		result = "error"
	}
	f.m.hookRuns.WithLabelValues(name, result).Inc()
	return err
}

func (f *finder) print(d Data) error {
	var err error
	switch f.cfg.Format {
	case "json":
		var b []byte
		if b, err = json.MarshalIndent(d, "", "  "); err == nil {
			_, err = f.o.Stdout.Write(append(b, '\n'))
		}
	default:
		_, err = io.WriteString(f.o.Stdout, peerLines(d))
	}
	if err != nil {
		return fmt.Errorf("print peers: %w", err)
	}
	return nil
}

func (f *finder) data(peers []Peer) Data {
	return Data{
		Self:      f.cfg.SelfName(),
		Host:      f.cfg.Hostname,
		Ordinal:   ordinalOf(f.cfg.Hostname),
		Service:   f.cfg.Service,
		Namespace: f.cfg.Namespace,
		Domain:    f.cfg.Domain,
		Peers:     peers,
		Etcd:      f.etcd,
	}
}

func (f *finder) markReady(peers []Peer) {
	if f.ready.Load() {
		return
	}
	if f.cfg.ReadyFile != "" {
		if err := writeAtomic(f.cfg.ReadyFile, []byte(peerLines(f.data(peers))), 0o644); err != nil {
			f.log.Error(err, "writing -ready-file")
			return
		}
	}
	f.ready.Store(true)
	f.m.ready.Set(1)
	f.log.Info("ready", "peers", len(peers))
}

func (f *finder) serveHealth() (func(), error) {
	ln, err := net.Listen("tcp", f.cfg.HealthAddr)
	if err != nil {
		return nil, fmt.Errorf("-health-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !f.ready.Load() {
			http.Error(w, "no successful run yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(f.m.reg, promhttp.HandlerOpts{}))
	if f.cfg.EtcdLeave != "" {
		mux.HandleFunc("GET /etcd/leave", f.serveLeave)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	f.log.Info("serving health", "addr", ln.Addr().String())
	if f.o.Listening != nil {
		f.o.Listening(ln.Addr())
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// sleep pauses for d, or until ctx ends (then its error).
func (f *finder) sleep(ctx context.Context, d time.Duration) error { return f.o.sleep(ctx, d) }

// delay is the pause before the next lookup: the answer's TTL, but at least
// -interval; after failures, -interval doubled for each; at most
// -max-interval; plus up to a fifth more at random, so that the members of
// a set do not ask in step.
func (f *finder) delay(ttl uint32, failures int) time.Duration {
	d := f.cfg.Interval
	if failures > 0 {
		d <<= min(failures-1, 20)
	} else if t := time.Duration(ttl) * time.Second; t > d {
		d = t
	}
	if d > f.cfg.MaxInterval || d <= 0 {
		d = f.cfg.MaxInterval
	}
	return d + time.Duration(f.o.Jitter()*float64(d)/5)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func names(peers []Peer) []string { return Data{Peers: peers}.Names() }

func sameNames(a, b []Peer) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}
