package dnsbench

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

var ports = Ports{DNS: 1053, Health: 1080, Ready: 1081, Metrics: 1153}

func TestAdaptCorefile(t *testing.T) {
	b, err := os.ReadFile("../../corefile/cluster.Corefile")
	if err != nil {
		t.Fatal(err)
	}
	shipped := string(b)
	for _, c := range Contenders {
		for _, noCache := range []bool{false, true} {
			got, err := AdaptCorefile(shipped, CorefileOptions{Contender: c, Ports: ports, Kubeconfig: "/tmp/kubeconfig", NoCache: noCache})
			if err != nil {
				t.Fatal(err)
			}
			name := c
			if noCache {
				name += "-nocache"
			}
			golden(t, "corefile-"+name+".golden", []byte(got))
			// Nothing listens off loopback and nothing goes upstream.
			if strings.Contains(got, "/etc/resolv.conf") || !strings.Contains(got, "bind 127.0.0.1") {
				t.Errorf("%s: not local:\n%s", name, got)
			}
			for _, m := range regexp.MustCompile(`(?m)^\s*(health|ready|prometheus|forward \.)\s+(\S+)`).FindAllStringSubmatch(got, -1) {
				if !strings.HasPrefix(m[2], "127.0.0.1:") {
					t.Errorf("%s: %s on %s", name, m[1], m[2])
				}
			}
			has := func(d string) bool { return regexp.MustCompile(`(?m)^\s*` + d + `\b`).MatchString(got) }
			if has("headless") != (c == HeadlessKubernetes) || has("kubernetes") != (c != Whoami) || has("whoami") != (c == Whoami) || has("cache") == noCache {
				t.Errorf("%s: wrong plugins:\n%s", name, got)
			}
		}
	}
}

// The headless+kubernetes Corefile is the shipped one: the same lines
// once the adapted addresses, the bind line and the kubeconfig lines are
// taken out again.
func TestAdaptCorefileOnlyAddresses(t *testing.T) {
	b, err := os.ReadFile("../../corefile/cluster.Corefile")
	if err != nil {
		t.Fatal(err)
	}
	got, err := AdaptCorefile(string(b), CorefileOptions{Contender: HeadlessKubernetes, Ports: ports, Kubeconfig: "/k"})
	if err != nil {
		t.Fatal(err)
	}
	norm := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			f := strings.Fields(l)
			if len(f) == 0 || f[0] == "kubeconfig" || f[0] == "bind" {
				continue
			}
			if f[0] == "forward" || f[0] == "health" || f[0] == "ready" || f[0] == "prometheus" || len(f) > 1 && f[len(f)-1] == "{" && strings.HasPrefix(f[0], ".") {
				f[1] = "ADDR"
				if f[0] == "forward" {
					f[2] = "UPSTREAM" // /etc/resolv.conf -> 127.0.0.1:9
				}
				if strings.HasPrefix(f[0], ".") {
					f = []string{"SERVER", "{"}
				}
			}
			out = append(out, strings.Join(f, " "))
		}
		return out
	}
	w, g := norm(string(b)), norm(got)
	if strings.Join(w, "\n") != strings.Join(g, "\n") {
		t.Errorf("adapted Corefile differs in more than addresses:\nshipped:\n%s\nadapted:\n%s", strings.Join(w, "\n"), strings.Join(g, "\n"))
	}
}

func TestAdaptCorefileErrors(t *testing.T) {
	if _, err := AdaptCorefile(".:53 {\n whoami\n}\n", CorefileOptions{Contender: "bind9"}); err == nil {
		t.Error("unknown contender: no error")
	}
	if _, err := AdaptCorefile("# nothing\n", CorefileOptions{Contender: Whoami}); err == nil {
		t.Error("no server block: no error")
	}
	if _, err := AdaptCorefile(".:53 {\n whoami\n}\n.:54 {\n whoami\n}\n", CorefileOptions{Contender: Whoami}); err == nil {
		t.Error("two server blocks: no error")
	}
}
