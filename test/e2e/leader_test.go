//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Two controllers run at once: one holds the lease and acts, the other
// waits; when the leader dies, the other takes over and finishes the work.
func TestPetSetLeaderElection(t *testing.T) {
	c := installCRD(t)
	logPath := filepath.Join(tb.Dir, "logs", "ordinal-controller.log")
	var offset int64 // earlier tests' controllers logged before this
	if fi, err := os.Stat(logPath); err == nil {
		offset = fi.Size()
	}
	killFirst := runController(t)
	lease := func() string {
		l, err := tb.Client.CoordinationV1().Leases("default").Get(ctx, "ordinal-controller.petset.dev", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	// Wait for the first one to lead, then start the second.
	first := liveLeader(t)
	runController(t)

	ns := tb.Namespace(t, "leader")
	headlessService(t, ns, "le", map[string]string{"app": "le"}, false, svcPort{"peer", 7000, corev1.ProtocolTCP})
	if err := c.Create(ctx, newPetSet(ns, "le", "le", 2)); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "le", 2)
	if h := lease(); h != first {
		t.Fatalf("leader changed from %s to %s with both running", first, h)
	}
	killFirst()
	scalePetSet(t, c, ns, "le", 4)
	waitPods(t, ns, "le", 4) // only the second controller can do this
	if h := lease(); h == first || h == "" {
		t.Fatalf("lease holder %q after the leader died", h)
	}
	// Both processes logged taking the lease, one after the other.
	b, _ := os.ReadFile(logPath)
	b = b[min(offset, int64(len(b))):]
	leaders := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 3 && strings.Contains(line, "Successfully acquired lease") {
			leaders[f[2]] = true // klog's third field is the process id
		}
	}
	if len(leaders) < 2 {
		t.Errorf("processes that acquired the lease: %v, want the first and, after it died, the second", leaders)
	}
}

// liveLeader waits for a controller to lead and returns its identity. A
// controller killed by an earlier test may still hold the lease until it
// expires; a live leader is one whose renewals keep coming: the lease's
// renew time moves on while it holds it.
func liveLeader(t *testing.T) string {
	t.Helper()
	h, since := holder()
	pollUntil(t, 60*time.Second, "a live leader", func() (bool, string) {
		h2, r := holder()
		if h2 != h {
			h, since = h2, r
			return false, "new holder " + h
		}
		return h != "" && r.After(since), fmt.Sprintf("holder %q renewed %v", h, r)
	})
	return h
}

// holder returns the lease's holder and its last renewal.
func holder() (string, time.Time) {
	l, err := tb.Client.CoordinationV1().Leases("default").Get(ctx, "ordinal-controller.petset.dev", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil || l.Spec.RenewTime == nil {
		return "", time.Time{}
	}
	return *l.Spec.HolderIdentity, l.Spec.RenewTime.Time
}

// A controller stopped the way a rollout stops it (SIGTERM) gives up its
// lease on the way out, so its successor leads at once instead of after
// the lease's 15 seconds.
func TestPetSetLeaseReleasedOnStop(t *testing.T) {
	installCRD(t)
	_, term := controllerProcess(t)
	leader := liveLeader(t)
	term()
	if h, _ := holder(); h != "" {
		t.Fatalf("lease still held by %q after the leader stopped (it was %q)", h, leader)
	}
	// The next one takes it within a retry period (2 s), not a lease
	// duration.
	runController(t)
	pollUntil(t, 10*time.Second, "a new leader", func() (bool, string) {
		h, _ := holder()
		return h != "" && h != leader, "holder " + h
	})
}

// Run out of cluster with --kubeconfig and no leader-election flag, the
// controller puts its lease in the kubeconfig context's namespace, says
// so in one log line, and works.
func TestOrdinalControllerKubeconfigOnly(t *testing.T) {
	c := installCRD(t)
	ns := tb.Namespace(t, "lease")
	kc, err := os.ReadFile(tb.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	withNS := strings.Replace(string(kc), "context: {cluster: petset, user: admin}", "context: {cluster: petset, user: admin, namespace: "+ns+"}", 1)
	if withNS == string(kc) {
		t.Fatal("the testbed kubeconfig has no context line to give a namespace")
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(withNS), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "ordinal-controller")
	if out, err := exec.Command("go", "build", "-o", bin, "petset.dev/petset/cmd/ordinal-controller").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	logPath := filepath.Join(tb.Dir, "logs", "ordinal-controller-kubeconfig-only.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Metrics and probes off only so that no port is bound on this shared
	// machine; nothing about leader election is given.
	cmd := exec.Command(bin, "--kubeconfig="+path, "--metrics-bind-address=0", "--health-probe-bind-address=0")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGKILL); <-exited; logf.Close() })

	pollEvery(t, 200*time.Millisecond, 60*time.Second, "a lease held in "+ns, func() (bool, string) {
		l, err := tb.Client.CoordinationV1().Leases(ns).Get(ctx, "ordinal-controller.petset.dev", metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			return true, ""
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("controller exited: %v\n%s", waitErr, b)
		default:
		}
		if err != nil {
			return false, err.Error()
		}
		return false, "no holder"
	})
	b, _ := os.ReadFile(logPath)
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"Leader election"`) {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], ns+"/ordinal-controller.petset.dev") {
		t.Errorf("log lines naming the lease: %q, want one naming %s", lines, ns)
	}

	headlessService(t, ns, "solo", map[string]string{"app": "solo"}, false, svcPort{"peer", 7000, corev1.ProtocolTCP})
	solo := newPetSet(ns, "solo", "solo", 1)
	solo.Spec.VolumeClaimTemplates = nil
	if err := c.Create(ctx, solo); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "solo", 1)
}
