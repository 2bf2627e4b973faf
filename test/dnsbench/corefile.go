package dnsbench

import (
	"fmt"
	"strings"
)

// The contenders, in the order they run.
const (
	HeadlessKubernetes = "headless+kubernetes"
	Kubernetes         = "kubernetes"
	Whoami             = "whoami"
)

// Contenders is every contender in running order.
var Contenders = []string{HeadlessKubernetes, Kubernetes, Whoami}

// Ports are where a contender listens, all on 127.0.0.1.
type Ports struct {
	DNS, Health, Ready, Metrics int
}

// CorefileOptions adapt the shipped Corefile to one contender.
type CorefileOptions struct {
	Contender  string
	Ports      Ports
	Kubeconfig string
	// NoCache drops the cache plugin, so every answer comes from the
	// plugin under test rather than from the cache in front of it.
	NoCache bool
}

// AdaptCorefile turns corefile/cluster.Corefile (one server block) into a
// contender's Corefile. What changes, and nothing else:
//   - the server listens on 127.0.0.1 only, on Ports.DNS (a bind line);
//     health, ready and prometheus on 127.0.0.1 and their own ports;
//   - forward sends to 127.0.0.1:9 instead of /etc/resolv.conf, so nothing
//     leaves this machine (the benchmark asks no name outside the zone;
//     loop's probe is the only query that gets there, and it finds
//     nothing listening);
//   - headless and kubernetes read the testbed through Kubeconfig;
//   - "kubernetes" drops the headless block; "whoami" drops headless,
//     kubernetes and forward (which would answer everything before
//     whoami) and puts whoami in their place;
//   - with NoCache, the cache line goes.
func AdaptCorefile(shipped string, o CorefileOptions) (string, error) {
	switch o.Contender {
	case HeadlessKubernetes, Kubernetes, Whoami:
	default:
		return "", fmt.Errorf("unknown contender %q", o.Contender)
	}
	lines := strings.Split(shipped, "\n")
	var out []string
	depth := 0
	skip := 0 // depth at which a dropped block ends; 0 when not dropping
	servers := 0
	for _, line := range lines {
		trimmed := strings.TrimSpace(line)
		opens, closes := strings.Count(trimmed, "{"), strings.Count(trimmed, "}")
		if strings.HasPrefix(trimmed, "#") {
			opens, closes = 0, 0
		}
		if skip > 0 {
			depth += opens - closes
			if depth < skip {
				skip = 0
			}
			continue
		}
		fields := strings.Fields(trimmed)
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		switch {
		case depth == 0 && opens > 0:
			servers++
			if servers > 1 {
				return "", fmt.Errorf("the shipped Corefile has more than one server block")
			}
			line = fmt.Sprintf(".:%d {\n    bind 127.0.0.1", o.Ports.DNS)
		case depth == 1 && len(fields) > 0:
			drop := false
			switch fields[0] {
			case "health":
				line = indent + "health " + addr(o.Ports.Health) + suffixBrace(opens)
			case "ready":
				line = indent + "ready " + addr(o.Ports.Ready)
			case "prometheus":
				line = indent + "prometheus " + addr(o.Ports.Metrics)
			case "forward":
				if o.Contender == Whoami {
					drop = true
				} else {
					line = strings.Replace(line, "/etc/resolv.conf", "127.0.0.1:9", 1)
				}
			case "cache":
				drop = o.NoCache
			case "headless":
				if o.Contender != HeadlessKubernetes {
					drop = true
				} else {
					line = withKubeconfig(line, indent, opens, o.Kubeconfig)
				}
			case "kubernetes":
				switch o.Contender {
				case Whoami:
					drop = true
					out = append(out, indent+"whoami")
				default:
					line = withKubeconfig(line, indent, opens, o.Kubeconfig)
				}
			}
			if drop {
				depth += opens - closes
				if opens > closes {
					skip = depth
				}
				continue
			}
		}
		depth += opens - closes
		out = append(out, line)
	}
	if servers != 1 {
		return "", fmt.Errorf("the shipped Corefile has no server block")
	}
	return strings.Join(out, "\n"), nil
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

func suffixBrace(opens int) string {
	if opens > 0 {
		return " {"
	}
	return ""
}

// withKubeconfig gives a headless or kubernetes line a kubeconfig as the
// first line of its block, opening a block when it has none.
func withKubeconfig(line, indent string, opens int, kubeconfig string) string {
	if opens > 0 {
		return line + "\n" + indent + "    kubeconfig " + kubeconfig
	}
	return line + " {\n" + indent + "    kubeconfig " + kubeconfig + "\n" + indent + "}"
}
