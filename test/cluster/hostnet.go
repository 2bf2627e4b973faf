package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// The real node's network, all of it on this machine: the node's address
// is a /32 of its own on lo (the kubelet refuses loopback addresses, and
// nothing outside routes to it), pods get addresses of PodCIDR on the
// bridge PodBridge with no masquerade, and the guard rules below drop
// whatever would still leave the machine.
const (
	// NodeIP is the real node's address: the kubelet, kube-proxy, the API
	// server and the stub resolver listen on it.
	NodeIP = "10.89.0.1"
	// PodCIDR is the real node's pod range.
	PodCIDR = "10.88.0.0/16"
	// PodBridge is the bridge the real node's pods are on.
	PodBridge = "petset0"
	// ServiceCIDR is the cluster's ClusterIP range.
	ServiceCIDR = "10.96.0.0/16"
	// KwokCIDR is the range kwok gives its pods: only ever returned in
	// answers, never contacted.
	KwokCIDR = "10.244.0.0/16"
	// guardChain holds the guard rules, in the mangle table, where
	// kube-proxy puts nothing.
	guardChain = "PETSET-TESTBED-GUARD"
)

// guardRules drop, after routing and any DNAT, a packet from a pod that
// would leave by another interface than the pods' bridge, and any packet
// to a kwok pod or to a ClusterIP kube-proxy did not translate. Packets
// from pods to the node's own address are delivered locally and never
// reach POSTROUTING.
var guardRules = [][]string{
	{"-s", PodCIDR, "!", "-o", PodBridge, "-j", "DROP"},
	{"-d", KwokCIDR, "-j", "DROP"},
	{"-d", ServiceCIDR, "-j", "DROP"},
}

// hostNet is what setUpHostNet changed on this machine, so that tearDown
// undoes exactly that. It is saved as JSON while the node runs.
type hostNet struct {
	AddedIP      bool     `json:"addedIP"`
	IPForward    string   `json:"ipForward"` // net.ipv4.ip_forward before, restored on teardown
	Guard        bool     `json:"guard"`
	Blackhole    bool     `json:"blackhole"`
	CreatedPaths []string `json:"createdPaths"` // host paths the node's components use whatever their configuration says
	NftTables    []string `json:"nftTables"`    // the nftables tables there were (iptables-nft makes them)
}

// hostPaths are the paths the kubelet, containerd and the CNI plugins use
// whatever their configuration says; those that did not exist before the
// node started are removed after it stops.
var hostPaths = []string{
	"/var/lib/kubelet", "/var/lib/cni", "/var/log/containers", "/var/log/pods",
	"/run/containerd", "/run/netns",
}

func setUpHostNet() (*hostNet, error) {
	h := &hostNet{}
	for _, p := range hostPaths {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			h.CreatedPaths = append(h.CreatedPaths, p)
		}
	}
	h.NftTables = nftTables()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return h, err
	}
	h.IPForward = strings.TrimSpace(string(b))
	if out, err := exec.Command("ip", "-4", "addr", "show", "dev", "lo").Output(); err != nil {
		return h, fmt.Errorf("ip addr show dev lo: %w", err)
	} else if !bytes.Contains(out, []byte(" "+NodeIP+"/32 ")) {
		if err := run("ip", "addr", "add", NodeIP+"/32", "dev", "lo"); err != nil {
			return h, err
		}
		h.AddedIP = true
	}
	if err := run("ip", "route", "replace", "blackhole", KwokCIDR); err != nil {
		return h, err
	}
	h.Blackhole = true
	// A chain left by a run that died is flushed and used again.
	if exec.Command("iptables", "-t", "mangle", "-N", guardChain).Run() != nil {
		if err := run("iptables", "-t", "mangle", "-F", guardChain); err != nil {
			return h, err
		}
		for exec.Command("iptables", "-t", "mangle", "-D", "POSTROUTING", "-j", guardChain).Run() == nil {
		}
	}
	h.Guard = true
	for _, r := range guardRules {
		if err := run("iptables", append([]string{"-t", "mangle", "-A", guardChain}, r...)...); err != nil {
			return h, err
		}
	}
	if err := run("iptables", "-t", "mangle", "-I", "POSTROUTING", "1", "-j", guardChain); err != nil {
		return h, err
	}
	return h, nil
}

// tearDown undoes setUpHostNet and removes what the node's components
// left in the host's network: the bridge, kube-proxy's and the CNI
// plugins' chains, network namespaces of pods.
func (h *hostNet) tearDown() error {
	var errs []error
	try := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	try(removeChains())
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "cni-") {
				try(run("ip", "netns", "delete", e.Name()))
			}
		}
	}
	if exec.Command("ip", "link", "show", PodBridge).Run() == nil {
		try(run("ip", "link", "delete", PodBridge))
	}
	if h.Guard {
		for exec.Command("iptables", "-t", "mangle", "-D", "POSTROUTING", "-j", guardChain).Run() == nil {
		}
		try(run("iptables", "-t", "mangle", "-F", guardChain))
		try(run("iptables", "-t", "mangle", "-X", guardChain))
	}
	if h.Blackhole {
		try(run("ip", "route", "del", "blackhole", KwokCIDR))
	}
	if h.AddedIP {
		try(run("ip", "addr", "del", NodeIP+"/32", "dev", "lo"))
	}
	if h.IPForward != "" {
		try(os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte(h.IPForward), 0o644))
	}
	for _, p := range h.CreatedPaths {
		try(os.RemoveAll(p))
	}
	// Tables iptables-nft made for the rules above, now without any.
	for _, t := range nftTables() {
		if slices.Contains(h.NftTables, t) {
			continue
		}
		f := strings.Fields(t) // family and name
		if out, err := exec.Command("nft", "list", "table", f[0], f[1]).Output(); err == nil && !nftHasRules(string(out)) {
			try(run("nft", "delete", "table", f[0], f[1]))
		}
	}
	return errors.Join(errs...)
}

// nftTables lists nftables' tables as "family name".
func nftTables() []string {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return nil
	}
	var tables []string
	for _, line := range strings.Split(string(out), "\n") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(line), "table "); ok {
			tables = append(tables, t)
		}
	}
	return tables
}

// nftHasRules reports whether a listed table holds anything but chains
// and their policies.
func nftHasRules(table string) bool {
	for _, line := range strings.Split(table, "\n") {
		l := strings.TrimSpace(line)
		if l == "" || l == "}" || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "chain ") || strings.HasPrefix(l, "type ") {
			continue
		}
		return true
	}
	return false
}

// removeChains deletes the chains kube-proxy and the CNI plugins made
// (KUBE-*, CNI-*), in every table of iptables and ip6tables, and the
// rules that jump to them.
func removeChains() error {
	var errs []error
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			out, err := exec.Command(cmd+"-save", "-t", table).Output()
			if err != nil {
				continue // no such table
			}
			var chains []string
			for _, line := range strings.Split(string(out), "\n") {
				if name, ok := strings.CutPrefix(line, ":"); ok {
					name, _, _ = strings.Cut(name, " ")
					if strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "CNI-") {
						chains = append(chains, name)
					}
				}
			}
			// Rules in the built-in chains that jump to them, then
			// the chains themselves, flushed first.
			for _, line := range strings.Split(string(out), "\n") {
				rule, ok := strings.CutPrefix(line, "-A ")
				if !ok {
					continue
				}
				chain, _, _ := strings.Cut(rule, " ")
				if isOurs(chain) || !jumpsToOurs(rule) {
					continue
				}
				args := append([]string{"-t", table, "-D"}, splitRule(rule)...)
				if err := run(cmd, args...); err != nil {
					errs = append(errs, err)
				}
			}
			for _, c := range chains {
				exec.Command(cmd, "-t", table, "-F", c).Run()
			}
			for _, c := range chains {
				if err := run(cmd, "-t", table, "-X", c); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func isOurs(chain string) bool {
	return strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(chain, "CNI-")
}

func jumpsToOurs(rule string) bool {
	f := strings.Fields(rule)
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && isOurs(f[i+1]) {
			return true
		}
	}
	return false
}

// splitRule splits an iptables-save rule into arguments, keeping quoted
// comments whole.
func splitRule(rule string) []string {
	var out []string
	var cur strings.Builder
	quoted, have := false, false
	for _, r := range rule {
		switch {
		case r == '"':
			quoted, have = !quoted, true
		case r == ' ' && !quoted:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// unmountUnder unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, unescapeMount(f[4]))
		}
	}
	// Deepest first: a path below another is longer.
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := run("umount", "-l", p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// run runs a command, its output in the error if it fails.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
