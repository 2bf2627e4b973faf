//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// revisionNames lists the ControllerRevisions of set in ns, sorted.
func revisionNames(t *testing.T, ns, set string) []string {
	t.Helper()
	list, err := tb.Client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: controller.LabelSetName + "=" + set})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, cr := range list.Items {
		if cr.DeletionTimestamp == nil {
			out = append(out, cr.Name)
		}
	}
	slices.Sort(out)
	return out
}

// revisionHistoryLimit 1 on the real control plane: with a partition
// holding pets 0 and 1 at the first revision, three template updates
// reach pet 2 one after another. The first revision (current, in use by
// two pets) and the newest (the update revision) are never pruned; of
// the unused ones only the newest is kept, so the second revision goes
// once the fourth exists, as StatefulSet's truncateHistory does.
func TestPetSetRevisionHistoryPruned(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "history")
	headlessService(t, ns, "rh", map[string]string{"app": "rh"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "rh", "rh", 3)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.RevisionHistoryLimit = ptr(int32(1))
	ps.Spec.UpdateStrategy.RollingUpdate = &v1alpha1.RollingUpdate{Partition: ptr(int32(2))}
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	before := waitPods(t, ns, "rh", 3)
	var revs []string // in the order they were made
	waitStatus(t, c, ns, "rh", func(st v1alpha1.PetSetStatus) bool {
		revs = []string{st.CurrentRevision}
		return st.ReadyReplicas == 3 && st.CurrentRevision != "" && st.UpdateRevision == st.CurrentRevision
	})
	waitRevisions := func(want ...string) {
		t.Helper()
		want = slices.Sorted(slices.Values(want))
		pollUntil(t, 60*time.Second, "revisions "+strings.Join(want, ","), func() (bool, string) {
			got := revisionNames(t, ns, "rh")
			return slices.Equal(got, want), "have " + strings.Join(got, ",")
		})
	}
	waitRevisions(revs[0])

	uid := before["rh-2"].UID
	for i := 2; i <= 4; i++ {
		img := fmt.Sprintf("registry.invalid/petset/fake:history-%d", i)
		updatePetSet(t, c, client.ObjectKeyFromObject(ps), func(p *v1alpha1.PetSet) {
			p.Spec.Template.Spec.Containers[0].Image = img
		})
		p := waitNewPod(t, ns, "rh-2", uid)
		uid = p.UID
		rev := p.Labels[controller.LabelRevision]
		if p.Spec.Containers[0].Image != img || slices.Contains(revs, rev) {
			t.Fatalf("rh-2 at %s with %s after update %d, want a new revision with %s", rev, p.Spec.Containers[0].Image, i, img)
		}
		revs = append(revs, rev)
		waitStatus(t, c, ns, "rh", func(st v1alpha1.PetSetStatus) bool {
			return st.UpdateRevision == rev && st.CurrentRevision == revs[0] && st.ReadyReplicas == 3
		})
		switch i {
		case 2: // current and update: nothing to prune
			waitRevisions(revs[0], revs[1])
		case 3: // one unused revision: within the limit
			waitRevisions(revs[0], revs[1], revs[2])
		case 4: // two unused: the older goes
			waitRevisions(revs[0], revs[2], revs[3])
		}
	}
	// The pets below the partition were never touched and are still at
	// the first revision, which is kept.
	for _, name := range []string{"rh-0", "rh-1"} {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.UID != before[name].UID || p.Labels[controller.LabelRevision] != revs[0] {
			t.Errorf("%s uid %s at %s, want %s at %s", name, p.UID, p.Labels[controller.LabelRevision], before[name].UID, revs[0])
		}
	}
}
