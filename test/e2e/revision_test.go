//go:build e2e

package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// waitNewPod waits until pod name exists with a UID other than old and is
// Running and Ready, and returns it.
func waitNewPod(t *testing.T, ns, name string, old types.UID) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	pollUntil(t, 60*time.Second, name+" back as a new pod, Ready", func() (bool, string) {
		var err error
		if p, err = tb.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		return p.UID != old && p.DeletionTimestamp == nil && podReady(p), describePod(p) + " uid " + string(p.UID)
	})
	return p
}

// A canary below which pets must keep the old template: with partition 2
// and a broken template on kv-2, a pet below the partition that is
// deleted, or evicted, comes back on the current revision's stored
// template (image and revision label), not on the broken one, and the
// canary stays where it is.
func TestPetSetRevisionBelowPartition(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "canary")
	headlessService(t, ns, "kv", map[string]string{"app": "kv"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "kv", "kv", 3)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.UpdateStrategy.RollingUpdate = &v1alpha1.RollingUpdate{Partition: ptr(int32(2))}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	oldImage := ps.Spec.Template.Spec.Containers[0].Image
	before := waitPods(t, ns, "kv", 3)
	var r1 string
	waitStatus(t, c, ns, "kv", func(st v1alpha1.PetSetStatus) bool {
		r1 = st.CurrentRevision
		return st.ReadyReplicas == 3 && r1 != "" && st.UpdateRevision == r1
	})
	for name, p := range before {
		if p.Labels[controller.LabelRevision] != r1 {
			t.Fatalf("%s at revision %q, want %s", name, p.Labels[controller.LabelRevision], r1)
		}
	}

	// The canary: a broken template that reaches kv-2 only.
	const broken = "registry.invalid/petset/broken:canary"
	updatePetSet(t, c, client.ObjectKeyFromObject(ps), func(p *v1alpha1.PetSet) {
		p.Spec.Template.Spec.Containers[0].Image = broken
	})
	canary := waitNewPod(t, ns, "kv-2", before["kv-2"].UID)
	r2 := canary.Labels[controller.LabelRevision]
	if canary.Spec.Containers[0].Image != broken || r2 == r1 {
		t.Fatalf("kv-2 at %s with %s, want the canary", r2, canary.Spec.Containers[0].Image)
	}
	if err := tb.SetPodReady(ctx, ns, "kv-2", false); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, ns, "kv", func(st v1alpha1.PetSetStatus) bool {
		return st.UpdateRevision == r2 && st.CurrentRevision == r1 && st.ReadyReplicas == 2
	})

	// kv-0 is deleted, kv-1 evicted: both come back at r1, from the data
	// r1's ControllerRevision stored.
	if err := tb.Client.CoreV1().Pods(ns).Delete(ctx, "kv-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eviction := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kv-1"}}
	if err := tb.Client.CoreV1().Pods(ns).EvictV1(ctx, eviction); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kv-0", "kv-1"} {
		p := waitNewPod(t, ns, name, before[name].UID)
		if img, rev := p.Spec.Containers[0].Image, p.Labels[controller.LabelRevision]; img != oldImage || rev != r1 {
			t.Errorf("%s below the partition came back at %s with %s, want %s with %s", name, rev, img, r1, oldImage)
		}
		if p.Spec.Hostname != name || p.Spec.Subdomain != "kv" {
			t.Errorf("%s came back with hostname %q subdomain %q", name, p.Spec.Hostname, p.Spec.Subdomain)
		}
	}
	if p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "kv-2", metav1.GetOptions{}); err != nil || p.UID != canary.UID {
		t.Errorf("the canary kv-2 was replaced (%v)", err)
	}
	// The stored template is what r1's pods were made from.
	cr, err := tb.Client.AppsV1().ControllerRevisions(ns).Get(ctx, r1, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cr.Data.Raw), oldImage) || strings.Contains(string(cr.Data.Raw), broken) {
		t.Errorf("revision %s data %s does not record %s", r1, cr.Data.Raw, oldImage)
	}
}

// Revision identity on the real API server: going back to an earlier
// template reuses its ControllerRevision (same name, renumbered newest,
// pets labelled with it), and a revision name already taken by an object
// with other data is a collision: status.collisionCount goes up and the
// template gets the next name.
func TestPetSetRevisionIdentity(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "identity")
	headlessService(t, ns, "id", map[string]string{"app": "id"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "id", "id", 2)
	ps.Spec.VolumeClaimTemplates = nil
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(ps)
	generation := int64(1)
	settled := func(image string) v1alpha1.PetSetStatus {
		t.Helper()
		var got v1alpha1.PetSetStatus
		waitStatus(t, c, ns, "id", func(st v1alpha1.PetSetStatus) bool {
			got = st
			return st.ObservedGeneration >= generation && st.UpdatedReplicas == 2 && st.ReadyReplicas == 2 && st.CurrentRevision == st.UpdateRevision
		})
		for name, p := range waitPods(t, ns, "id", 2) {
			if p.Spec.Containers[0].Image != image || p.Labels[controller.LabelRevision] != got.UpdateRevision {
				t.Fatalf("%s at %s with %s, want %s with %s", name, p.Labels[controller.LabelRevision], p.Spec.Containers[0].Image, got.UpdateRevision, image)
			}
		}
		return got
	}
	setImage := func(image string) {
		generation = updatePetSet(t, c, key, func(p *v1alpha1.PetSet) { p.Spec.Template.Spec.Containers[0].Image = image }).Generation
	}
	number := func(name string) int64 {
		cr, err := tb.Client.AppsV1().ControllerRevisions(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cr.Revision
	}

	first := ps.Spec.Template.Spec.Containers[0].Image
	r1 := settled(first).UpdateRevision
	setImage("registry.invalid/petset/fake:2")
	r2 := settled("registry.invalid/petset/fake:2").UpdateRevision
	setImage(first) // back
	if back := settled(first).UpdateRevision; back != r1 || number(r1) <= number(r2) {
		t.Errorf("rollback: update revision %s (number %d), want %s renumbered above %s (%d)", back, number(back), r1, r2, number(r2))
	}

	// Someone else's ControllerRevision squats the name the next template
	// would get.
	var cur v1alpha1.PetSet
	if err := c.Get(ctx, key, &cur); err != nil {
		t.Fatal(err)
	}
	next := cur.DeepCopy()
	next.Spec.Template.Spec.Containers[0].Image = "registry.invalid/petset/fake:3"
	taken := controller.Revision(next)
	squatter := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: taken}, Data: runtime.RawExtension{Raw: []byte(`{"other":true}`)}, Revision: 1}
	if _, err := tb.Client.AppsV1().ControllerRevisions(ns).Create(ctx, squatter, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setImage("registry.invalid/petset/fake:3")
	st := settled("registry.invalid/petset/fake:3")
	if st.UpdateRevision == taken || st.CollisionCount == nil || *st.CollisionCount != 1 {
		t.Errorf("after a collision on %s: update revision %s, collisionCount %s; want another name and count 1", taken, st.UpdateRevision, countString(st.CollisionCount))
	}
	if cr, err := tb.Client.AppsV1().ControllerRevisions(ns).Get(ctx, taken, metav1.GetOptions{}); err != nil || len(cr.OwnerReferences) != 0 || string(cr.Data.Raw) != `{"other":true}` {
		t.Errorf("the squatting revision was changed: %v %v", cr, err)
	}
}

func countString(n *int32) string {
	if n == nil {
		return "unset"
	}
	return strconv.Itoa(int(*n))
}
