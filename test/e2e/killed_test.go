//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The controller is killed with SIGKILL in the middle of a scale-up and
// started again: the set converges, every pet is created once, and the
// claims made before the kill are the ones in use after it.
func TestPetSetControllerKilled(t *testing.T) {
	c, kill := startController(t)
	ns := tb.Namespace(t, "kill")
	headlessService(t, ns, "zk", map[string]string{"app": "zk"}, false, svcPort{"peer", 2888, corev1.ProtocolTCP})
	added, _, stopWatch := podEvents(t, ns, "zk")
	defer stopWatch()
	if err := c.Create(ctx, newPetSet(ns, "zk", "zk", 6)); err != nil {
		t.Fatal(err)
	}
	// Kill it once two pets exist.
	pollEvery(t, 10*time.Millisecond, 60*time.Second, "two pets before the kill", func() (bool, string) {
		got := added()
		return len(got) >= 2, fmt.Sprint(got)
	})
	kill()
	claimsBefore := map[string]types.UID{}
	list, _ := tb.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	for _, cl := range list.Items {
		claimsBefore[cl.Name] = cl.UID
	}
	if len(claimsBefore) == 0 {
		t.Fatal("no claims before the kill")
	}
	runController(t)
	waitPods(t, ns, "zk", 6)

	got := added()
	if want := []string{"zk-0", "zk-1", "zk-2", "zk-3", "zk-4", "zk-5"}; !slices.Equal(got, want) {
		t.Errorf("pods created %v, want each of %v once, in order", got, want)
	}
	list, _ = tb.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if len(list.Items) != 6 {
		t.Errorf("%d claims, want 6", len(list.Items))
	}
	for _, cl := range list.Items {
		if uid, ok := claimsBefore[cl.Name]; ok && uid != cl.UID {
			t.Errorf("claim %s was replaced across the restart", cl.Name)
		}
	}
}
