//go:build e2e

package realnode

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"petset.dev/petset/test/cluster"
)

// readmeSteps are the shell blocks of the README's section on switching a
// cluster's DNS, by what they do.
type readmeSteps struct{ save, apply, back string }

// switchSteps reads the steps from README.md, so the test runs what users
// are told to run. The block that checks from a pod with an image from
// registry.k8s.io is left to the resolver pod.
func switchSteps(t testing.TB) readmeSteps {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Switch a cluster's DNS to petset's and back\n")
	if !ok {
		t.Fatal("README.md has no section \"Switch a cluster's DNS to petset's and back\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var s readmeSteps
	for _, m := range regexp.MustCompile("(?s)\n *```[a-z]*\n(.*?)\n *```").FindAllStringSubmatch(section, -1) {
		block := m[1]
		switch {
		case strings.Contains(block, "kubectl run"):
		case strings.Contains(block, "get configmap/coredns"):
			s.save = block
		case strings.Contains(block, "apply -k deploy/dns"):
			s.apply = block
		case strings.Contains(block, "kubectl replace"):
			s.back = block
		default:
			t.Fatalf("a block of the README's DNS switch this test does not know:\n%s", block)
		}
	}
	if s.save == "" || s.apply == "" || s.back == "" {
		t.Fatalf("README's DNS switch without a save, apply or switch-back block: %+v", s)
	}
	return s
}

// runStep runs a README block with bash in dir, where deploy/dns is the
// overlay that sets the images, with the testbed's kubectl and kubeconfig.
func runStep(t testing.TB, dir, block string) {
	t.Helper()
	bins, err := cluster.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(c, "bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+bins+":"+os.Getenv("PATH"), "KUBECONFIG="+tb.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README step failed: %v\n%s\n%s", err, block, out)
	}
	t.Logf("$ %s\n%s", strings.ReplaceAll(block, "\n", "\n  "), out)
}

// The README's DNS switch over a running kubeadm cluster DNS, and its
// switch back, while a pod resolves a Service's name (the kubernetes
// plugin) and a pet's (headless, or the stock plugin's pod records) in a
// loop through its own resolv.conf: not one lookup fails. petset's CoreDNS
// really serves (its readiness probe passes, it binds port 53 as user
// 65532, headless counts the pets' service), and the switch back leaves
// the stock image serving.
func TestClusterDNSSwitch(t *testing.T) {
	installKubeadmDNS(t)
	ns := namespace(t, "dns-switch")
	pets(t, ns, "web", 2)
	client := resolverPod(t, ns, "client", "-loop", "kubernetes.default,web-0.web", "-every", "50ms")
	poll(t, time.Minute, "the client's lookups answered", func() (bool, string) {
		l := loopStats(t, client)
		return l.OK["kubernetes.default"] > 5 && l.OK["web-0.web"] > 5, fmt.Sprintf("%+v", l)
	})
	if l := loopStats(t, client); len(l.Failures) > 0 {
		t.Fatalf("lookups failed before the switch: %+v", l.Failures)
	}

	steps := switchSteps(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(overlays, "dns"), filepath.Join(dir, "deploy", "dns")); err != nil {
		t.Fatal(err)
	}
	runStep(t, dir, steps.save)
	runStep(t, dir, steps.apply)
	petsetImage := tb.Registry() + "/petset/coredns:" + version
	waitDNS(t, petsetImage)
	checkPort53(t)
	checkProbes(t)
	poll(t, time.Minute, "headless serving the pets' service", func() (bool, string) {
		n, err := servedObjects()
		return err == nil && n >= 1, fmt.Sprint(n, err)
	})

	runStep(t, dir, steps.back)
	waitDNS(t, tb.TestImage("coredns"))
	// Lookups made after the last pod changed, then the count.
	before := loopStats(t, client)
	poll(t, time.Minute, "lookups after the switch back", func() (bool, string) {
		l := loopStats(t, client)
		return l.OK["web-0.web"] > before.OK["web-0.web"]+10, fmt.Sprintf("%+v", l.OK)
	})
	l := loopStats(t, client)
	if len(l.Failures) > 0 {
		t.Fatalf("%d lookups failed during the switch and back, the first: %+v", len(l.Failures), l.Failures[0])
	}
	t.Logf("lookups answered: %v", l.OK)
}

// checkProbes checks that the DNS pods' probes pass: Ready says the
// readiness probe does; the liveness probe (60 s after start) is asked
// here as the kubelet will ask it, and nothing has restarted.
func checkProbes(t testing.TB) {
	t.Helper()
	pods, err := tb.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		c := p.Spec.Containers[0]
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.ReadinessProbe == nil {
			t.Fatalf("%s: probes %+v %+v", p.Name, c.LivenessProbe, c.ReadinessProbe)
		}
		port := c.LivenessProbe.HTTPGet.Port.IntValue()
		for _, cp := range c.Ports {
			if cp.Name == c.LivenessProbe.HTTPGet.Port.StrVal {
				port = int(cp.ContainerPort)
			}
		}
		u := fmt.Sprintf("http://%s:%d%s", p.Status.PodIP, port, c.LivenessProbe.HTTPGet.Path)
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(u)
		if err != nil {
			t.Fatalf("%s: liveness probe %s: %v", p.Name, u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: liveness probe %s: %s", p.Name, u, resp.Status)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount > 0 {
				t.Errorf("%s: %s restarted %d times", p.Name, cs.Name, cs.RestartCount)
			}
		}
	}
}

// checkPort53 checks, on the node, that the coredns process of every
// DNS pod (a real process here) runs as user 65532 and listens on port
// 53, UDP and TCP, in its pod's network namespace.
func checkPort53(t testing.TB) {
	t.Helper()
	pods, err := tb.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		dir := podProcess(t, string(p.UID), "coredns")
		status, _ := os.ReadFile(filepath.Join(dir, "status"))
		if !regexp.MustCompile(`(?m)^Uid:\s+65532\s+65532\s+65532\s`).Match(status) {
			t.Errorf("%s: coredns does not run as 65532:\n%s", p.Name, status)
		}
		for _, proto := range []string{"udp", "tcp"} {
			v4, _ := os.ReadFile(filepath.Join(dir, "net", proto))
			v6, _ := os.ReadFile(filepath.Join(dir, "net", proto+"6"))
			if !listensOn(string(v4), 53) && !listensOn(string(v6), 53) {
				t.Errorf("%s: coredns does not listen on %s port 53:\n%s%s", p.Name, proto, v4, v6)
			}
		}
	}
}

// podProcess finds the process called comm in the pod with uid, on the
// node, by its cgroup (cgroupfs: .../pod<uid>/<container>), and returns
// its /proc directory.
func podProcess(t testing.TB, uid, comm string) string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range procs {
		b, err := os.ReadFile(c)
		if err != nil || strings.TrimSpace(string(b)) != comm {
			continue
		}
		dir := filepath.Dir(c)
		if cg, _ := os.ReadFile(filepath.Join(dir, "cgroup")); strings.Contains(string(cg), "/pod"+uid+"/") {
			return dir
		}
	}
	t.Fatalf("no process %s of pod %s on the node", comm, uid)
	return ""
}

// listensOn reports whether a /proc/net/{udp,tcp} table has a socket bound
// to port (hex, after the address) in state 07 (UDP) or 0A (TCP LISTEN).
func listensOn(table string, port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], want) && (f[3] == "07" || f[3] == "0A") {
			return true
		}
	}
	return false
}

// servedObjects reads coredns_headless_served_objects (services) from a
// petset CoreDNS pod's metrics port.
func servedObjects() (int, error) {
	pods, err := tb.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	if err != nil || len(pods.Items) == 0 {
		return 0, fmt.Errorf("no DNS pod: %v", err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + pods.Items[0].Status.PodIP + ":9153/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "coredns_headless_served_objects") && strings.Contains(line, `kind="service"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			return int(v), err
		}
	}
	return 0, fmt.Errorf("no coredns_headless_served_objects{kind=\"services\"}:\n%s", out)
}
