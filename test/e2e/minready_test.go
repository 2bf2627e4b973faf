//go:build e2e

package e2e

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
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

// A rolling update under Parallel with maxUnavailable 40% of five pets (2),
// as StatefulSet's MaxUnavailableStatefulSet: a watch of the pods, from the
// resourceVersion of the list the rollout starts from, tracks which
// wanted pets are unavailable (missing, Terminating or not Ready) after
// every event. The most at any moment must be 2: never more, and more
// than one, or the budget is not used.
func TestPetSetParallelMaxUnavailable(t *testing.T) {
	const replicas, budget = 5, 2
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "maxunavail")
	headlessService(t, ns, "mu", map[string]string{"app": "mu"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "mu", "mu", replicas)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	ps.Spec.UpdateStrategy.RollingUpdate = &v1alpha1.RollingUpdate{MaxUnavailable: ptr(intstr.FromString("40%"))}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "mu", replicas)
	waitStatus(t, c, ns, "mu", func(st v1alpha1.PetSetStatus) bool {
		return st.ReadyReplicas == replicas && st.UpdatedReplicas == replicas && st.CurrentRevision == st.UpdateRevision
	})

	list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=mu"})
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]*corev1.Pod{}
	for i := range list.Items {
		state[list.Items[i].Name] = &list.Items[i]
	}
	w, err := tb.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=mu", ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		most     int
		worst    string // the state when most was reached
		watchErr string
	)
	unavailable := func() []string {
		var out []string
		for o := range replicas {
			name := "mu-" + strconv.Itoa(o)
			if p := state[name]; p == nil || p.DeletionTimestamp != nil || !podReady(p) {
				out = append(out, name)
			}
		}
		return out
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				mu.Lock()
				watchErr = fmt.Sprintf("watch event %s %T", ev.Type, ev.Object)
				mu.Unlock()
				continue
			}
			mu.Lock()
			if ev.Type == watch.Deleted {
				delete(state, p.Name)
			} else {
				state[p.Name] = p
			}
			if down := unavailable(); len(down) > most {
				most, worst = len(down), fmt.Sprint(down)+" "+describePods(state)
			}
			mu.Unlock()
		}
	}()
	defer func() { w.Stop(); <-done }()

	cur := updatePetSet(t, c, client.ObjectKeyFromObject(ps), func(p *v1alpha1.PetSet) {
		p.Spec.Template.Spec.Containers[0].Image = "registry.invalid/petset/fake:2"
	})
	r2 := controller.Revision(cur)
	pollUntil(t, 90*time.Second, "every pet at the new revision and Ready", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for o := range replicas {
			p := state["mu-"+strconv.Itoa(o)]
			if p != nil && p.DeletionTimestamp == nil && podReady(p) && p.Labels[controller.LabelRevision] == r2 {
				n++
			}
		}
		return n == replicas, describePods(state)
	})
	waitStatus(t, c, ns, "mu", func(st v1alpha1.PetSetStatus) bool {
		return st.UpdateRevision == r2 && st.CurrentRevision == r2 && st.UpdatedReplicas == replicas && st.ReadyReplicas == replicas
	})
	mu.Lock()
	defer mu.Unlock()
	if watchErr != "" {
		t.Fatalf("the watch broke, so the count may have missed events: %s", watchErr)
	}
	if most > budget {
		t.Errorf("%d pets unavailable at once, maxUnavailable %d: %s", most, budget, worst)
	}
	if most < budget {
		t.Errorf("at most %d pet unavailable at once: the rollout did not use maxUnavailable %d", most, budget)
	}
	t.Logf("most pets unavailable at once: %d (%s)", most, worst)
}
