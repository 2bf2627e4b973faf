//go:build e2e

package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const soaTail = " IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 1"

func soa(zone string) dns.RR { return test.SOA(zone + " 1" + soaTail) }

// A StatefulSet behind a headless service, with a ClusterIP service
// selecting the same pods.
func TestStatefulSet(t *testing.T) {
	ns := tb.Namespace(t, "sts")
	ports := []svcPort{{"http", 80, corev1.ProtocolTCP}, {"gossip", 7946, corev1.ProtocolUDP}}
	headlessService(t, ns, "web", map[string]string{"app": "web"}, false, ports...)
	lb, err := tb.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-lb"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ext"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.org"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	statefulSet(t, ns, "web", "web", 3, false, ports...)
	pods := waitPods(t, ns, "web", 3)

	var all []string
	var srvHTTP, srvUDP, srvAll, glue []dns.RR
	for i := range 3 {
		pod := pods[name("web-%d", i)]
		host := fqdn(name("web-%d", i), "web", ns)
		all = append(all, pod.Status.PodIP)
		// Wait until each pet is in DNS, then check it exactly.
		eventually(t, 30*time.Second, host, dns.TypeA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeSuccess && len(m.Answer) == 1 })
		check(t, test.Case{Qname: host, Qtype: dns.TypeA, Rcode: dns.RcodeSuccess,
			Answer: []dns.RR{test.A(host + " 5 IN A " + pod.Status.PodIP)}})
		srvHTTP = append(srvHTTP, test.SRV(fqdn("_http._tcp.web", ns)+" 5 IN SRV 0 33 80 "+host))
		srvUDP = append(srvUDP, test.SRV(fqdn("_gossip._udp.web", ns)+" 5 IN SRV 0 33 7946 "+host))
		srvAll = append(srvAll, test.SRV(fqdn("web", ns)+" 5 IN SRV 0 16 80 "+host), test.SRV(fqdn("web", ns)+" 5 IN SRV 0 16 7946 "+host))
		glue = append(glue, test.A(host+" 5 IN A "+pod.Status.PodIP))

		// Exactly one PTR, although web-lb selects the pod too.
		rev, _ := dns.ReverseAddr(pod.Status.PodIP)
		check(t, test.Case{Qname: rev, Qtype: dns.TypePTR, Answer: []dns.RR{test.PTR(rev + " 5 IN PTR " + host)}})
	}
	slices.Sort(all)
	svcA := []dns.RR{}
	for _, ip := range all {
		svcA = append(svcA, test.A(fqdn("web", ns)+" 5 IN A "+ip))
	}
	check(t, test.Case{Qname: fqdn("web", ns), Qtype: dns.TypeA, Answer: svcA})
	check(t, test.Case{Qname: fqdn("_http._tcp.web", ns), Qtype: dns.TypeSRV, Answer: srvHTTP, Extra: glue})
	check(t, test.Case{Qname: fqdn("_gossip._udp.web", ns), Qtype: dns.TypeSRV, Answer: srvUDP, Extra: glue})
	check(t, test.Case{Qname: fqdn("web", ns), Qtype: dns.TypeSRV, Answer: srvAll, Extra: glue})

	// Negative answers, and case.
	check(t, test.Case{Qname: fqdn("web-0", "web", ns), Qtype: dns.TypeAAAA, Ns: []dns.RR{soa("cluster.local.")}})
	check(t, test.Case{Qname: fqdn("web-9", "web", ns), Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{soa("cluster.local.")}})
	check(t, test.Case{Qname: fqdn("_http._udp.web", ns), Qtype: dns.TypeSRV, Rcode: dns.RcodeNameError, Ns: []dns.RR{soa("cluster.local.")}})
	upper := strings.ToUpper(fqdn("web-1", "web", ns))
	check(t, test.Case{Qname: upper, Qtype: dns.TypeA, Answer: []dns.RR{test.A(upper + " 5 IN A " + pods["web-1"].Status.PodIP)}})

	// Through the chain: the kubernetes plugin answers the rest, once it
	// has seen the services.
	eventually(t, 30*time.Second, fqdn("ext", ns), dns.TypeCNAME, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	eventually(t, 30*time.Second, fqdn("web-lb", ns), dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	check(t, test.Case{Qname: fqdn("web-lb", ns), Qtype: dns.TypeA, Answer: []dns.RR{test.A(fqdn("web-lb", ns) + " 5 IN A " + lb.Spec.ClusterIP)}})
	check(t, test.Case{Qname: fqdn("ext", ns), Qtype: dns.TypeCNAME, Answer: []dns.RR{test.CNAME(fqdn("ext", ns) + " 5 IN CNAME db.example.org.")}})
	check(t, test.Case{Qname: "dns-version.cluster.local.", Qtype: dns.TypeTXT, Answer: []dns.RR{test.TXT(`dns-version.cluster.local. 28800 IN TXT "1.1.0"`)}})
	nx, err := dig(fqdn("nosuch", ns), dns.TypeA)
	if err != nil || nx.Rcode != dns.RcodeNameError {
		t.Errorf("unknown service: %v %v, want NXDOMAIN", err, nx)
	}
}

// Pods made by hand, an endpoint without a hostname, an empty service.
func TestBarePods(t *testing.T) {
	ns := tb.Namespace(t, "bare")
	headlessService(t, ns, "bare", map[string]string{"app": "bare"}, false, svcPort{"http", 80, corev1.ProtocolTCP})
	headlessService(t, ns, "empty", map[string]string{"app": "nothing"}, false, svcPort{"http", 80, corev1.ProtocolTCP})
	barePod(t, ns, "named", "bare", "alpha", "bare")
	barePod(t, ns, "anon", "bare", "", "")
	pods := waitPods(t, ns, "bare", 2)

	alpha := fqdn("alpha", "bare", ns)
	eventually(t, 30*time.Second, alpha, dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	check(t, test.Case{Qname: alpha, Qtype: dns.TypeA, Answer: []dns.RR{test.A(alpha + " 5 IN A " + pods["named"].Status.PodIP)}})
	dashed := fqdn(strings.ReplaceAll(pods["anon"].Status.PodIP, ".", "-"), "bare", ns)
	eventually(t, 30*time.Second, dashed, dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	check(t, test.Case{Qname: dashed, Qtype: dns.TypeA, Answer: []dns.RR{test.A(dashed + " 5 IN A " + pods["anon"].Status.PodIP)}})
	// headless makes no PTR for an endpoint without a hostname; the
	// query falls through, and the kubernetes plugin names it by address.
	rev, _ := dns.ReverseAddr(pods["anon"].Status.PodIP)
	eventually(t, 30*time.Second, rev, dns.TypePTR, func(m *dns.Msg) bool { return len(m.Answer) > 0 })
	check(t, test.Case{Qname: rev, Qtype: dns.TypePTR, Answer: []dns.RR{test.PTR(rev + " 5 IN PTR " + dashed)}})
	check(t, test.Case{Qname: fqdn("empty", ns), Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{soa("cluster.local.")}})
}

// publishNotReadyAddresses keeps a not-ready pod in DNS; without it, the
// pod leaves DNS until it is ready again.
func TestPublishNotReady(t *testing.T) {
	ns := tb.Namespace(t, "pnr")
	headlessService(t, ns, "early", map[string]string{"app": "pets"}, true, svcPort{"peer", 2380, corev1.ProtocolTCP})
	headlessService(t, ns, "pets", map[string]string{"app": "pets"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	statefulSet(t, ns, "pets", "pets", 2, true, svcPort{"peer", 2380, corev1.ProtocolTCP})
	pods := waitPods(t, ns, "pets", 2)
	// Only the pods' subdomain service gives them hostnames; the other
	// one names them by address.
	early := fqdn(strings.ReplaceAll(pods["pets-1"].Status.PodIP, ".", "-"), "early", ns)
	pet := fqdn("pets-1", "pets", ns)
	eventually(t, 30*time.Second, pet, dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	eventually(t, 30*time.Second, early, dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })

	start := time.Now()
	if err := tb.SetPodReady(ctx, ns, "pets-1", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, pet, dns.TypeA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeNameError })
	recordLatency("pod not ready -> NXDOMAIN", time.Since(start))
	check(t, test.Case{Qname: early, Qtype: dns.TypeA, Answer: []dns.RR{test.A(early + " 5 IN A " + pods["pets-1"].Status.PodIP)}})
	check(t, test.Case{Qname: fqdn("pets", ns), Qtype: dns.TypeA, Answer: []dns.RR{test.A(fqdn("pets", ns) + " 5 IN A " + pods["pets-0"].Status.PodIP)}})
	if m, _ := dig(fqdn("early", ns), dns.TypeA); m == nil || len(m.Answer) != 2 {
		t.Errorf("publishNotReadyAddresses service: want both pods, got %v", m)
	}

	start = time.Now()
	if err := tb.SetPodReady(ctx, ns, "pets-1", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, pet, dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	recordLatency("pod ready again -> A", time.Since(start))
}

// A selectorless headless service with a hand-written IPv6 EndpointSlice.
func TestSelectorlessIPv6(t *testing.T) {
	ns := tb.Namespace(t, "v6")
	headlessService(t, ns, "db", nil, false, svcPort{"mysql", 3306, corev1.ProtocolTCP})
	name, proto, port := "mysql", corev1.ProtocolTCP, int32(3306)
	ready := true
	if _, err := tb.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-v6", Labels: map[string]string{discovery.LabelServiceName: "db"}},
		AddressType: discovery.AddressTypeIPv6,
		Ports:       []discovery.EndpointPort{{Name: &name, Protocol: &proto, Port: &port}},
		Endpoints: []discovery.Endpoint{
			{Addresses: []string{"fd00:10:244::5"}, Hostname: ptr("db-0"), Conditions: discovery.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"fd00:10:244::6"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	host := fqdn("db-0", "db", ns)
	eventually(t, 30*time.Second, host, dns.TypeAAAA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	check(t, test.Case{Qname: host, Qtype: dns.TypeAAAA, Answer: []dns.RR{test.AAAA(host + " 5 IN AAAA fd00:10:244::5")}})
	check(t, test.Case{Qname: host, Qtype: dns.TypeA, Ns: []dns.RR{soa("cluster.local.")}})
	check(t, test.Case{Qname: fqdn("db", ns), Qtype: dns.TypeAAAA, Answer: []dns.RR{
		test.AAAA(fqdn("db", ns) + " 5 IN AAAA fd00:10:244::5"), test.AAAA(fqdn("db", ns) + " 5 IN AAAA fd00:10:244::6")}})
	anon := fqdn("fd00-10-244--6", "db", ns)
	check(t, test.Case{Qname: fqdn("_mysql._tcp.db", ns), Qtype: dns.TypeSRV,
		Answer: []dns.RR{
			test.SRV(fqdn("_mysql._tcp.db", ns) + " 5 IN SRV 0 50 3306 " + host),
			test.SRV(fqdn("_mysql._tcp.db", ns) + " 5 IN SRV 0 50 3306 " + anon)},
		Extra: []dns.RR{test.AAAA(host + " 5 IN AAAA fd00:10:244::5"), test.AAAA(anon + " 5 IN AAAA fd00:10:244::6")}})
	rev, _ := dns.ReverseAddr("fd00:10:244::5")
	check(t, test.Case{Qname: rev, Qtype: dns.TypePTR, Answer: []dns.RR{test.PTR(rev + " 5 IN PTR " + host)}})
}

// 64 pods with three ports: UDP answers are truncated, TCP ones complete.
func TestLargeService(t *testing.T) {
	ns := tb.Namespace(t, "big")
	ports := []svcPort{{"client", 2379, corev1.ProtocolTCP}, {"peer", 2380, corev1.ProtocolTCP}, {"metrics", 9090, corev1.ProtocolTCP}}
	headlessService(t, ns, "big", map[string]string{"app": "big"}, false, ports...)
	statefulSet(t, ns, "big", "big", 64, true, ports...)
	waitPods(t, ns, "big", 64)
	svc := fqdn("big", ns)
	eventually(t, 60*time.Second, svc, dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 64 || m.Truncated }, "+tcp")

	udp, err := dig(svc, dns.TypeA, "+noedns")
	if err != nil {
		t.Fatal(err)
	}
	if !udp.Truncated || len(udp.Answer) >= 64 {
		t.Errorf("UDP without EDNS0: TC=%v with %d answers, want TC and fewer than 64", udp.Truncated, len(udp.Answer))
	}
	tcp, err := dig(svc, dns.TypeA, "+tcp")
	if err != nil {
		t.Fatal(err)
	}
	if tcp.Truncated || len(tcp.Answer) != 64 {
		t.Errorf("TCP: TC=%v with %d answers, want all 64", tcp.Truncated, len(tcp.Answer))
	}
	srv, err := dig(svc, dns.TypeSRV, "+tcp")
	if err != nil || len(srv.Answer) != 64*3 {
		t.Errorf("port-less SRV over TCP: %d answers (%v), want %d", len(srv.Answer), err, 64*3)
	}
	edns, err := dig(fqdn("_peer._tcp.big", ns), dns.TypeSRV, "+bufsize=1232")
	if err != nil || !edns.Truncated {
		t.Errorf("SRV over UDP with a 1232-byte buffer: want TC, got %v %v", err, edns)
	}

	// 192 SRV records do not fit 512 or 1232 bytes: headless builds only
	// what can fit. What the client gets is what the server's truncation
	// makes of the full answer: its first records in order, TC, no glue;
	// without EDNS0, exactly as many as dns.Msg.Truncate keeps of the TCP
	// answer.
	if err != nil || len(srv.Answer) != 64*3 {
		return
	}
	full := new(dns.Msg)
	full.SetQuestion(svc, dns.TypeSRV)
	full.Answer = slices.Clone(srv.Answer)
	full.Truncate(dns.MinMsgSize)
	for _, opt := range []string{"+noedns", "+bufsize=1232"} {
		cut, err := dig(svc, dns.TypeSRV, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !cut.Truncated || len(cut.Answer) == 0 || len(cut.Extra) != 0 {
			t.Errorf("port-less SRV %s: TC=%v, %d answers, %d additional; want TC, answers, no glue", opt, cut.Truncated, len(cut.Answer), len(cut.Extra))
		}
		t.Logf("port-less SRV %s: %d of %d answers, TC=%v", opt, len(cut.Answer), len(srv.Answer), cut.Truncated)
		if opt == "+noedns" && len(cut.Answer) != len(full.Answer) {
			t.Errorf("port-less SRV %s: %d answers, the full answer truncated to 512 bytes keeps %d", opt, len(cut.Answer), len(full.Answer))
		}
		for i, rr := range cut.Answer {
			if i >= len(srv.Answer) || rr.String() != srv.Answer[i].String() {
				t.Errorf("port-less SRV %s: answer %d is %v, not the TCP answer's %v", opt, i, rr, srv.Answer[min(i, len(srv.Answer)-1)])
				break
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
