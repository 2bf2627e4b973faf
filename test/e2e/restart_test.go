//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// This file sorts last, so the outage happens after the other tests.

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
	for range 20 { // about four seconds of queries with the API server down
		m, err := dig(host, dns.TypeA)
		if err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != pods["kept-1"].Status.PodIP {
			t.Fatalf("with the API server down: %v %v", err, m)
		}
		time.Sleep(200 * time.Millisecond)
	}
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
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		list, err := tb.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			continue
		}
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.Hostname != nil && *e.Hostname == hostname && (e.Conditions.Ready == nil || *e.Conditions.Ready) {
					return time.Now()
				}
			}
		}
	}
	t.Fatalf("%s never appeared in the EndpointSlices of %s", hostname, svc)
	return time.Time{}
}
