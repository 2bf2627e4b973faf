package test

import (
	"net"
	"regexp"
	"strings"
)

var (
	keyPort     = regexp.MustCompile(`:\d+\b`)
	listenPlug  = regexp.MustCompile(`^(\s*)(health|ready|prometheus|pprof)\b(\s+\S*:\d+)?`)
	resolvConf  = regexp.MustCompile(`/etc/resolv\.conf`)
	kubeconfigL = regexp.MustCompile(`^(\s*)kubeconfig\s+.*$`)
	sourcePlug  = regexp.MustCompile(`^(\s*)(headless|kubernetes)\b([^{]*)(\{?)\s*$`)
)

// Localize makes a Corefile safe to start in a test: servers listen on
// ephemeral loopback ports, health/ready/metrics too, nothing is forwarded
// off this machine, and plugins that need a cluster get a kubeconfig for
// an API server that is not there (tests here run without one).
func Localize(body, kubeconfig string) string {
	var out []string
	lines := strings.Split(body, "\n")
	depth := 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if depth == 0 && strings.HasSuffix(trimmed, "{") && !strings.HasPrefix(trimmed, "#") {
			keys := strings.Fields(strings.TrimSuffix(trimmed, "{"))
			for j, k := range keys {
				if keyPort.MatchString(k) {
					keys[j] = keyPort.ReplaceAllString(k, ":0")
				} else {
					keys[j] = k + ":0"
				}
			}
			line = strings.Join(keys, " ") + " {"
		}
		line = listenPlug.ReplaceAllStringFunc(line, func(m string) string {
			g := listenPlug.FindStringSubmatch(m)
			// health probes its own address, so it needs a real port.
			return g[1] + g[2] + " " + loopbackAddr(g[2] == "health")
		})
		line = resolvConf.ReplaceAllString(line, "127.0.0.1:9")
		line = kubeconfigL.ReplaceAllString(line, "${1}kubeconfig "+kubeconfig)
		if m := sourcePlug.FindStringSubmatch(line); m != nil && depth > 0 && !hasSource(lines[i+1:], m[4] == "{") {
			if m[4] == "{" {
				line += "\n" + m[1] + "    kubeconfig " + kubeconfig
			} else {
				line = m[1] + m[2] + m[3] + " {\n" + m[1] + "    kubeconfig " + kubeconfig + "\n" + m[1] + "}"
			}
		}
		depth += strings.Count(trimmed, "{") - strings.Count(trimmed, "}")
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// hasSource reports whether the block that starts after an opening line
// names its own source (manifests, kubeconfig or an API endpoint).
func hasSource(rest []string, open bool) bool {
	if !open {
		return false
	}
	for _, l := range rest {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if f[0] == "}" {
			return false
		}
		switch f[0] {
		case "manifests", "kubeconfig", "endpoint":
			return true
		}
	}
	return false
}

// loopbackAddr is 127.0.0.1 with a free port when real is set, else with
// port 0 (the kernel picks one when the plugin listens).
func loopbackAddr(real bool) string {
	if !real {
		return "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}
