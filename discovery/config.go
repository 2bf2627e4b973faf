package discovery

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Config is a parsed and validated command line.
type Config struct {
	Service   string
	Namespace string
	Domain    string
	Hostname  string   // this pod's hostname: one DNS label
	Servers   []string // DNS servers, host:port

	OnStart  []string // program and arguments, or nil
	OnChange []string

	Timeout     time.Duration // 0: wait for ever
	MinPeers    int
	WaitDNS     []string
	WaitTCP     []string
	Interval    time.Duration // the shortest pause between lookups
	MaxInterval time.Duration // the longest

	TemplateName string // the -template value
	Out          string // "" writes the rendered template to standard output
	Format       string // lines or json: what is printed when nothing else is asked
	Watch        bool   // keep watching after the first run (implied by OnChange)

	ReadyFile  string
	HealthAddr string
	Verbosity  int // klog's -v

	// etcd membership (etcd.go): -etcd-join in the init container,
	// -etcd-promote and -etcd-leave in the sidecar.
	EtcdJoin          bool
	EtcdPromote       bool
	EtcdLeave         string // KIND/NAME of the set, or ""
	EtcdDataDir       string
	ServiceAccountDir string

	tmpl *template.Template
}

// Watching reports whether peer-finder keeps running after the first run.
func (c *Config) Watching() bool { return c.Watch || len(c.OnChange) > 0 }

// SelfName is this pod's fully qualified name.
func (c *Config) SelfName() string {
	return c.Hostname + "." + c.ServiceName()
}

// ServiceName is the name peer-finder asks SRV records of.
func (c *Config) ServiceName() string {
	return c.Service + "." + c.Namespace + ".svc." + c.Domain
}

// Environment is what ParseFlags reads besides the arguments.
type Environment struct {
	Getenv   func(string) string
	Hostname func() (string, error)
	Stderr   io.Writer // usage and -version
	Stdout   io.Writer
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// ErrVersion is returned by ParseFlags after printing the version for
// -version: the caller exits 0.
var ErrVersion = errors.New("version printed")

// ParseFlags parses and checks peer-finder's command line. Every problem is
// a *UsageError (exit status 2) that names the flag. -help returns
// flag.ErrHelp and -version ErrVersion, after printing; both exit 0.
func ParseFlags(args []string, env Environment) (*Config, error) {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Hostname == nil {
		env.Hostname = os.Hostname
	}
	if env.Stderr == nil {
		env.Stderr = os.Stderr
	}
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	fs := flag.NewFlagSet("peer-finder", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, and printed once by the caller
	var (
		c                 Config
		onStart, onChange string
		dnsServer         string
		resolvConf        string
		waitDNS, waitTCP  listFlag
		version           bool
	)
	fs.StringVar(&onStart, "on-start", "", "program and arguments to run once the peers are known (split into words like a shell's, with quotes and backslashes, but nothing expanded and no shell run), with the peers on its standard input, one fully qualified name a line; with no -on-change, peer-finder exits with its status")
	fs.StringVar(&onChange, "on-change", "", "program and arguments (split as for -on-start) to run on start (unless -on-start is given) and on every change of the peers; peer-finder keeps watching")
	fs.StringVar(&c.Service, "service", "", "the governing headless service (required)")
	fs.StringVar(&c.Namespace, "ns", "", "the namespace; default $POD_NAMESPACE")
	fs.StringVar(&c.Domain, "domain", "", "the cluster domain; default from the svc.<domain> search entry of -resolv-conf, else "+DefaultDomain)
	fs.StringVar(&c.Hostname, "hostname", "", "this pod's hostname; default the host's name up to its first dot")
	fs.StringVar(&dnsServer, "dns-server", "", "DNS server host:port to ask; default the nameservers of -resolv-conf")
	fs.StringVar(&resolvConf, "resolv-conf", "/etc/resolv.conf", "resolver configuration for the default DNS servers and domain")
	fs.DurationVar(&c.Timeout, "timeout", 0, "give up after this long (exit status 3), naming what was missing; 0 waits for ever")
	fs.IntVar(&c.MinPeers, "min-peers", 1, "wait until at least this many peers, this pod included, are published")
	fs.Var(&waitDNS, "wait-dns", "also wait until this fully qualified NAME has an A or AAAA record (repeatable)")
	fs.Var(&waitTCP, "wait-tcp", "also wait until HOST:PORT accepts TCP connections (repeatable)")
	fs.DurationVar(&c.Interval, "interval", time.Second, "the pause between lookups while waiting for this pod and -min-peers; after the first run the shortest, longer when the answer's TTL is")
	fs.DurationVar(&c.MaxInterval, "max-interval", 30*time.Second, "the longest pause between lookups, TTLs and back-off included")
	fs.StringVar(&c.TemplateName, "template", "", "Go text/template FILE to render from the peers, or builtin:etcd, builtin:zookeeper, builtin:json")
	fs.StringVar(&c.Out, "out", "", "write the rendered -template to this FILE, atomically; default standard output")
	fs.StringVar(&c.Format, "format", "lines", "with no hook and no -template, print the peers as lines (one name each) or json")
	fs.BoolVar(&c.Watch, "watch", false, "keep watching and re-render -template on every change, even without -on-change")
	fs.StringVar(&c.ReadyFile, "ready-file", "", "create this file after the first successful run (readiness for a sidecar)")
	fs.StringVar(&c.HealthAddr, "health-addr", "", "serve /healthz, /readyz (200 after the first successful run) and /metrics on this address, such as :8080")
	fs.BoolVar(&c.EtcdJoin, "etcd-join", false, "before the first run, join the etcd cluster of the peers' client ports, or bootstrap one with the first -min-peers peers; builtin:etcd renders the result (an init container; see README)")
	fs.BoolVar(&c.EtcdPromote, "etcd-promote", false, "with -watch or -on-change: promote this pod's etcd member from learner to voting member once it has caught up")
	fs.StringVar(&c.EtcdLeave, "etcd-leave", "", "petset/NAME or statefulset/NAME: remove this pod's etcd member when a scale-down of that set removed its ordinal; a watching peer-finder does it on GET /etcd/leave of -health-addr (the etcd container's preStop hook), a run-once one at once")
	fs.StringVar(&c.EtcdDataDir, "etcd-data-dir", "/var/lib/etcd", "etcd's data-dir, mounted in the -etcd-join init container")
	fs.StringVar(&c.ServiceAccountDir, "service-account-dir", DefaultServiceAccountDir, "the service account token and CA that -etcd-leave reads the set with")
	fs.IntVar(&c.Verbosity, "v", 0, "log verbosity; 1 logs every lookup that keeps it waiting and every TCP retry")
	fs.BoolVar(&version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: peer-finder -service NAME [flags]\n\nFinds the peers of this pod through the SRV records of its headless service.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(env.Stderr)
			fs.Usage()
			return nil, err
		}
		return nil, &UsageError{Err: fmt.Errorf("%w (see -help)", err)}
	}
	if version {
		fmt.Fprintln(env.Stdout, "peer-finder", Version)
		return nil, ErrVersion
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q: hooks take their arguments inside the flag's value, such as -on-start '/bin/hook --flag'", fs.Arg(0))
	}
	c.WaitDNS, c.WaitTCP = waitDNS, waitTCP

	if c.Service == "" {
		return nil, usagef("-service is required: the name of the governing headless service")
	}
	if errs := validation.IsDNS1123Label(c.Service); len(errs) > 0 {
		return nil, usagef("-service %q is not a DNS label: %s", c.Service, strings.Join(errs, "; "))
	}
	if c.Namespace == "" {
		c.Namespace = env.Getenv("POD_NAMESPACE")
	}
	if c.Namespace == "" {
		return nil, usagef("-ns is required when $POD_NAMESPACE is not set")
	}
	if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
		return nil, usagef("-ns %q is not a DNS label: %s", c.Namespace, strings.Join(errs, "; "))
	}
	if c.Hostname == "" {
		h, err := env.Hostname()
		if err != nil {
			return nil, usagef("hostname: %w; set -hostname", err)
		}
		c.Hostname, _, _ = strings.Cut(h, ".")
	}
	if errs := validation.IsDNS1123Label(c.Hostname); len(errs) > 0 {
		return nil, usagef("-hostname %q is not a DNS label: %s", c.Hostname, strings.Join(errs, "; "))
	}

	// resolv.conf is read only for what the flags leave open.
	if c.Domain == "" || dnsServer == "" {
		f, err := os.Open(resolvConf)
		var rc ResolvConf
		if err == nil {
			rc, err = ParseResolvConf(f)
			f.Close()
		}
		switch {
		case err != nil && dnsServer == "":
			return nil, usagef("-resolv-conf: %w; give -dns-server", err)
		case err == nil && dnsServer == "":
			if len(rc.Servers) == 0 {
				return nil, usagef("-resolv-conf %s names no nameserver; give -dns-server", resolvConf)
			}
			c.Servers = rc.Servers
		}
		if c.Domain == "" {
			c.Domain = rc.Domain()
		}
		if c.Domain == "" {
			c.Domain = DefaultDomain
		}
	}
	c.Domain = strings.TrimSuffix(c.Domain, ".")
	if errs := validation.IsDNS1123Subdomain(c.Domain); len(errs) > 0 {
		return nil, usagef("-domain %q is not a DNS name: %s", c.Domain, strings.Join(errs, "; "))
	}
	if dnsServer != "" {
		s := withPort(dnsServer)
		if h, _, err := net.SplitHostPort(s); err != nil || h == "" || strings.ContainsAny(h, "[]") {
			return nil, usagef("-dns-server %q: want HOST:PORT or HOST", dnsServer)
		}
		c.Servers = []string{s}
	}

	var err error
	if c.OnStart, err = hookArgs("on-start", onStart); err != nil {
		return nil, err
	}
	if c.OnChange, err = hookArgs("on-change", onChange); err != nil {
		return nil, err
	}
	if c.Timeout < 0 {
		return nil, usagef("-timeout %v is negative", c.Timeout)
	}
	if c.MinPeers < 1 {
		return nil, usagef("-min-peers %d: at least 1 (this pod)", c.MinPeers)
	}
	if c.Interval <= 0 || c.MaxInterval < c.Interval {
		return nil, usagef("-interval %v and -max-interval %v: need 0 < interval <= max-interval", c.Interval, c.MaxInterval)
	}
	for _, n := range c.WaitDNS {
		if _, ok := dns.IsDomainName(n); !ok || n == "" || n == "." {
			return nil, usagef("-wait-dns %q is not a DNS name", n)
		}
		if dns.CountLabel(n) < 2 {
			return nil, usagef("-wait-dns %q: give a fully qualified name, such as %s.%s.svc.%s (the search list is not applied)", n, strings.TrimSuffix(n, "."), c.Namespace, c.Domain)
		}
	}
	for _, a := range c.WaitTCP {
		if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
			return nil, usagef("-wait-tcp %q: want HOST:PORT", a)
		}
	}
	switch c.Format {
	case "lines", "json":
	default:
		return nil, usagef("-format %q: want lines or json", c.Format)
	}
	if c.TemplateName != "" {
		if c.tmpl, err = loadTemplate(c.TemplateName); err != nil {
			return nil, &UsageError{Err: fmt.Errorf("-template: %w", err)}
		}
	}
	if c.Out != "" {
		if c.tmpl == nil {
			return nil, usagef("-out %s needs -template", c.Out)
		}
		if isDir(c.Out) {
			return nil, usagef("-out %s is a directory: give a file name", c.Out)
		}
		dir := filepath.Dir(c.Out)
		if st, err := os.Stat(dir); err != nil {
			return nil, usagef("-out %s: directory %s: %w", c.Out, dir, err)
		} else if !st.IsDir() {
			return nil, usagef("-out %s: %s is not a directory", c.Out, dir)
		}
	}
	if c.ReadyFile != "" {
		if isDir(c.ReadyFile) {
			return nil, usagef("-ready-file %s is a directory: give a file name", c.ReadyFile)
		}
		dir := filepath.Dir(c.ReadyFile)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, usagef("-ready-file %s: directory %s does not exist", c.ReadyFile, dir)
		}
	}
	if c.HealthAddr != "" {
		_, port, err := net.SplitHostPort(c.HealthAddr)
		if err != nil {
			return nil, usagef("-health-addr %q: %w", c.HealthAddr, err)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, usagef("-health-addr %q: port %s is not a number from 0 to 65535", c.HealthAddr, port)
		}
	}
	if err := c.checkEtcd(); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkEtcd checks the etcd flags against each other and the rest.
func (c *Config) checkEtcd() error {
	if c.EtcdJoin {
		if c.Watching() {
			return usagef("-etcd-join is for the init container: not with -watch or -on-change")
		}
		if !isDir(c.EtcdDataDir) {
			return usagef("-etcd-join: -etcd-data-dir %s is not a directory: mount etcd's data volume there, so that a member with data is told from one without", c.EtcdDataDir)
		}
	}
	if c.EtcdPromote && !c.Watching() {
		return usagef("-etcd-promote is for the sidecar: it needs -watch or -on-change")
	}
	if c.EtcdLeave == "" {
		return nil
	}
	if _, _, err := parseSetRef(c.EtcdLeave); err != nil {
		return usagef("-etcd-leave: %w", err)
	}
	if ordinalOf(c.Hostname) < 0 {
		return usagef("-etcd-leave: hostname %s has no ordinal to compare with the set's", c.Hostname)
	}
	switch {
	case c.Watching() && c.HealthAddr == "":
		return usagef("-etcd-leave in a watching peer-finder serves /etcd/leave on -health-addr: give one")
	case !c.Watching() && (c.EtcdJoin || c.tmpl != nil || c.OnStart != nil):
		return usagef("-etcd-leave without -watch leaves and exits: not with -etcd-join, -template or -on-start")
	}
	return nil
}

// isDir reports whether path names an existing directory (through
// symbolic links).
func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// hookArgs splits a hook flag into a program and its arguments as a shell
// splits words (quotes and backslashes, see splitWords), without expanding
// anything and without running a shell, and checks that the program can
// run. -on-start="/work-dir/on-start.sh", whose quotes reach peer-finder
// from a YAML args list, names /work-dir/on-start.sh.
func hookArgs(name, value string) ([]string, error) {
	args, err := splitWords(value)
	if err != nil {
		return nil, usagef("-%s: %w in %q", name, err, value)
	}
	if len(args) == 0 {
		if value != "" {
			return nil, usagef("-%s is blank", name)
		}
		return nil, nil
	}
	if args[0] == "" {
		return nil, usagef("-%s: empty program name in %q", name, value)
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		return nil, usagef("-%s: %w", name, err)
	}
	return args, nil
}
