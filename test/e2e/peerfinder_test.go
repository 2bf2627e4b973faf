//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	petsettest "petset.dev/petset/test"
)

var etcdPorts = []svcPort{{"peer", 2380, corev1.ProtocolTCP}, {"client", 2379, corev1.ProtocolTCP}}

// peer-finder (cmd/peer-finder) run as the members of a StatefulSet would
// run it, against petset's CoreDNS on the real control plane: each member's
// init run sees every member in ordinal order and renders the same etcd
// initial cluster; a sidecar follows scale up and down; a member that is
// not ready is found while publishNotReadyAddresses is set, and with it
// unset the timeout says so.
func TestPeerFinderStatefulSet(t *testing.T) {
	ns := tb.Namespace(t, "pf-sts")
	headlessService(t, ns, "etcd", map[string]string{"app": "etcd"}, true, etcdPorts...)
	statefulSet(t, ns, "etcd", "etcd", 3, true, etcdPorts...)
	peerFinderAcrossScale(t, ns, func(n int32) { scale(t, ns, "etcd", n) }, false, true)
}

// The same with a PetSet run by the ordinal controller, a member that is
// not ready included.
func TestPeerFinderPetSet(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "pf-pets")
	headlessService(t, ns, "etcd", map[string]string{"app": "etcd"}, true, etcdPorts...)
	ps := newPetSet(ns, "etcd", "etcd", 3)
	ps.Spec.Template = podTemplate("etcd", etcdPorts...)
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	peerFinderAcrossScale(t, ns, func(n int32) { scalePetSet(t, c, ns, "etcd", n) }, true, true)
}

// ordered says the set adds and removes members one at a time, in ordinal
// order (OrderedReady), rather than all at once (Parallel).
func peerFinderAcrossScale(t *testing.T, ns string, scaleTo func(int32), ordered, notReady bool) {
	bin := peerFinderBinary(t)
	dir := t.TempDir()
	waitPods(t, ns, "etcd", 3)
	base := []string{"-dns-server", dnsAddr, "-ns", ns, "-service", "etcd", "-domain", "cluster.local", "-max-interval", "1s"}
	capture := filepath.Join(dir, "capture")
	os.WriteFile(capture, []byte("#!/bin/sh\ncat > \"$1\"\n"), 0o755)
	appendHook := filepath.Join(dir, "append")
	os.WriteFile(appendHook, []byte("#!/bin/sh\n{ echo \"--- $PEER_COUNT\"; cat; } >> \"$1\"\n"), 0o755)

	// member runs what member i's init container would, and checks its
	// peers and its rendered etcd configuration against n members.
	member := func(i, n int) {
		t.Helper()
		host := fmt.Sprintf("etcd-%d", i)
		stdin, conf := filepath.Join(dir, host+".stdin"), filepath.Join(dir, host+".yaml")
		code, stderr := runPF(t, bin, append(base, "-hostname", host, "-timeout", "60s",
			"-template", "builtin:etcd", "-out", conf, "-on-start", capture+" "+stdin)...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", host, code, stderr)
		}
		if b, _ := os.ReadFile(stdin); string(b) != etcdPeers(ns, n) {
			t.Fatalf("%s's peers:\n%s\nwant:\n%s", host, b, etcdPeers(ns, n))
		}
		checkEtcdConf(t, conf, ns, host, n)
	}

	// The sidecar of etcd-0.
	log := filepath.Join(dir, "sidecar.log")
	sidecarConf := filepath.Join(dir, "sidecar.yaml")
	ready := filepath.Join(dir, "ready")
	sidecar := exec.Command(bin, append(base, "-hostname", "etcd-0", "-on-change", appendHook+" "+log,
		"-template", "builtin:etcd", "-out", sidecarConf, "-ready-file", ready)...)
	var sidecarErr petsettest.SyncBuffer
	sidecar.Stderr = &sidecarErr
	sidecar.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sidecar.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sidecar.Wait() }()
	t.Cleanup(func() {
		if sidecar.ProcessState == nil {
			sidecar.Process.Kill()
		}
	})
	// lastRun waits until the sidecar's latest hook run saw members 0 ...
	// n-1, and checks every run against what the sidecar promises.
	lastRun := func(n int) {
		t.Helper()
		pollUntil(t, 60*time.Second, fmt.Sprintf("the sidecar's last run with %d members", n), func() (bool, string) {
			b, _ := os.ReadFile(log)
			runs := strings.Split(string(b), "--- ")[1:]
			if len(runs) > 0 && runs[len(runs)-1] == fmt.Sprintf("%d\n", n)+etcdPeers(ns, n) {
				if err := checkSidecarRuns(runs, ns, 5, ordered); err != nil {
					t.Fatalf("%v\nsidecar's runs:\n%s", err, b)
				}
				return true, ""
			}
			return false, fmt.Sprintf("sidecar's runs:\n%s\n%s", b, sidecarErr.String())
		})
	}

	lastRun(3)
	if _, err := os.Stat(ready); err != nil {
		t.Fatalf("sidecar not ready after its first run: %v", err)
	}
	for i := range 3 {
		member(i, 3)
	}

	scaleTo(5)
	waitPods(t, ns, "etcd", 5)
	lastRun(5)
	checkEtcdConf(t, sidecarConf, ns, "etcd-0", 5)
	for i := range 5 {
		member(i, 5)
	}

	if notReady {
		// A member that is not ready, as while its init containers run.
		if err := tb.SetPodReady(ctx, ns, "etcd-4", false); err != nil {
			t.Fatal(err)
		}
		member(4, 5)
		setPublishNotReady(t, ns, "etcd", false)
		waitPeerCount(t, bin, base, 4)
		code, stderr := runPF(t, bin, append(base, "-hostname", "etcd-4", "-timeout", "3s")...)
		if code != 3 || !strings.Contains(stderr, "own name etcd-4.etcd."+ns+".svc.cluster.local is not published yet") ||
			!strings.Contains(stderr, "publishNotReadyAddresses looks unset") {
			t.Fatalf("without publishNotReadyAddresses: exit %d\n%s", code, stderr)
		}
		setPublishNotReady(t, ns, "etcd", true)
		if err := tb.SetPodReady(ctx, ns, "etcd-4", true); err != nil {
			t.Fatal(err)
		}
	}

	scaleTo(2)
	waitPods(t, ns, "etcd", 2)
	lastRun(2)
	checkEtcdConf(t, sidecarConf, ns, "etcd-0", 2)
	for i := range 2 {
		member(i, 2)
	}

	b, _ := os.ReadFile(log)
	var counts []string
	for _, r := range strings.Split(string(b), "--- ")[1:] {
		counts = append(counts, strings.SplitN(r, "\n", 2)[0])
	}
	t.Logf("the sidecar's -on-change runs saw %s members", strings.Join(counts, ", "))

	sidecar.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("sidecar after SIGTERM: %v\n%s", err, sidecarErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sidecar still running 20s after SIGTERM")
	}
}

// checkSidecarRuns checks each run the append hook logged ("N" then the
// peers, one a line) against what a watching peer-finder promises: the
// peers it was told of, in ordinal order, itself (etcd-0) among them, each
// a member the set had (ordinal below most), and a set other than the run
// before's (it acts on changes only). Under Parallel members come and go
// at once, so a run may see any such subset (etcd-0, etcd-1, etcd-3 while
// 2, 3 and 4 leave); when ordered, they come and go one at a time from
// the highest ordinal, so every run sees members 0 ... k-1.
func checkSidecarRuns(runs []string, ns string, most int, ordered bool) error {
	prev := ""
	for i, r := range runs {
		head, body, _ := strings.Cut(r, "\n")
		names := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		if body == "" {
			names = nil
		}
		if head != strconv.Itoa(len(names)) {
			return fmt.Errorf("run %d: PEER_COUNT %s for %d peers", i+1, head, len(names))
		}
		last := -1
		for _, name := range names {
			host, rest, _ := strings.Cut(name, ".")
			o, err := strconv.Atoi(strings.TrimPrefix(host, "etcd-"))
			if rest != "etcd."+ns+".svc.cluster.local" || !strings.HasPrefix(host, "etcd-") || err != nil || o < 0 || o >= most {
				return fmt.Errorf("run %d: %s is no member the set had", i+1, name)
			}
			if o <= last {
				return fmt.Errorf("run %d: %s out of ordinal order", i+1, name)
			}
			if ordered && o != last+1 {
				return fmt.Errorf("run %d: %s without etcd-%d, though members leave from the highest ordinal", i+1, name, last+1)
			}
			last = o
		}
		if len(names) == 0 || !strings.HasPrefix(names[0], "etcd-0.") {
			return fmt.Errorf("run %d: without the sidecar's own etcd-0", i+1)
		}
		if r == prev {
			return fmt.Errorf("run %d: the same peers as the run before", i+1)
		}
		prev = r
	}
	return nil
}

// waitPeerCount waits until peer-finder, run with no hook for a member that
// is surely there, prints n peers.
func waitPeerCount(t *testing.T, bin string, base []string, n int) {
	t.Helper()
	pollEvery(t, 200*time.Millisecond, 30*time.Second, fmt.Sprintf("%d peers", n), func() (bool, string) {
		cmd := exec.Command(bin, append(base, "-hostname", "etcd-0", "-timeout", "10s")...)
		out, _ := cmd.Output()
		return strings.Count(string(out), "\n") == n, "peers:\n" + string(out)
	})
}

func setPublishNotReady(t *testing.T, ns, name string, v bool) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := tb.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.PublishNotReadyAddresses = v
		_, err = tb.Client.CoreV1().Services(ns).Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// etcdPeers is what a hook reads: etcd-0 ... etcd-(n-1), one a line.
func etcdPeers(ns string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "etcd-%d.etcd.%s.svc.cluster.local\n", i, ns)
	}
	return b.String()
}

// checkEtcdConf checks a rendered builtin:etcd file as etcd reads it: this
// member's name and URLs, and initial-cluster naming members 0 ... n-1 in
// order, each at its stable name on the peer port.
func checkEtcdConf(t *testing.T, path, ns, host string, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	conf := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(k, "#") {
			conf[k] = v
		}
	}
	var members []string
	for i := range n {
		members = append(members, fmt.Sprintf("etcd-%d=http://etcd-%d.etcd.%s.svc.cluster.local:2380", i, i, ns))
	}
	self := fmt.Sprintf("http://%s.etcd.%s.svc.cluster.local", host, ns)
	if conf["initial-cluster"] != strings.Join(members, ",") || conf["name"] != host ||
		conf["initial-advertise-peer-urls"] != self+":2380" || conf["advertise-client-urls"] != self+":2379" {
		t.Fatalf("%s:\n%s\nwant initial-cluster %s", path, b, strings.Join(members, ","))
	}
}

var peerFinderBin = &suiteBinary{name: "peer-finder", pkg: "petset.dev/petset/cmd/peer-finder"}

func peerFinderBinary(t *testing.T) string { return peerFinderBin.path(t) }

func runPF(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(c, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatalf("peer-finder: %v", err)
	}
	return 0, stderr.String()
}
