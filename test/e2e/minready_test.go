//go:build e2e

package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// readySince is when a pod's Ready condition last became True, as kwok
// wrote it (server time, whole seconds), or zero.
func readySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// minReadySeconds under OrderedReady, as StatefulSet has it: a pet counts
// in availableReplicas only once it has been Ready for minReadySeconds,
// and the next ordinal is created only then. Both are read from what the
// API server holds: each pod's creation time against the Ready time kwok
// gave the pod before it (timestamps are whole seconds, so the bound is
// minReadySeconds-1), and the status polled while the pets come up, which
// must show a pet Ready and not yet available, and never count a pet
// available before its time.
func TestPetSetMinReadySeconds(t *testing.T) {
	const minReady = 4
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "minready")
	headlessService(t, ns, "mr", map[string]string{"app": "mr"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "mr", "mr", 3)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.MinReadySeconds = minReady
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}

	// Poll the status while the pets come up: the first time each count
	// of available pets is seen, and whether a Ready pet was seen not yet
	// available.
	firstAvailable := map[int32]time.Time{}
	sawReadyNotAvailable := false
	var last v1alpha1.PetSetStatus
	pollUntil(t, 90*time.Second, "three pets available", func() (bool, string) {
		var cur v1alpha1.PetSet
		if err := c.Get(ctx, client.ObjectKeyFromObject(ps), &cur); err != nil {
			return false, err.Error()
		}
		st := cur.Status
		last = st
		now := time.Now()
		for k := int32(1); k <= st.AvailableReplicas; k++ {
			if _, ok := firstAvailable[k]; !ok {
				firstAvailable[k] = now
			}
		}
		if st.ReadyReplicas > st.AvailableReplicas {
			sawReadyNotAvailable = true
		}
		return st.AvailableReplicas == 3 && st.ReadyReplicas == 3, fmt.Sprintf("%+v", st)
	})
	pods := waitPods(t, ns, "mr", 3)
	if !sawReadyNotAvailable {
		t.Errorf("status never showed a Ready pet not yet available (minReadySeconds %d): last %+v", minReady, last)
	}
	for o := range 3 {
		name := "mr-" + strconv.Itoa(o)
		since := readySince(pods[name])
		if since.IsZero() {
			t.Fatalf("%s has no Ready time: %s", name, describePods(pods))
		}
		// Available pet o+1 was first seen no earlier than pet o's Ready
		// time plus minReadySeconds (less the second the timestamp
		// truncates).
		if seen := firstAvailable[int32(o+1)]; seen.Sub(since) < (minReady-1)*time.Second {
			t.Errorf("availableReplicas reached %d %v after %s became Ready, want at least %ds", o+1, seen.Sub(since).Round(time.Millisecond), name, minReady-1)
		}
		if o == 2 {
			break
		}
		next := pods["mr-"+strconv.Itoa(o+1)]
		if gap := next.CreationTimestamp.Sub(since); gap < (minReady-1)*time.Second {
			t.Errorf("%s created %v after %s became Ready (%s, %s), want at least %ds: OrderedReady must wait for available",
				next.Name, gap, name, since.Format(time.RFC3339), next.CreationTimestamp.Format(time.RFC3339), minReady-1)
		}
	}
}
