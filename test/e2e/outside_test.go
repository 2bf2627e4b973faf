//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// dropClaimFinalizer removes finalizer from a claim, keeping the others
// (the pvc-protection controller's).
func dropClaimFinalizer(t *testing.T, ns, name, finalizer string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cl, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cl.Finalizers = slices.DeleteFunc(cl.Finalizers, func(f string) bool { return f == finalizer })
		_, err = tb.Client.CoreV1().PersistentVolumeClaims(ns).Update(ctx, cl, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("finalizers of claim %s: %v", name, err)
	}
}

// A pet whose claim is on its way out waits; the claim here is one the
// controller's cache does not hold (without petset's labels, as a
// StatefulSet's), held by a finalizer, so no watch event tells the
// controller when it goes. Once the test removes the finalizer, and does
// nothing else, the pet is made with a fresh claim: the set looks again
// on a timer while a pet waits for a claim.
func TestPetSetWaitsForUnlabelledClaim(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "claimhold")
	headlessService(t, ns, "hold", map[string]string{"app": "hold"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "hold", "hold", 1)
	old := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data-hold-0", Labels: map[string]string{"app": "hold"},
			Finalizers: []string{holdFinalizer}},
		Spec: ps.Spec.VolumeClaimTemplates[0].Spec,
	}
	old, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, old, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Let the namespace go if the test failed before removing it.
		if cl, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-hold-0", metav1.GetOptions{}); err == nil && slices.Contains(cl.Finalizers, holdFinalizer) {
			dropClaimFinalizer(t, ns, "data-hold-0", holdFinalizer)
		}
	})
	if err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data-hold-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	const why = "claim data-hold-0 is being deleted"
	waitStatus(t, c, ns, "hold", func(st v1alpha1.PetSetStatus) bool {
		ready := meta.FindStatusCondition(st.Conditions, "Ready")
		return ready != nil && strings.Contains(ready.Message, why)
	})
	if _, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "hold-0", metav1.GetOptions{}); err == nil {
		t.Fatal("hold-0 made while its claim is being deleted")
	}

	dropClaimFinalizer(t, ns, "data-hold-0", holdFinalizer)
	start := time.Now()
	pods := waitPods(t, ns, "hold", 1)
	t.Logf("hold-0 Ready %v after the old claim's finalizer was removed", time.Since(start).Round(100*time.Millisecond))
	if ref := metav1.GetControllerOf(pods["hold-0"]); ref == nil || ref.Kind != "PetSet" {
		t.Errorf("hold-0 controller %v, want the PetSet", ref)
	}
	cl, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-hold-0", metav1.GetOptions{})
	if err != nil || cl.UID == old.UID || cl.Labels[controller.LabelSetName] != "hold" {
		t.Fatalf("data-hold-0 is not a fresh claim of the set: %v %+v", err, cl)
	}
	waitStatus(t, c, ns, "hold", func(st v1alpha1.PetSetStatus) bool {
		ready := meta.FindStatusCondition(st.Conditions, "Ready")
		return st.ReadyReplicas == 1 && ready != nil && ready.Status == metav1.ConditionTrue
	})
}

// Someone removes petset.dev/set-name from pets: the controller's cache,
// which holds only pods with that label, reports them deleted. A
// condemned pet (its label removed while the scale-down waits for a
// higher pet to terminate) is still deleted once its turn comes, as
// StatefulSet, which does not rely on that label, would; an in-range pet
// is labelled back, the same pod. The set ends at one Ready pet, counted
// as such.
func TestPetSetPetLabelRemoved(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "unlabel")
	headlessService(t, ns, "unl", map[string]string{"app": "unl"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "unl", "unl", 3)
	ps.Spec.VolumeClaimTemplates = nil
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	before := waitPods(t, ns, "unl", 3)
	waitStatus(t, c, ns, "unl", func(st v1alpha1.PetSetStatus) bool { return st.ReadyReplicas == 3 })
	_, deleted, stopWatch := podEvents(t, ns, "unl")
	defer stopWatch()

	setFinalizers(t, ns, "unl-2", holdFinalizer)
	t.Cleanup(func() {
		tb.Client.CoreV1().Pods(ns).Patch(ctx, "unl-2", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	scalePetSet(t, c, ns, "unl", 1)
	pollUntil(t, 60*time.Second, "unl-2 Terminating", func() (bool, string) {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "unl-2", metav1.GetOptions{})
		return err == nil && p.DeletionTimestamp != nil, "not yet"
	})
	unlabel := []byte(`{"metadata":{"labels":{"` + controller.LabelSetName + `":null}}}`)
	for _, name := range []string{"unl-1", "unl-0"} {
		if _, err := tb.Client.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, unlabel, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, 30*time.Second, "unl-0 and unl-1 labelled back", func() (bool, string) {
		for _, name := range []string{"unl-0", "unl-1"} {
			p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, name + ": " + err.Error()
			}
			if p.Labels[controller.LabelSetName] != "unl" {
				return false, name + " unlabelled"
			}
		}
		return true, ""
	})
	if p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "unl-1", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("unl-1 deleted while unl-2 is Terminating: %v", err)
	}

	setFinalizers(t, ns, "unl-2")
	pollUntil(t, 60*time.Second, "condemned unl-1 deleted", func() (bool, string) {
		list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=unl"})
		if err != nil {
			return false, err.Error()
		}
		var names []string
		for _, p := range list.Items {
			names = append(names, p.Name)
		}
		return len(list.Items) == 1 && list.Items[0].Name == "unl-0", strings.Join(names, ",")
	})
	p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "unl-0", metav1.GetOptions{})
	if err != nil || p.UID != before["unl-0"].UID || p.Labels[controller.LabelSetName] != "unl" {
		t.Fatalf("unl-0 replaced or unlabelled: %v %+v", err, p)
	}
	waitStatus(t, c, ns, "unl", func(st v1alpha1.PetSetStatus) bool {
		ready := meta.FindStatusCondition(st.Conditions, "Ready")
		return st.Replicas == 1 && st.ReadyReplicas == 1 && len(st.Members) == 1 && ready != nil && ready.Status == metav1.ConditionTrue
	})
	if got := deleted(); slices.Contains(got, "unl-0") {
		t.Errorf("unl-0 deleted on the way: %v", got)
	}
}

// Migrating from a StatefulSet to a PetSet of fewer replicas, when the
// PetSet's first look finds the pods still controlled by the StatefulSet
// (here made certain: the PetSet is created before the StatefulSet is
// deleted with orphan propagation). Once the garbage collector orphans
// them, with no change to the PetSet, the pet in range is adopted in place
// and the condemned pod is adopted and deleted, as StatefulSet would.
func TestPetSetAdoptsCondemnedOrphanLater(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "late")
	headlessService(t, ns, "late", map[string]string{"app": "late"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "late", "late", 1)
	ps.Spec.VolumeClaimTemplates = nil
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr(int32(2)), ServiceName: "late", Selector: ps.Spec.Selector, Template: ps.Spec.Template,
		},
	}
	if _, err := tb.Client.AppsV1().StatefulSets(ns).Create(ctx, ss, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := waitPods(t, ns, "late", 2)
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	const why = "pod late-0 is controlled by StatefulSet late"
	waitStatus(t, c, ns, "late", func(st v1alpha1.PetSetStatus) bool {
		cond := meta.FindStatusCondition(st.Conditions, controller.ConditionPetsOwned)
		return cond != nil && cond.Status == metav1.ConditionFalse && strings.Contains(cond.Message, why)
	})
	_, deleted, stopWatch := podEvents(t, ns, "late")
	defer stopWatch()

	orphan := metav1.DeletePropagationOrphan
	if err := tb.Client.AppsV1().StatefulSets(ns).Delete(ctx, "late", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "late-0 adopted and condemned late-1 deleted", func() (bool, string) {
		list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=late"})
		if err != nil {
			return false, err.Error()
		}
		var state []string
		for _, p := range list.Items {
			ref := metav1.GetControllerOf(&p)
			state = append(state, fmt.Sprintf("%s controller %v", p.Name, ref))
		}
		if len(list.Items) != 1 || list.Items[0].Name != "late-0" {
			return false, strings.Join(state, "; ")
		}
		ref := metav1.GetControllerOf(&list.Items[0])
		return ref != nil && ref.Kind == "PetSet" && list.Items[0].UID == before["late-0"].UID, strings.Join(state, "; ")
	})
	if got := deleted(); !slices.Equal(got, []string{"late-1"}) {
		t.Errorf("pods deleted: %v, want late-1 only", got)
	}
	waitStatus(t, c, ns, "late", func(st v1alpha1.PetSetStatus) bool {
		ready := meta.FindStatusCondition(st.Conditions, "Ready")
		owned := meta.FindStatusCondition(st.Conditions, controller.ConditionPetsOwned)
		return st.Replicas == 1 && st.ReadyReplicas == 1 && ready != nil && ready.Status == metav1.ConditionTrue &&
			owned != nil && owned.Status == metav1.ConditionTrue
	})
}
