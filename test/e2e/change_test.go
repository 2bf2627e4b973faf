//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scale up, scale down, a pod deleted and recreated, the service deleted:
// the answers follow, and the suite reports how long each took.
func TestChangesFollow(t *testing.T) {
	ns := tb.Namespace(t, "chg")
	headlessService(t, ns, "app", map[string]string{"app": "app"}, false, svcPort{"http", 80, corev1.ProtocolTCP})
	statefulSet(t, ns, "app", "app", 2, true, svcPort{"http", 80, corev1.ProtocolTCP})
	waitPods(t, ns, "app", 2)
	eventually(t, 30*time.Second, fqdn("app", ns), dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 2 })

	start := time.Now()
	scale(t, ns, "app", 4)
	eventually(t, 60*time.Second, fqdn("app-3", "app", ns), dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	recordLatency("scale 2 -> 4: app-3 resolves", time.Since(start))

	start = time.Now()
	scale(t, ns, "app", 1)
	eventually(t, 60*time.Second, fqdn("app", ns), dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	recordLatency("scale 4 -> 1: service A has one address", time.Since(start))
	eventually(t, 5*time.Second, fqdn("app-1", "app", ns), dns.TypeA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeNameError })

	pods := waitPods(t, ns, "app", 1)
	oldUID := pods["app-0"].UID
	start = time.Now()
	if err := tb.Client.CoreV1().Pods(ns).Delete(ctx, "app-0", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	// The StatefulSet controller recreates app-0; wait for the new pod.
	var ip string
	pollEvery(t, 50*time.Millisecond, 60*time.Second, "app-0 recreated, Ready, with an IP", func() (bool, string) {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "app-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ip = p.Status.PodIP
		return p.UID != oldUID && ip != "" && podReady(p), describePod(p) + " uid " + string(p.UID)
	})
	eventually(t, 30*time.Second, fqdn("app-0", "app", ns), dns.TypeA, func(m *dns.Msg) bool {
		return len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == ip
	})
	recordLatency("pod deleted -> recreated pet resolves to its IP", time.Since(start))

	start = time.Now()
	if err := tb.Client.CoreV1().Services(ns).Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, fqdn("app-0", "app", ns), dns.TypeA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeNameError })
	recordLatency("service deleted -> NXDOMAIN", time.Since(start))
}
