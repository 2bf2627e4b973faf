//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// whenScaled: Delete drops the claims of ordinals scaled away; deleting the
// set lets the garbage collector delete its pods, then whenDeleted: Delete
// drops the rest of the claims.
func TestPetSetDeletion(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "del")
	headlessService(t, ns, "q", map[string]string{"app": "q"}, false, svcPort{"amqp", 5672, corev1.ProtocolTCP})
	ps := newPetSet(ns, "q", "q", 3)
	ps.Spec.PersistentVolumeClaimRetentionPolicy = &v1alpha1.RetentionPolicy{WhenScaled: v1alpha1.Delete, WhenDeleted: v1alpha1.Delete}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "q", 3)
	waitLiveClaims(t, ns, "data-q-0", "data-q-1", "data-q-2")

	scalePetSet(t, c, ns, "q", 2)
	waitPods(t, ns, "q", 2)
	waitLiveClaims(t, ns, "data-q-0", "data-q-1")

	_, deleted, stopWatch := podEvents(t, ns, "q")
	defer stopWatch()
	if err := c.Delete(ctx, ps); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "PetSet and its pods deleted", func() (bool, string) {
		err := c.Get(ctx, client.ObjectKeyFromObject(ps), &v1alpha1.PetSet{})
		return apierrors.IsNotFound(err) && len(deleted()) == 2, fmt.Sprintf("%v, deleted %v", err, deleted())
	})
	if got := slices.Sorted(slices.Values(deleted())); !slices.Equal(got, []string{"q-0", "q-1"}) {
		t.Errorf("deleted %v, want q-0 and q-1", got)
	}
	waitLiveClaims(t, ns)
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

// `kubectl delete petset --cascade=orphan` finishes: the garbage collector
// patches the owner reference off every ControllerRevision, which the API
// server only accepts because the revision data is canonical JSON. A
// revision with keys in struct order is shown to be rejected by the same
// kind of patch.
func TestPetSetOrphanDeletion(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "orphan")
	headlessService(t, ns, "ob", map[string]string{"app": "ob"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "ob", "ob", 1)
	ps.Spec.VolumeClaimTemplates = nil
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "ob", 1)
	cur := updatePetSet(t, c, client.ObjectKeyFromObject(ps), func(p *v1alpha1.PetSet) {
		p.Spec.Template.Spec.Containers[0].Image = "registry.invalid/petset/fake:2"
		p.Spec.Template.Annotations = map[string]string{"z": "last", "a": "<first & html>"}
	})
	waitStatus(t, c, ns, "ob", func(st v1alpha1.PetSetStatus) bool {
		return st.ObservedGeneration >= cur.Generation && st.UpdatedReplicas == 1 && st.ReadyReplicas == 1 && st.CurrentRevision == st.UpdateRevision
	})
	revisions := func() []appsv1.ControllerRevision {
		list, err := tb.Client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: controller.LabelSetName + "=ob"})
		if err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	if n := len(revisions()); n != 2 {
		t.Fatalf("%d revisions before the deletion, want 2", n)
	}

	if err := c.Delete(ctx, cur, client.PropagationPolicy(metav1.DeletePropagationOrphan)); err != nil {
		t.Fatal(err)
	}
	pollEvery(t, 200*time.Millisecond, 60*time.Second, "PetSet gone after an orphaning delete", func() (bool, string) {
		var left v1alpha1.PetSet
		err := c.Get(ctx, client.ObjectKeyFromObject(ps), &left)
		return apierrors.IsNotFound(err), fmt.Sprintf("finalizers %v, deleted %v", left.Finalizers, left.DeletionTimestamp)
	})
	left := revisions()
	if len(left) != 2 {
		t.Fatalf("%d revisions after the orphaning delete, want both kept", len(left))
	}
	for _, cr := range left {
		for _, ref := range cr.OwnerReferences {
			if ref.UID == cur.UID {
				t.Errorf("revision %s still owned by the deleted set", cr.Name)
			}
		}
	}

	// The garbage collector patches built-in objects with a strategic
	// merge patch, which the API server applies to the object decoded
	// into maps: the data is encoded again, with sorted keys. On a
	// revision whose data is in struct order the same kind of patch
	// fails: what canonical data avoids.
	structOrder, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": cur.Spec.Template}})
	old := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: "struct-order", Labels: map[string]string{"app": "none"}},
		Data:       runtime.RawExtension{Raw: structOrder},
		Revision:   1,
	}
	if _, err := tb.Client.AppsV1().ControllerRevisions(ns).Create(ctx, old, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := tb.Client.AppsV1().ControllerRevisions(ns).Patch(ctx, "struct-order", types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"app":"other"}}}`), metav1.PatchOptions{})
	if err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("patching a struct-order revision: %v, want data: field is immutable", err)
	}
	for _, cr := range left {
		if _, err := tb.Client.AppsV1().ControllerRevisions(ns).Patch(ctx, cr.Name, types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"patched":"yes"}}}`), metav1.PatchOptions{}); err != nil {
			t.Errorf("patching %s: %v", cr.Name, err)
		}
	}
}
