package headless

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/go-logr/logr"
	"github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"
)

func init() { plugin.Register(pluginName, setup) }

var klogOnce sync.Once

const (
	defaultTTL    = 5
	defaultNegTTL = 5
	maxTTL        = 3600
	// defaultReload is how often manifest files are checked for changes.
	defaultReload = 2 * time.Second
	// startupWait is how long CoreDNS's start waits for the first sync.
	// Until then the plugin answers SERVFAIL for the names it may own.
	startupWait = 5 * time.Second
)

func setup(c *caddy.Controller) error {
	h, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	if _, ok := h.src.(*kubeSource); ok {
		// Route client-go's logs into CoreDNS's, once per process: a
		// reload must not swap klog's logger under running informers.
		// Never klog.InitFlags here: it panics on reload.
		klogOnce.Do(func() { klog.SetLogger(logr.New(klogSink{})) })
	}

	c.OnStartup(func() error {
		// The kubernetes plugin of the same server block is set up by
		// now; its endpoint_pod_names applies here too, so that both
		// name an endpoint alike.
		if k, ok := dnsserver.GetConfig(c).Handler("kubernetes").(*kubernetes.Kubernetes); ok && k != nil && !h.cfg.podNames {
			on, err := newKubeProbe(k).podNames()
			if err != nil {
				return plugin.Error(pluginName, err)
			}
			if on {
				h.setPodNames()
				log.Infof("Naming endpoints without a hostname after their pods, as the kubernetes plugin's endpoint_pod_names does")
			}
		}
		kube, err := newKubeNX(h.Next, h.zones, h.reverse, h.flat)
		if err != nil {
			return plugin.Error(pluginName, err)
		}
		if h.kube = kube; kube != nil {
			log.Infof("Answering NXDOMAIN for services the kubernetes plugin does not have, as it would")
		}
		if ks, ok := h.src.(*kubeSource); ok {
			ks.podNames = h.cfg.podNames
		}
		if err := h.src.start(h.publish); err != nil {
			return plugin.Error(pluginName, err)
		}
		deadline := time.Now().Add(startupWait)
		for !h.Ready() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !h.Ready() {
			log.Warningf("Not synced after %s; answering SERVFAIL for headless names until synced", startupWait)
		}
		return nil
	})
	c.OnShutdown(func() error {
		h.src.stop()
		return nil
	})

	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		h.Next = next
		return h
	})
	return nil
}

// parse reads one headless stanza (README.md's Syntax).
func parse(c *caddy.Controller) (*Headless, error) {
	var h *Headless
	for c.Next() {
		if h != nil {
			return nil, plugin.ErrOnce
		}
		h = &Headless{}
		zones := plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		ttl, negTTL := uint32(defaultTTL), uint32(defaultNegTTL)
		var (
			kubeconfig, kubecontext string
			manifests               []string
			reload                  = defaultReload
			reloadSet               bool
			namespaces              []string
			sourceSet               bool
			podNames                bool
		)
		for c.NextBlock() {
			opt := c.Val()
			args := c.RemainingArgs()
			var err error
			switch opt {
			case "kubeconfig":
				if len(args) < 1 || len(args) > 2 {
					return nil, c.ArgErr()
				}
				if sourceSet {
					return nil, c.Errf("only one of kubeconfig and manifests may be given")
				}
				sourceSet = true
				kubeconfig = args[0]
				if len(args) == 2 {
					kubecontext = args[1]
				}
			case "manifests":
				if len(args) == 0 {
					return nil, c.ArgErr()
				}
				if sourceSet {
					return nil, c.Errf("only one of kubeconfig and manifests may be given")
				}
				sourceSet = true
				manifests = args
			case "reload":
				if len(args) != 1 {
					return nil, c.ArgErr()
				}
				reload, err = time.ParseDuration(args[0])
				if err != nil || reload < 0 {
					return nil, c.Errf("reload: want a duration such as 2s, or 0 to turn it off, got %q", args[0])
				}
				reloadSet = true
			case "namespaces":
				if len(args) == 0 {
					return nil, c.ArgErr()
				}
				for _, ns := range args {
					if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
						return nil, c.Errf("namespaces: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
					}
				}
				namespaces = append(namespaces, args...)
			case "ttl":
				if ttl, err = seconds(c, opt, args); err != nil {
					return nil, err
				}
			case "negative_ttl":
				if negTTL, err = seconds(c, opt, args); err != nil {
					return nil, err
				}
			case "endpoint_pod_names":
				if len(args) != 0 {
					return nil, c.ArgErr()
				}
				podNames = true
			case "fallthrough":
				h.Fall.SetZonesFromArgs(args)
			default:
				return nil, c.Errf("unknown property %q", opt)
			}
		}
		if reloadSet && manifests == nil {
			return nil, c.Errf("reload only applies to manifests")
		}
		if err := h.configure(zones, ttl, negTTL); err != nil {
			return nil, c.Errf("%v", err)
		}
		if podNames {
			h.setPodNames()
		}

		if manifests != nil {
			src := &manifestSource{paths: manifests, reload: reload, namespaces: map[string]bool{}}
			for _, ns := range namespaces {
				src.namespaces[ns] = true
			}
			if err := src.load(); err != nil {
				return nil, c.Errf("manifests: %v", err)
			}
			h.src = src
			continue
		}
		cfg, err := restConfig(kubeconfig, kubecontext)
		if err != nil {
			if kubeconfig == "" {
				return nil, c.Errf("no kubeconfig or manifests given, and no in-cluster configuration: %v", err)
			}
			return nil, c.Errf("kubeconfig %s: %v", kubeconfig, err)
		}
		h.src = &kubeSource{config: cfg, namespaces: namespaces}
	}
	if h == nil {
		return nil, errors.New("no headless stanza")
	}
	return h, nil
}

// configure sets the zones and TTLs and prepares what ServeDNS needs.
func (h *Headless) configure(zones []string, ttl, negTTL uint32) error {
	h.negTTL = negTTL
	h.cfg = config{ttl: ttl}
	for _, z := range zones {
		z = strings.ToLower(dns.Fqdn(z))
		h.zones = append(h.zones, z)
		rev := dns.IsSubDomain("in-addr.arpa.", z) || dns.IsSubDomain("ip6.arpa.", z)
		h.reverse = append(h.reverse, rev)
		if rev {
			h.cfg.reverse = append(h.cfg.reverse, z)
		} else {
			h.cfg.forward = append(h.cfg.forward, z)
		}
	}
	if len(h.cfg.forward) == 0 {
		return fmt.Errorf("zones %s: at least one zone must be a forward zone (such as cluster.local)", strings.Join(zones, " "))
	}
	for i, z := range h.zones {
		h.soa = append(h.soa, newSOA(z, h.cfg.forward[0], negTTL))
		h.flat = append(h.flat, h.reverse[i] || flatZone(z, h.zones))
	}
	h.builder = newBuilder(h.cfg)
	return nil
}

// seconds parses a TTL option: one whole number of seconds, 0 to maxTTL.
func seconds(c *caddy.Controller, opt string, args []string) (uint32, error) {
	if len(args) != 1 {
		return 0, c.ArgErr()
	}
	n, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil || n > maxTTL {
		return 0, c.Errf("%s: want whole seconds from 0 to %d, got %q", opt, maxTTL, args[0])
	}
	return uint32(n), nil
}

// setPodNames turns on endpoint_pod_names. Only before the first build.
func (h *Headless) setPodNames() {
	h.cfg.podNames = true
	h.builder.cfg.podNames = true
}
