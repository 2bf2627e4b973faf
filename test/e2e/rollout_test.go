//go:build e2e

package e2e

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// A template change rolls from the highest ordinal down and stops at the
// partition; a pet stuck not Ready at a superseded revision is replaced
// once the template is fixed, with nobody deleting it by hand.
func TestPetSetRollingUpdate(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "roll")
	headlessService(t, ns, "kv", map[string]string{"app": "kv"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "kv", "kv", 3)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.UpdateStrategy.RollingUpdate = &v1alpha1.RollingUpdate{Partition: ptr(int32(1))}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	before := waitPods(t, ns, "kv", 3)
	_, deleted, stopWatch := podEvents(t, ns, "kv")
	defer stopWatch()

	setImage := func(image string) string {
		t.Helper()
		cur := updatePetSet(t, c, client.ObjectKeyFromObject(ps), func(p *v1alpha1.PetSet) {
			p.Spec.Template.Spec.Containers[0].Image = image
		})
		return controller.Revision(cur)
	}
	revisionOf := func(name string) string {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return p.Labels[controller.LabelRevision]
	}
	waitRevision := func(name, rev string) {
		t.Helper()
		pollEvery(t, 50*time.Millisecond, 60*time.Second, name+" at revision "+rev, func() (bool, string) {
			got := revisionOf(name)
			return got == rev, "revision " + got
		})
		waitPods(t, ns, "kv", 3)
	}

	r2 := setImage("registry.invalid/petset/fake:2")
	waitRevision("kv-1", r2)
	waitRevision("kv-2", r2)
	if got := deleted(); !slices.Equal(got, []string{"kv-2", "kv-1"}) {
		t.Errorf("update order %v, want kv-2 then kv-1", got)
	}
	// Give a wrong controller a second to touch kv-0.
	holdsFor(t, pollInterval, time.Second, "kv-0 below the partition left alone", func() (bool, string) {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "kv-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.UID == before["kv-0"].UID && p.DeletionTimestamp == nil, describePod(p) + " uid " + string(p.UID)
	})
	if now := waitPods(t, ns, "kv", 3)["kv-0"]; now.UID != before["kv-0"].UID {
		t.Error("kv-0 below the partition was replaced")
	}

	// A broken revision: kv-2 comes up at r3 but never becomes Ready (as a
	// failing readiness probe would have it).
	r3 := setImage("registry.invalid/petset/broken:3")
	pollEvery(t, 20*time.Millisecond, 60*time.Second, "kv-2 at the broken revision "+r3, func() (bool, string) {
		got := revisionOf("kv-2")
		return got == r3, "revision " + got
	})
	waitPods(t, ns, "kv", 3)
	if err := tb.SetPodReady(ctx, ns, "kv-2", false); err != nil {
		t.Fatal(err)
	}
	// The rollout is stuck on kv-2; fixing the template must replace it.
	r4 := setImage("registry.invalid/petset/fake:4")
	waitRevision("kv-2", r4)
	waitRevision("kv-1", r4)
	waitStatus(t, c, ns, "kv", func(st v1alpha1.PetSetStatus) bool {
		return st.UpdateRevision == r4 && st.UpdatedReplicas == 2 && st.ReadyReplicas == 3
	})

	// Each template has its ControllerRevision, numbered in order.
	crs, err := tb.Client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: controller.LabelSetName + "=kv"})
	if err != nil {
		t.Fatal(err)
	}
	number := map[string]int64{}
	for _, cr := range crs.Items {
		number[cr.Name] = cr.Revision
	}
	if !(number[r2] > 0 && number[r3] > number[r2] && number[r4] > number[r3]) {
		t.Errorf("controller revisions %v, want %s < %s < %s", number, r2, r3, r4)
	}
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
