//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// podUIDs returns the UIDs of the pods of app in ns, by name.
func podUIDs(t *testing.T, ns, app string) map[string]types.UID {
	t.Helper()
	list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]types.UID{}
	for _, p := range list.Items {
		out[p.Name] = p.UID
	}
	return out
}

// Migration from a StatefulSet: its pods and claims, orphaned by
// `kubectl delete statefulset --cascade=orphan`, are adopted by a PetSet of
// the same name and spec with no pod or claim replaced (the claims get the
// PetSet's labels and, under whenDeleted: Delete, the PetSet as
// controller), and the set goes on: a scale-up adds the next pet.
func TestPetSetAdoptsStatefulSetPods(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "migrate")
	headlessService(t, ns, "mig", map[string]string{"app": "mig"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "mig", "mig", 2)
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mig"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ps.Spec.Replicas, ServiceName: "mig", Selector: ps.Spec.Selector,
			Template: ps.Spec.Template, VolumeClaimTemplates: ps.Spec.VolumeClaimTemplates,
		},
	}
	if _, err := tb.Client.AppsV1().StatefulSets(ns).Create(ctx, ss, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "mig", 2)
	before := podUIDs(t, ns, "mig")
	claimsBefore := map[string]types.UID{}
	for _, name := range []string{"data-mig-0", "data-mig-1"} {
		boundVolume(t, ns, name)
		cl, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		claimsBefore[name] = cl.UID
	}

	orphan := metav1.DeletePropagationOrphan
	if err := tb.Client.AppsV1().StatefulSets(ns).Delete(ctx, "mig", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "StatefulSet gone and its pods orphaned", func() (bool, string) {
		if _, err := tb.Client.AppsV1().StatefulSets(ns).Get(ctx, "mig", metav1.GetOptions{}); err == nil {
			return false, "StatefulSet still there"
		}
		list, _ := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=mig"})
		for _, p := range list.Items {
			if len(p.OwnerReferences) > 0 {
				return false, p.Name + " still owned"
			}
		}
		return len(list.Items) == 2, "pods"
	})

	_, deleted, stopWatch := podEvents(t, ns, "mig")
	defer stopWatch()
	// The StatefulSet kept its claims (Retain); the PetSet takes them
	// under whenDeleted: Delete, so they are its own from now on.
	ps.Spec.PersistentVolumeClaimRetentionPolicy = &v1alpha1.RetentionPolicy{WhenDeleted: v1alpha1.Delete}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "pods adopted", func() (bool, string) {
		list, _ := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=mig"})
		for _, p := range list.Items {
			ref := metav1.GetControllerOf(&p)
			if ref == nil || ref.Kind != "PetSet" || ref.Name != "mig" || p.Labels[controller.LabelRevision] == "" {
				return false, p.Name + " not adopted as a pet"
			}
		}
		return len(list.Items) == 2, "pods"
	})
	waitStatus(t, c, ns, "mig", func(st v1alpha1.PetSetStatus) bool {
		return st.ReadyReplicas == 2 && st.UpdatedReplicas == 2 && len(st.Members) == 2
	})

	scalePetSet(t, c, ns, "mig", 3)
	pods := waitPods(t, ns, "mig", 3)
	for name, uid := range before {
		if pods[name] == nil || pods[name].UID != uid {
			t.Errorf("%s was replaced during the migration", name)
		}
	}
	if got := deleted(); len(got) != 0 {
		t.Errorf("pods deleted during the migration: %v", got)
	}
	for name, uid := range claimsBefore {
		cl, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || cl.UID != uid {
			t.Fatalf("claim %s replaced or gone: %v", name, err)
		}
		ref := metav1.GetControllerOf(cl)
		if ref == nil || ref.Kind != "PetSet" || ref.Name != "mig" || cl.Labels[controller.LabelSetName] != "mig" {
			t.Errorf("claim %s not taken by the PetSet: controller %v labels %v", name, ref, cl.Labels)
		}
	}
	if ref := metav1.GetControllerOf(pods["mig-2"]); ref == nil || ref.Kind != "PetSet" {
		t.Errorf("mig-2 controller %v", ref)
	}
}

// A pod with a pet's name owned by another controller holds that pet back
// with a Warning event and a PetsOwned=False condition naming it, never a
// silent stall; once it goes, the pet is made.
func TestPetSetPodConflict(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "conflict")
	headlessService(t, ns, "cf", map[string]string{"app": "cf"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	holder, err := tb.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "holder"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	squatter := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cf-1", Labels: map[string]string{"app": "cf"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "holder", UID: holder.UID, Controller: ptr(true)}}},
		Spec: podTemplate("cf").Spec,
	}
	if _, err := tb.Client.CoreV1().Pods(ns).Create(ctx, squatter, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ps := newPetSet(ns, "cf", "cf", 2)
	ps.Spec.VolumeClaimTemplates = nil
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	const why = "pod cf-1 is controlled by ConfigMap holder"
	waitStatus(t, c, ns, "cf", func(st v1alpha1.PetSetStatus) bool {
		cond := meta.FindStatusCondition(st.Conditions, controller.ConditionPetsOwned)
		ready := meta.FindStatusCondition(st.Conditions, "Ready")
		return st.ReadyReplicas == 1 && cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == "PodConflict" &&
			strings.Contains(cond.Message, why) && ready != nil && strings.Contains(ready.Message, why)
	})
	pollUntil(t, 30*time.Second, "PodConflict event", func() (bool, string) {
		list, err := tb.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if e.Reason == "PodConflict" && e.Type == corev1.EventTypeWarning && e.Regarding.Name == "cf" && strings.Contains(e.Note, why) {
				return true, ""
			}
		}
		return false, "no event"
	})
	p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "cf-1", metav1.GetOptions{})
	if err != nil || p.UID == "" || metav1.GetControllerOf(p).UID != holder.UID {
		t.Fatalf("cf-1 taken from its controller: %v %+v", err, p.OwnerReferences)
	}

	if err := tb.Client.CoreV1().Pods(ns).Delete(ctx, "cf-1", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(t, ns, "cf", 2)
	if ref := metav1.GetControllerOf(pods["cf-1"]); ref == nil || ref.Kind != "PetSet" {
		t.Errorf("cf-1 controller %v, want the PetSet", ref)
	}
	waitStatus(t, c, ns, "cf", func(st v1alpha1.PetSetStatus) bool {
		cond := meta.FindStatusCondition(st.Conditions, controller.ConditionPetsOwned)
		return cond != nil && cond.Status == metav1.ConditionTrue && st.ReadyReplicas == 2
	})
}

// A pet whose labels stop matching the selector is released (its
// controller reference removed, the pod kept), and its name then holds the
// pet back with PetsOwned=False; labelled back, it is adopted again, the
// same pod.
func TestPetSetReleasesAndReadopts(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "release")
	headlessService(t, ns, "rl", map[string]string{"app": "rl"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "rl", "rl", 1)
	ps.Spec.VolumeClaimTemplates = nil
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	uid := waitPods(t, ns, "rl", 1)["rl-0"].UID
	relabel := func(app string) {
		t.Helper()
		patch := []byte(`{"metadata":{"labels":{"app":"` + app + `"}}}`)
		if _, err := tb.Client.CoreV1().Pods(ns).Patch(ctx, "rl-0", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	owner := func() (*metav1.OwnerReference, types.UID) {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "rl-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return metav1.GetControllerOf(p), p.UID
	}

	relabel("elsewhere")
	pollUntil(t, 30*time.Second, "rl-0 released", func() (bool, string) {
		ref, got := owner()
		if got != uid {
			t.Fatalf("rl-0 replaced: uid %s, was %s", got, uid)
		}
		return ref == nil, "still controlled"
	})
	waitStatus(t, c, ns, "rl", func(st v1alpha1.PetSetStatus) bool {
		cond := meta.FindStatusCondition(st.Conditions, controller.ConditionPetsOwned)
		return cond != nil && cond.Status == metav1.ConditionFalse && strings.Contains(cond.Message, "pod rl-0 exists and does not match the selector")
	})

	relabel("rl")
	pollUntil(t, 30*time.Second, "rl-0 adopted again", func() (bool, string) {
		ref, got := owner()
		return got == uid && ref != nil && ref.Kind == "PetSet" && ref.UID == ps.UID, "not adopted"
	})
	waitStatus(t, c, ns, "rl", func(st v1alpha1.PetSetStatus) bool {
		cond := meta.FindStatusCondition(st.Conditions, controller.ConditionPetsOwned)
		return cond != nil && cond.Status == metav1.ConditionTrue && st.ReadyReplicas == 1
	})
}
