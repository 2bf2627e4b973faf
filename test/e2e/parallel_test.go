//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// holdGate is a scheduling gate the tests put in a template: a gated pod
// stays Pending, never Ready, until the test takes the gate off, so "the
// controller did not wait for Ready" is something a test can see.
const holdGate = "petset.dev/e2e-hold"

// holdFinalizer keeps a deleted pod Terminating until the test removes it,
// so a test can see which pods a controller has asked to delete at once.
const holdFinalizer = "petset.dev/e2e-hold"

// ungate takes holdGate off a pod so it is scheduled and kwok makes it Ready.
func ungate(t *testing.T, ns, name string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Spec.SchedulingGates = slices.DeleteFunc(p.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == holdGate })
		_, err = tb.Client.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("ungate %s: %v", name, err)
	}
}

// setFinalizers replaces the finalizers of a pod.
func setFinalizers(t *testing.T, ns, name string, finalizers ...string) {
	t.Helper()
	patch := `{"metadata":{"finalizers":null}}`
	if len(finalizers) > 0 {
		patch = fmt.Sprintf(`{"metadata":{"finalizers":[%q]}}`, strings.Join(finalizers, `","`))
	}
	if _, err := tb.Client.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("finalizers of %s: %v", name, err)
	}
}

// waitReadyMessage waits until the message of the set's Ready condition,
// which says why the controller waits, starts with message.
func waitReadyMessage(t *testing.T, c client.Client, ns, name, message string) {
	t.Helper()
	waitStatus(t, c, ns, name, func(st v1alpha1.PetSetStatus) bool {
		cond := meta.FindStatusCondition(st.Conditions, "Ready")
		return cond != nil && strings.HasPrefix(cond.Message, message)
	})
}

// heldPetSet is a PetSet of app without claims whose pods are gated.
func heldPetSet(ns, app string, replicas int32, policy appsv1.PodManagementPolicyType) *v1alpha1.PetSet {
	ps := newPetSet(ns, app, app, replicas)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.PodManagementPolicy = policy
	ps.Spec.Template.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: holdGate}}
	return ps
}

// Parallel pod management as StatefulSet has it (TestParallelScale in
// pkg/controller/statefulset): a scale-up creates every missing pet at
// once, none waiting for a lower one to be Ready, where OrderedReady stops
// at the first pet that is not Ready; a scale-down deletes every condemned
// pet at once, not waiting for one to be gone nor for a not-Ready pet,
// where OrderedReady deletes one and waits for it to terminate.
func TestPetSetParallelScale(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "par")
	for _, app := range []string{"par", "ord"} {
		headlessService(t, ns, app, map[string]string{"app": app}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	}

	// OrderedReady first, so it has had at least as long as Parallel.
	if err := c.Create(ctx, heldPetSet(ns, "ord", 3, appsv1.OrderedReadyPodManagement)); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, heldPetSet(ns, "par", 0, appsv1.ParallelPodManagement)); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, ns, "par", func(st v1alpha1.PetSetStatus) bool { return st.ObservedGeneration > 0 })
	scalePetSet(t, c, ns, "par", 5)

	// 0 -> 5 under Parallel: all five exist while none is Ready.
	want := []string{"par-0", "par-1", "par-2", "par-3", "par-4"}
	pollUntil(t, 60*time.Second, "five Parallel pets created", func() (bool, string) {
		pods := petPods(t, ns, "par")
		for _, name := range want {
			if pods[name] == nil {
				return false, describePods(pods)
			}
		}
		return true, ""
	})
	pods := petPods(t, ns, "par")
	if len(pods) != 5 {
		t.Errorf("Parallel pods %s, want exactly %v", describePods(pods), want)
	}
	for name, p := range pods {
		if podReady(p) {
			t.Errorf("%s is Ready while gated: the test proves nothing (%s)", name, describePods(pods))
		}
	}

	// OrderedReady, by contrast, says it waits for ord-0 and has made no
	// other pet.
	waitReadyMessage(t, c, ns, "ord", "waiting for 0 to be available")
	if pods := petPods(t, ns, "ord"); len(pods) != 1 || pods["ord-0"] == nil {
		t.Errorf("OrderedReady made %s while ord-0 was not Ready, want only ord-0", describePods(pods))
	}
	// It goes on one pet at a time as each becomes Ready: ord-1 is made
	// once ord-0 is Ready, and ord-2 not before ord-1 is.
	for i := range 3 {
		name := fmt.Sprintf("ord-%d", i)
		pollUntil(t, 60*time.Second, name+" created", func() (bool, string) {
			pods := petPods(t, ns, "ord")
			return pods[name] != nil, describePods(pods)
		})
		if i < 2 {
			waitReadyMessage(t, c, ns, "ord", fmt.Sprintf("waiting for %d to be available", i))
			if pods := petPods(t, ns, "ord"); len(pods) != i+1 {
				t.Errorf("OrderedReady made %s while ord-%d was not Ready", describePods(pods), i)
			}
		}
		ungate(t, ns, name)
	}
	waitPods(t, ns, "ord", 3)

	for _, name := range want {
		ungate(t, ns, name)
	}
	waitPods(t, ns, "par", 5)
	waitStatus(t, c, ns, "par", func(st v1alpha1.PetSetStatus) bool { return st.ReadyReplicas == 5 })

	// 5 -> 2 under Parallel: par-2, par-3 and par-4 are held Terminating
	// by a finalizer, and par-0 is not Ready. All three condemned pets
	// must be asked to go at once, without waiting for any of them to be
	// gone or for par-0 to be Ready.
	for _, name := range want[2:] {
		setFinalizers(t, ns, name, holdFinalizer)
	}
	t.Cleanup(func() {
		for _, name := range []string{"par-2", "par-3", "par-4", "ord-1", "ord-2"} {
			tb.Client.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		}
	})
	if err := tb.SetPodReady(ctx, ns, "par-0", false); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, ns, "par", func(st v1alpha1.PetSetStatus) bool { return st.ReadyReplicas == 4 })
	scalePetSet(t, c, ns, "par", 2)
	pollUntil(t, 60*time.Second, "par-2, par-3 and par-4 all Terminating at once", func() (bool, string) {
		pods := petPods(t, ns, "par")
		for _, name := range want[2:] {
			if p := pods[name]; p == nil || p.DeletionTimestamp == nil {
				return false, describePods(pods)
			}
		}
		return true, ""
	})
	pods = petPods(t, ns, "par")
	for _, name := range want[:2] {
		if p := pods[name]; p == nil || p.DeletionTimestamp != nil {
			t.Errorf("%s, below the new size, is gone or going: %s", name, describePods(pods))
		}
	}
	if podReady(pods["par-0"]) {
		t.Errorf("par-0 became Ready again: the test proves nothing (%s)", describePods(pods))
	}
	for _, name := range want[2:] {
		setFinalizers(t, ns, name)
	}
	pollUntil(t, 60*time.Second, "Parallel scale-down to 2 done", func() (bool, string) {
		pods := petPods(t, ns, "par")
		return len(pods) == 2 && pods["par-0"] != nil && pods["par-1"] != nil, describePods(pods)
	})
	waitStatus(t, c, ns, "par", func(st v1alpha1.PetSetStatus) bool { return st.Replicas == 2 })

	// 3 -> 1 under OrderedReady, by contrast: ord-2 goes first, and ord-1
	// is not asked to go while ord-2 is still Terminating.
	setFinalizers(t, ns, "ord-1", holdFinalizer)
	setFinalizers(t, ns, "ord-2", holdFinalizer)
	scalePetSet(t, c, ns, "ord", 1)
	pollUntil(t, 60*time.Second, "ord-2 Terminating", func() (bool, string) {
		pods := petPods(t, ns, "ord")
		return pods["ord-2"] != nil && pods["ord-2"].DeletionTimestamp != nil, describePods(pods)
	})
	waitReadyMessage(t, c, ns, "ord", "waiting for 2 to terminate")
	if pods := petPods(t, ns, "ord"); pods["ord-1"] == nil || pods["ord-1"].DeletionTimestamp != nil {
		t.Errorf("OrderedReady deleted ord-1 while ord-2 was Terminating: %s", describePods(pods))
	}
	setFinalizers(t, ns, "ord-2")
	pollUntil(t, 60*time.Second, "ord-1 Terminating after ord-2 is gone", func() (bool, string) {
		pods := petPods(t, ns, "ord")
		return pods["ord-2"] == nil && pods["ord-1"] != nil && pods["ord-1"].DeletionTimestamp != nil, describePods(pods)
	})
	setFinalizers(t, ns, "ord-1")
	pollUntil(t, 60*time.Second, "OrderedReady scale-down to 1 done", func() (bool, string) {
		pods := petPods(t, ns, "ord")
		return len(pods) == 1 && pods["ord-0"] != nil, describePods(pods)
	})
}

// A rolling update under Parallel still takes down at most maxUnavailable
// pets: with maxUnavailable 1, while the updated pet is not Ready (its new
// template is scheduling-gated) no other pet is deleted, and the rollout
// goes on, highest ordinal first, as each updated pet becomes Ready.
func TestPetSetParallelRollingUpdate(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "parru")
	headlessService(t, ns, "pru", map[string]string{"app": "pru"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "pru", "pru", 3)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	ps.Spec.UpdateStrategy.RollingUpdate = &v1alpha1.RollingUpdate{MaxUnavailable: ptr(intstr.FromInt32(1))}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	before := waitPods(t, ns, "pru", 3)

	cur := updatePetSet(t, c, client.ObjectKeyFromObject(ps), func(p *v1alpha1.PetSet) {
		p.Spec.Template.Spec.Containers[0].Image = "registry.invalid/petset/fake:2"
		p.Spec.Template.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: holdGate}}
	})
	r2 := controller.Revision(cur)
	for i := 2; i >= 0; i-- {
		name := fmt.Sprintf("pru-%d", i)
		pollUntil(t, 60*time.Second, name+" at the new revision", func() (bool, string) {
			pods := petPods(t, ns, "pru")
			p := pods[name]
			return p != nil && p.DeletionTimestamp == nil && p.Labels[controller.LabelRevision] == r2, describePods(pods)
		})
		if i > 0 {
			// Wait until the controller says it waits for the updated pet,
			// or takes a lower pet down.
			takenDown := func(pods map[string]*corev1.Pod) []string {
				var out []string
				for j := range i {
					other := fmt.Sprintf("pru-%d", j)
					if p := pods[other]; p == nil || p.UID != before[other].UID || p.DeletionTimestamp != nil || !podReady(p) {
						out = append(out, other)
					}
				}
				return out
			}
			var ps v1alpha1.PetSet
			pollUntil(t, 60*time.Second, "the controller waits for "+name, func() (bool, string) {
				if len(takenDown(petPods(t, ns, "pru"))) > 0 {
					return true, ""
				}
				if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pru"}, &ps); err != nil {
					return false, err.Error()
				}
				// A status that lists the updated pet is fresh, not left
				// from the step before.
				seen := slices.ContainsFunc(ps.Status.Members, func(m v1alpha1.Member) bool { return m.Ordinal == int32(i) && m.Revision == r2 })
				cond := meta.FindStatusCondition(ps.Status.Conditions, "Ready")
				return seen && cond != nil && strings.Contains(cond.Message, "unavailable pets (maxUnavailable 1) before updating "+strconv.Itoa(i-1)), fmt.Sprintf("%+v", ps.Status)
			})
			pods := petPods(t, ns, "pru")
			if podReady(pods[name]) {
				t.Errorf("%s is Ready while gated: the test proves nothing (%s)", name, describePods(pods))
			}
			if down := takenDown(pods); len(down) > 0 {
				t.Fatalf("%v taken down while %s at the new revision was not Ready, with maxUnavailable 1: %s", down, name, describePods(pods))
			}
		}
		ungate(t, ns, name)
	}
	waitPods(t, ns, "pru", 3)
	waitStatus(t, c, ns, "pru", func(st v1alpha1.PetSetStatus) bool {
		return st.UpdateRevision == r2 && st.UpdatedReplicas == 3 && st.ReadyReplicas == 3
	})
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
