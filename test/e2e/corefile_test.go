//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	coretest "github.com/coredns/coredns/test"
	"github.com/go-logr/logr"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/core/plugin" // CoreDNS's own plugins

	"petset.dev/petset/plugin/headless"
	petsettest "petset.dev/petset/test"
)

func init() {
	ctrllog.SetLogger(logr.Discard()) // the suite's controller-runtime clients log nothing
	dnsserver.Directives = headless.InsertDirective(dnsserver.Directives)
	caddy.Quiet = true
	dnsserver.Quiet = true
}

// corefile/cluster.Corefile, as shipped (on loopback ports, with the
// testbed's kubeconfig and nothing forwarded off this machine), serves
// headless names, falls through to kubernetes for the rest, and caches.
func TestClusterCorefile(t *testing.T) {
	b, err := os.ReadFile("../../corefile/cluster.Corefile")
	if err != nil {
		t.Fatal(err)
	}
	body := petsettest.Localize(string(b), tb.Kubeconfig)
	if !strings.Contains(body, "kubeconfig "+tb.Kubeconfig) || strings.Contains(body, "/etc/resolv.conf") {
		t.Fatalf("Corefile not localized:\n%s", body)
	}
	ask := serveTestbed(t, body, "cluster.Corefile")
	if r := ask("dns-version.cluster.local.", dns.TypeTXT); len(r.Answer) != 1 || fmt.Sprint(r.Answer[0].(*dns.TXT).Txt) != "[1.1.0]" {
		t.Errorf("dns-version:\n%s", r)
	}
}

// serveTestbed starts a localized Corefile in this process and waits until
// it serves a pet of a new StatefulSet through headless and, behind it,
// kubernetes.default through the kubernetes plugin. It returns a function
// that asks the server; the server stops with the test.
func serveTestbed(t *testing.T, body, what string) func(name string, qtype uint16) *dns.Msg {
	t.Helper()
	i, udp, _, err := coretest.CoreDNSServerAndPorts(body)
	if err != nil {
		t.Fatalf("start %s: %v\n%s", what, err, body)
	}
	t.Cleanup(func() { i.Stop() })

	ns := tb.Namespace(t, "corefile")
	headlessService(t, ns, "pets", map[string]string{"app": "pets"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	statefulSet(t, ns, "pets", "pets", 1, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	pods := waitPods(t, ns, "pets", 1)

	c := &dns.Client{Timeout: 3 * time.Second}
	ask := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, _, err := c.Exchange(m, udp)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}
	host := fqdn("pets-0", "pets", ns)
	pollUntil(t, 30*time.Second, what+" serving "+host, func() (bool, string) { // past a cached negative answer
		r := ask(host, dns.TypeA)
		return len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == pods["pets-0"].Status.PodIP, "\n" + r.String()
	})
	if r := ask("kubernetes.default.svc.cluster.local.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("%s: the kubernetes plugin behind headless did not answer:\n%s", what, r)
	}
	return ask
}
