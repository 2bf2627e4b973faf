//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"petset.dev/petset/controller"
)

// A pet whose identity labels a user removed or changed gets them back
// from the running controller, as a StatefulSet's pod does
// (processReplica, identityMatches): the pod keeps its UID. Removing
// petset.dev/pod-name leaves petset.dev/set-name, so the pod stays in the
// controller's label-selected cache and the watch event brings the set's
// pass (the resync is hours away).
func TestPetSetIdentityRepaired(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "identity")
	headlessService(t, ns, "ir", map[string]string{"app": "ir"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	ps := newPetSet(ns, "ir", "ir", 2)
	ps.Spec.VolumeClaimTemplates = nil
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(t, ns, "ir", 2)

	// What `kubectl label pod ir-0 petset.dev/pod-name-` and
	// `kubectl label --overwrite pod ir-1 petset.dev/pod-index=9` send.
	edits := map[string]string{
		"ir-0": `{"metadata":{"labels":{"petset.dev/pod-name":null}}}`,
		"ir-1": `{"metadata":{"labels":{"petset.dev/pod-index":"9"}}}`,
	}
	for name, patch := range edits {
		p, err := tb.Client.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Labels[controller.LabelPodName] == name && p.Labels[controller.LabelPodIndex] == name[len(name)-1:] {
			t.Fatalf("%s: the edit did not take: %v", name, p.Labels)
		}
	}
	pollUntil(t, 30*time.Second, "identity labels restored", func() (bool, string) {
		state := ""
		ok := true
		for i, name := range []string{"ir-0", "ir-1"} {
			p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			if p.UID != pods[name].UID {
				t.Fatalf("%s replaced: uid %s, was %s", name, p.UID, pods[name].UID)
			}
			good := p.Labels[controller.LabelPodName] == name && p.Labels[controller.LabelPodIndex] == fmt.Sprint(i) &&
				p.Labels[controller.LabelSetName] == "ir"
			ok = ok && good
			state += fmt.Sprintf("%s %v; ", name, p.Labels)
		}
		return ok, state
	})
}
