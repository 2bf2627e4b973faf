//go:build e2e

package e2e

import (
	"slices"
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
