//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The API server goes away while queries run: answers keep coming from the
// last data; after it is back, new changes show up.
func TestAPIServerRestart(t *testing.T) {
	ns := tb.Namespace(t, "api")
	headlessService(t, ns, "kept", map[string]string{"app": "kept"}, false, svcPort{"http", 80, corev1.ProtocolTCP})
	statefulSet(t, ns, "kept", "kept", 2, true, svcPort{"http", 80, corev1.ProtocolTCP})
	pods := waitPods(t, ns, "kept", 2)
	host := fqdn("kept-1", "kept", ns)
	eventually(t, 30*time.Second, host, dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })

	tb.StopAPIServer()
	restarted := false
	defer func() {
		if !restarted {
			tb.StartAPIServer(ctx)
		}
	}()
	holdsFor(t, 200*time.Millisecond, 4*time.Second, host+" answered with the API server down", func() (bool, string) {
		m, err := dig(host, dns.TypeA)
		return err == nil && len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == pods["kept-1"].Status.PodIP, fmt.Sprintf("%v %v", err, m)
	})
	if err := tb.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	start := time.Now()
	scale(t, ns, "kept", 3)
	// Split the wait: the controllers and kwok must first reconnect and
	// publish the new endpoint; then headless must serve it.
	inSlice := waitSliceHostname(t, ns, "kept", "kept-2")
	recordLatency("after API server restart: scale-up in EndpointSlice", inSlice.Sub(start))
	eventually(t, 90*time.Second, fqdn("kept-2", "kept", ns), dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	recordLatency("after API server restart: EndpointSlice -> DNS", time.Since(inSlice))

	// The kubernetes plugin behind headless is back too: a new ClusterIP
	// service resolves through the chain.
	lb, err := tb.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "after"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "kept"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, fqdn("after", ns), dns.TypeA, func(m *dns.Msg) bool {
		return len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == lb.Spec.ClusterIP
	})
}

// waitSliceHostname waits until a ready endpoint with hostname appears in
// the service's EndpointSlices, and returns when it saw it.
func waitSliceHostname(t *testing.T, ns, svc, hostname string) time.Time {
	t.Helper()
	sel := discovery.LabelServiceName + "=" + svc
	var seen time.Time
	pollEvery(t, 20*time.Millisecond, 90*time.Second, "ready "+hostname+" in the EndpointSlices of "+svc, func() (bool, string) {
		list, err := tb.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err.Error()
		}
		var hosts []string
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.Hostname == nil {
					continue
				}
				ready := e.Conditions.Ready == nil || *e.Conditions.Ready
				if *e.Hostname == hostname && ready {
					seen = time.Now()
					return true, ""
				}
				hosts = append(hosts, fmt.Sprintf("%s(ready %v)", *e.Hostname, ready))
			}
		}
		return false, "hostnames " + strings.Join(hosts, ",")
	})
	return seen
}
