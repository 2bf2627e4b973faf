//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// liveClaims lists the claims of ns that are not being deleted, by name,
// with their UIDs.
func liveClaims(t *testing.T, ns string) map[string]*corev1.PersistentVolumeClaim {
	t.Helper()
	list, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.PersistentVolumeClaim{}
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp == nil {
			out[list.Items[i].Name] = &list.Items[i]
		}
	}
	return out
}

func claimSet(m map[string]*corev1.PersistentVolumeClaim) []string {
	var out []string
	for name := range m {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func waitLiveClaims(t *testing.T, ns string, want ...string) {
	t.Helper()
	pollUntil(t, 90*time.Second, "claims", func() (bool, string) {
		got := claimSet(liveClaims(t, ns))
		return slices.Equal(got, want), "have " + strings.Join(got, ",")
	})
}

// whenScaled and whenDeleted: Delete are carried out by the garbage
// collector through owner references: the claims of a pet scaled away go
// with its pod, the rest go with the set, even with the controller
// stopped before the set is deleted (nothing waits on it: no finalizer).
// A claim kept from an earlier set of the same name, which no pet of this
// set used, is deleted by neither, whatever its labels.
func TestPetSetRetentionByGarbageCollector(t *testing.T) {
	c, stop := startController(t)
	ns := tb.Namespace(t, "retain")
	headlessService(t, ns, "rt", map[string]string{"app": "rt"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	// data-rt-4 was left by an earlier set "rt" with the Retain policy.
	earlier := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data-rt-4",
			Labels: map[string]string{"app": "rt", "petset.dev/set-name": "rt", "petset.dev/pod-index": "4"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	earlier, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, earlier, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps := newPetSet(ns, "rt", "rt", 3)
	ps.Spec.PersistentVolumeClaimRetentionPolicy = &v1alpha1.RetentionPolicy{WhenScaled: v1alpha1.Delete, WhenDeleted: v1alpha1.Delete}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "rt", 3)
	waitLiveClaims(t, ns, "data-rt-0", "data-rt-1", "data-rt-2", "data-rt-4")
	for name, cl := range liveClaims(t, ns) {
		ref := metav1.GetControllerOf(cl)
		if name == "data-rt-4" {
			if len(cl.OwnerReferences) != 0 {
				t.Errorf("%s of the earlier set got owners %v", name, cl.OwnerReferences)
			}
			continue
		}
		if ref == nil || ref.Kind != "PetSet" || ref.Name != "rt" || ref.UID != ps.UID {
			t.Errorf("%s controller %v, want the PetSet (whenDeleted: Delete)", name, ref)
		}
	}

	scalePetSet(t, c, ns, "rt", 1)
	waitPods(t, ns, "rt", 1)
	waitLiveClaims(t, ns, "data-rt-0", "data-rt-4")

	// Stop the controller: deleting the set needs nobody but the
	// garbage collector.
	stop()
	if err := c.Delete(ctx, ps); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "PetSet, pods and claims gone", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(ps), &v1alpha1.PetSet{}); !apierrors.IsNotFound(err) {
			return false, "PetSet still there"
		}
		if n := len(podUIDs(t, ns, "rt")); n > 0 {
			return false, "pods left"
		}
		got := claimSet(liveClaims(t, ns))
		return slices.Equal(got, []string{"data-rt-4"}), "claims " + strings.Join(got, ",")
	})
	cl, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-rt-4", metav1.GetOptions{})
	if err != nil || cl.UID != earlier.UID || cl.DeletionTimestamp != nil {
		t.Errorf("data-rt-4 of the earlier set: %v %+v", err, cl)
	}
}

// The case: whenScaled: Delete with a claim template, scaled
// 3 -> 1 -> 3 with the scale-up right after the pods went, while their
// claims are on their way out. data-sd-2 is held in deletion by a
// finalizer (as pvc-protection holds a claim in use): pet 2 waits, with a
// WaitForClaim event and the reason in the Ready condition, and no pod
// sd-2 is made on it; once it is gone, pet 2 gets a fresh claim. All
// three reach Ready on fresh, bound claims.
func TestPetSetScaleDownUpFreshClaims(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "rescale")
	headlessService(t, ns, "sd", map[string]string{"app": "sd"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "sd", "sd", 3)
	ps.Spec.PersistentVolumeClaimRetentionPolicy = &v1alpha1.RetentionPolicy{WhenScaled: v1alpha1.Delete}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "sd", 3)
	old := map[string]types.UID{}
	for name, cl := range liveClaims(t, ns) {
		old[name] = cl.UID
	}
	if len(old) != 3 {
		t.Fatalf("claims %v", old)
	}
	const hold = "petset.dev/e2e-hold"
	setFinalizers := func(fin []string) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cl, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-sd-2", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cl.Finalizers = append(slices.DeleteFunc(cl.Finalizers, func(f string) bool { return f == hold }), fin...)
			_, err = tb.Client.CoreV1().PersistentVolumeClaims(ns).Update(ctx, cl, metav1.UpdateOptions{})
			return err
		})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	setFinalizers([]string{hold})
	t.Cleanup(func() { setFinalizers(nil) })

	added, deleted, stopWatch := podEvents(t, ns, "sd")
	defer stopWatch()
	scalePetSet(t, c, ns, "sd", 1)
	pollUntil(t, 60*time.Second, "sd-2 and sd-1 gone, data-sd-2 being deleted", func() (bool, string) {
		cl, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-sd-2", metav1.GetOptions{})
		return len(deleted()) >= 2 && err == nil && cl.DeletionTimestamp != nil, strings.Join(deleted(), ",")
	})
	scalePetSet(t, c, ns, "sd", 3)

	const why = "claim data-sd-2 is being deleted"
	waitStatus(t, c, ns, "sd", func(st v1alpha1.PetSetStatus) bool {
		ready := meta.FindStatusCondition(st.Conditions, "Ready")
		return st.ReadyReplicas == 2 && ready != nil && strings.Contains(ready.Message, why)
	})
	pollUntil(t, 30*time.Second, "WaitForClaim event", func() (bool, string) {
		list, err := tb.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if e.Reason == "WaitForClaim" && strings.Contains(e.Note, why) {
				return true, ""
			}
		}
		return false, "no event"
	})
	if _, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "sd-2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("sd-2 made while its claim is being deleted: %v", err)
	}

	setFinalizers(nil)
	pods := waitPods(t, ns, "sd", 3)
	// The watch starts with the three pods that existed; after them,
	// sd-1 and sd-2 are each made once.
	if got := added(); len(got) != 5 || !slices.Equal(slices.Sorted(slices.Values(got[3:])), []string{"sd-1", "sd-2"}) {
		t.Errorf("pods added %v, want sd-0, sd-1, sd-2 then sd-1 and sd-2 once each", got)
	}
	claims := liveClaims(t, ns)
	for _, name := range []string{"data-sd-0", "data-sd-1", "data-sd-2"} {
		cl := claims[name]
		if cl == nil {
			t.Fatalf("%s missing", name)
		}
		boundVolume(t, ns, name)
		fresh := cl.UID != old[name]
		if name == "data-sd-0" && fresh {
			t.Errorf("data-sd-0 of a pet never scaled away was replaced")
		}
		if name != "data-sd-0" && !fresh {
			t.Errorf("%s is the claim of the pet scaled away, not a fresh one", name)
		}
	}
	for name, p := range pods {
		if ref := metav1.GetControllerOf(p); ref == nil || ref.Kind != "PetSet" {
			t.Errorf("%s controller %v", name, ref)
		}
	}
}

// Deleting a PetSet with orphan propagation keeps its pods and claims,
// which lose their owner references; the set goes.
func TestPetSetOrphanDeletionKeepsPods(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "orphan")
	headlessService(t, ns, "or", map[string]string{"app": "or"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "or", "or", 2)
	ps.Spec.PersistentVolumeClaimRetentionPolicy = &v1alpha1.RetentionPolicy{WhenDeleted: v1alpha1.Delete}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "or", 2)
	waitLiveClaims(t, ns, "data-or-0", "data-or-1")
	before := podUIDs(t, ns, "or")
	_, deleted, stopWatch := podEvents(t, ns, "or")
	defer stopWatch()

	if err := c.Delete(ctx, ps, client.PropagationPolicy(metav1.DeletePropagationOrphan)); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "pods and claims orphaned", func() (bool, string) {
		list, _ := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=or"})
		for _, p := range list.Items {
			if len(p.OwnerReferences) > 0 || p.DeletionTimestamp != nil {
				return false, p.Name + " still owned or being deleted"
			}
		}
		for name, cl := range liveClaims(t, ns) {
			if len(cl.OwnerReferences) > 0 {
				return false, name + " still owned"
			}
		}
		return len(list.Items) == 2, "pods"
	})
	// The set goes once the garbage collector has orphaned every
	// dependent, its ControllerRevisions too (which needs revision data
	// the API server can round-trip).
	pollUntil(t, 60*time.Second, "PetSet gone", func() (bool, string) {
		var left v1alpha1.PetSet
		err := c.Get(ctx, client.ObjectKeyFromObject(ps), &left)
		return apierrors.IsNotFound(err), fmt.Sprintf("finalizers %v", left.Finalizers)
	})
	if got := podUIDs(t, ns, "or"); len(got) != 2 || got["or-0"] != before["or-0"] || got["or-1"] != before["or-1"] {
		t.Errorf("pods %v, want the same %v", got, before)
	}
	if got := deleted(); len(got) != 0 {
		t.Errorf("pods deleted: %v", got)
	}
	waitLiveClaims(t, ns, "data-or-0", "data-or-1")
}

// claimCreateConflicts reads from the API server's metrics how many claim
// creates it has answered 409 (AlreadyExists) since it started.
func claimCreateConflicts(t *testing.T) int {
	t.Helper()
	b, err := tb.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "apiserver_request_total{") && strings.Contains(line, `code="409"`) &&
			strings.Contains(line, `resource="persistentvolumeclaims"`) && strings.Contains(line, `verb="POST"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			n += int(v)
		}
	}
	return n
}

// Claims are read from the cache before they are created: a rolling update
// that replaces every pet of a set with claims costs the API server no
// claim create answered 409, where creating blindly cost one per claim
// per pet. (The suite runs its tests one at a time, so the API server's
// counter moves only for this set.)
func TestPetSetRollingUpdateNoClaimConflicts(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "noconflict")
	headlessService(t, ns, "nc", map[string]string{"app": "nc"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "nc", "nc", 3)
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	before := waitPods(t, ns, "nc", 3)
	waitStatus(t, c, ns, "nc", func(st v1alpha1.PetSetStatus) bool { return st.ReadyReplicas == 3 })
	conflicts := claimCreateConflicts(t)

	cur := updatePetSet(t, c, client.ObjectKeyFromObject(ps), func(p *v1alpha1.PetSet) {
		p.Spec.Template.Spec.Containers[0].Image = "registry.invalid/petset/fake:2"
	})
	waitStatus(t, c, ns, "nc", func(st v1alpha1.PetSetStatus) bool {
		return st.ObservedGeneration >= cur.Generation && st.UpdatedReplicas == 3 && st.ReadyReplicas == 3 && st.CurrentRevision == st.UpdateRevision
	})
	after := waitPods(t, ns, "nc", 3)
	for name, p := range before {
		if after[name] == nil || after[name].UID == p.UID {
			t.Fatalf("%s was not replaced by the rolling update", name)
		}
	}
	if got := claimCreateConflicts(t) - conflicts; got != 0 {
		t.Errorf("the rolling update cost %d claim creates answered 409, want 0", got)
	}
}

// A set an earlier version was deleting when the controller was upgraded:
// it carries the legacy finalizer and its claims have no owner (that
// version deleted them by label). The new controller gives the claims to
// the set before it drops the finalizer (whenDeleted: Delete, background
// propagation), so the garbage collector deletes them: nothing leaks.
func TestPetSetLegacyDeletionDeletesClaims(t *testing.T) {
	c, stop := startController(t)
	ns := tb.Namespace(t, "legacy")
	headlessService(t, ns, "lg", map[string]string{"app": "lg"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "lg", "lg", 2)
	ps.Spec.PersistentVolumeClaimRetentionPolicy = &v1alpha1.RetentionPolicy{WhenDeleted: v1alpha1.Delete}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "lg", 2)
	waitLiveClaims(t, ns, "data-lg-0", "data-lg-1")

	// The earlier version's state: no controller running, claims without
	// owner, the legacy finalizer on the set, the set being deleted.
	stop()
	for name := range liveClaims(t, ns) {
		if _, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, name, types.MergePatchType,
			[]byte(`{"metadata":{"ownerReferences":null}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	updatePetSet(t, c, client.ObjectKeyFromObject(ps), func(p *v1alpha1.PetSet) {
		p.Finalizers = append(p.Finalizers, controller.LegacyFinalizer)
	})
	if err := c.Delete(ctx, ps, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	// Background propagation: the garbage collector deletes the
	// dependents once the set is gone, and the finalizer holds it.
	var held v1alpha1.PetSet
	if err := c.Get(ctx, client.ObjectKeyFromObject(ps), &held); err != nil || held.DeletionTimestamp == nil {
		t.Fatalf("set not held by the legacy finalizer: %v %v", err, held.Finalizers)
	}
	if got := liveClaims(t, ns); len(got) != 2 {
		t.Fatalf("claims %v before the upgrade, want both", got)
	}
	// data-lg-4 was kept from an earlier set "lg": this one never had an
	// ordinal 4, so its label match gives it to no one.
	earlier := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data-lg-4",
			Labels: map[string]string{"app": "lg", "petset.dev/set-name": "lg", "petset.dev/pod-index": "4"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, earlier, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	runController(t) // the upgraded controller
	pollUntil(t, 90*time.Second, "set, pods and the set's claims gone", func() (bool, string) {
		var left v1alpha1.PetSet
		err := c.Get(ctx, client.ObjectKeyFromObject(ps), &left)
		claims := claimSet(liveClaims(t, ns))
		pods, _ := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=lg"})
		return apierrors.IsNotFound(err) && slices.Equal(claims, []string{"data-lg-4"}) && len(pods.Items) == 0,
			fmt.Sprintf("set err %v finalizers %v, live claims %v, %d pods", err, left.Finalizers, claims, len(pods.Items))
	})
	kept := liveClaims(t, ns)["data-lg-4"]
	if kept == nil || len(kept.OwnerReferences) != 0 {
		t.Fatalf("data-lg-4 of an earlier set: %v, want kept without owner", kept)
	}
}
