//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
