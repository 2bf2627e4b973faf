//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Corefiles of the differential test: the shipped arrangement
// (headless with fallthrough in front of kubernetes) and kubernetes alone,
// each with and without endpoint_pod_names on the kubernetes plugin. The
// headless stanza never sets endpoint_pod_names: it must follow the
// kubernetes plugin by itself.
const (
	diffServer = `.:%s {
    bind 127.0.0.1
    ready 127.0.0.1:%s
%s}
`
	diffHeadless = `    headless cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s
        fallthrough
    }
`
	// The transfer plugin serves AXFR from the kubernetes plugin's records,
	// so the server's own zone transfer shows the names it gives out.
	diffTransfer = `    transfer cluster.local {
        to *
    }
`
	diffKubernetes = `    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s
        pods insecure
%s        fallthrough in-addr.arpa ip6.arpa
    }
`
)

// startServer runs the suite's CoreDNS binary with the given server block
// body and returns its address once the ready plugin reports it ready.
func startServer(t *testing.T, label, body string) string {
	t.Helper()
	port, err := freeUDPTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	readyPort, err := freeUDPTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(tb.Dir, "Corefile."+label)
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(diffServer, port, readyPort, body)), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(tb.Dir, "logs", "coredns-"+label+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(tb.Dir, "coredns"), "-conf", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	err = poll(pollInterval, 60*time.Second, "CoreDNS "+label+" ready", func() (bool, string) {
		resp, err := http.Get("http://127.0.0.1:" + readyPort + "/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	if err != nil {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("%v\n%s", err, b)
	}
	return "127.0.0.1:" + port
}

// query asks server one question over UDP (TCP when truncated) and renders
// what the comparison looks at: rcode, the answer and additional records
// sorted, and the authority records with the SOA serial zeroed, since each
// server counts its own. SRV weights are required to be equal within the
// answer and then left out: the kubernetes plugin divides 100 by the
// number of address and port pairs before merging one target's
// duplicates, headless by the records it returns; weights are relative
// (RFC 2782), so equal weights select alike.
func query(server, name string, qtype uint16) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(4096, false)
	c := &dns.Client{Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.Exchange(m, server)
	}
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rcode %s aa=%v\n", dns.RcodeToString[r.Rcode], r.Authoritative)
	weights := map[uint16]bool{}
	for _, sec := range []struct {
		name string
		rrs  []dns.RR
	}{{"answer", r.Answer}, {"authority", r.Ns}, {"extra", r.Extra}} {
		var lines []string
		for _, rr := range sec.rrs {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			rr = dns.Copy(rr)
			switch v := rr.(type) {
			case *dns.SOA:
				v.Serial = 0
			case *dns.SRV:
				weights[v.Weight] = true
				v.Weight = 0
			}
			lines = append(lines, sec.name+" "+rr.String())
		}
		slices.Sort(lines)
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	if len(weights) > 1 {
		fmt.Fprintf(&b, "unequal SRV weights %v\n", weights)
	}
	return b.String(), nil
}

type diffQuery struct {
	name  string
	qtype uint16
}

func (q diffQuery) String() string { return q.name + " " + dns.TypeToString[q.qtype] }

// Headless in front of kubernetes answers every name as kubernetes alone
// does, on the same objects, with and without endpoint_pod_names; where
// the answers differ on purpose, diffExpected names the question and the
// reason, and the test requires that they do differ. Then, on the same
// servers: headless answers the kubernetes plugin's NXDOMAIN for missing
// services (counted, with that plugin's SOA serial), each server's zone
// transfer and PTR answers agree with its queries, and pod-named endpoints
// resolve.
func TestDifferentialKubernetes(t *testing.T) {
	f := newDiffFixture(t)
	questions, expected := f.questions(), f.expected()
	f.waitServed(t)
	t.Run("same answers", func(t *testing.T) {
		for _, v := range diffVariants {
			t.Run(v.variant, func(t *testing.T) { f.sameAnswers(t, v, questions, expected) })
		}
	})
	t.Run("kubeNX counted", f.kubeNXCounted)
	t.Run("kubeNX serial", func(t *testing.T) {
		for _, v := range diffVariants {
			t.Run(v.headless, func(t *testing.T) { f.kubeNXSerial(t, v.headless) })
		}
	})
	t.Run("self-consistent", func(t *testing.T) {
		for _, v := range diffVariants {
			t.Run(v.headless, func(t *testing.T) {
				for _, b := range selfConsistent(t, f.servers[v.headless], f.ns, f.addrs()) {
					t.Errorf("%s: %s", v.headless, b)
				}
			})
		}
	})
	t.Run("pod-named endpoints", f.podNamed)
}

// diffVariant is a pair of servers compared, by label: headless in front
// of kubernetes, and kubernetes alone.
type diffVariant struct{ variant, headless, stock string }

// diffVariants are the pairs without and with endpoint_pod_names.
var diffVariants = []diffVariant{
	{"addr", "headless", "stock"},
	{"pods", "headless-pods", "stock-pods"},
}

// diffFixture is what the differential test asks about: the objects in ns
// and the servers, by label, that serve them.
type diffFixture struct {
	ns      string
	pods    map[string]*corev1.Pod
	servers map[string]string // address by label
	metrics string            // the headless server's Prometheus endpoint
}

// newDiffFixture makes the objects and starts the servers. The objects: a
// headless service whose pods have a hostname, none, and a name that is
// not one DNS label; a ClusterIP service over the same pods; a headless
// service without ports; a selectorless IPv6 service with a hand-written
// slice (kwok gives pods IPv4 only), whose addresses test the trailing-dash
// rule and whose targetRef names a pod; and an IPv4 slice holding an
// IPv4-mapped IPv6 address.
func newDiffFixture(t *testing.T) *diffFixture {
	kc := tb.Kubeconfig
	ns := tb.Namespace(t, "diff")
	headlessService(t, ns, "web", map[string]string{"app": "web"}, false, svcPort{"http", 80, corev1.ProtocolTCP})
	headlessService(t, ns, "noports", map[string]string{"app": "web"}, false)
	headlessService(t, ns, "v6", nil, false, svcPort{"db", 5432, corev1.ProtocolTCP})
	if _, err := tb.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-lb"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	barePod(t, ns, "web-0", "web", "web-0", "web")
	barePod(t, ns, "test-name", "web", "", "")
	barePod(t, ns, "a.b", "web", "", "")
	dbName, proto, port := "db", corev1.ProtocolTCP, int32(5432)
	if _, err := tb.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "v6-1", Labels: map[string]string{discovery.LabelServiceName: "v6"}},
		AddressType: discovery.AddressTypeIPv6,
		Ports:       []discovery.EndpointPort{{Name: &dbName, Protocol: &proto, Port: &port}},
		Endpoints: []discovery.Endpoint{
			{Addresses: []string{"fd00:10:244::"}},
			{Addresses: []string{"fd00:10:244::1:0"}},
			{Addresses: []string{"fd00:10:244::7"}, Hostname: ptr("db-0")},
			{Addresses: []string{"fd00:10:244::8"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "v6-pod"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The API server takes the IPv4-mapped address (with a warning that a
	// later release will not), and the kubernetes plugin makes a label
	// with colons of it.
	headlessService(t, ns, "mapped", nil, false, svcPort{"http", 80, corev1.ProtocolTCP})
	httpName := "http"
	httpPort := int32(80)
	if _, err := tb.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "mapped-1", Labels: map[string]string{discovery.LabelServiceName: "mapped"}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: &httpName, Protocol: &proto, Port: &httpPort}},
		Endpoints:   []discovery.Endpoint{{Addresses: []string{"::ffff:10.244.200.9"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f := &diffFixture{ns: ns, pods: waitPods(t, ns, "web", 3), servers: map[string]string{}}

	metricsPort, err := freeUDPTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	f.metrics = "http://127.0.0.1:" + metricsPort + "/metrics"
	for _, v := range []struct{ label, body string }{
		{"headless", "    prometheus 127.0.0.1:" + metricsPort + "\n" + diffTransfer + fmt.Sprintf(diffHeadless, kc) + fmt.Sprintf(diffKubernetes, kc, "")},
		{"stock", fmt.Sprintf(diffKubernetes, kc, "")},
		{"headless-pods", diffTransfer + fmt.Sprintf(diffHeadless, kc) + fmt.Sprintf(diffKubernetes, kc, "        endpoint_pod_names\n")},
		{"stock-pods", fmt.Sprintf(diffKubernetes, kc, "        endpoint_pod_names\n")},
	} {
		f.servers[v.label] = startServer(t, v.label, v.body)
	}
	return f
}

// at is the name of labels in the fixture's namespace.
func (f *diffFixture) at(labels ...string) string {
	return strings.Join(labels, ".") + "." + f.ns + ".svc.cluster.local."
}

// dashed is the IPv4 address of pod as a DNS label.
func (f *diffFixture) dashed(pod string) string {
	return strings.ReplaceAll(f.pods[pod].Status.PodIP, ".", "-")
}

// addrs are the endpoint addresses whose PTR names are asked.
func (f *diffFixture) addrs() []string {
	return []string{f.pods["web-0"].Status.PodIP, f.pods["test-name"].Status.PodIP, f.pods["a.b"].Status.PodIP,
		"fd00:10:244::", "fd00:10:244::7", "fd00:10:244::8"}
}

// names are the names asked for A, AAAA and SRV.
func (f *diffFixture) names() []string {
	at, dashed := f.at, f.dashed
	return []string{
		at("web"), at("web-0", "web"), at(dashed("web-0"), "web"),
		at("test-name", "web"), at(dashed("test-name"), "web"),
		at("a", "b", "web"), at("b", "web"), at(dashed("a.b"), "web"),
		at("_http", "_tcp", "web"), at("_http", "_udp", "web"), at("nope", "web"),
		at("noports"), at(dashed("test-name"), "noports"), at("test-name", "noports"),
		at("web-lb"),
		at("v6"), at("fd00-10-244--0", "v6"), at("fd00-10-244--", "v6"), at("fd00-10-244--1-0", "v6"),
		at("db-0", "v6"), at("v6-pod", "v6"), at("fd00-10-244--8", "v6"), at("_db", "_tcp", "v6"),
		// Escaped dots: outside the zone, or one label below it.
		`web-0\.web.` + f.ns + `.svc.cluster.local.`,
		`web\.` + f.ns + `.svc.cluster.local.`,
		`web-0.web.` + f.ns + `.svc.cluster\.local.`,
		`foo\.cluster.local.`,
		// Names under services that do not exist, which headless answers
		// for the kubernetes plugin (kubeNX): a missing service, below
		// one, a search-path expansion, a missing namespace, the
		// question's case.
		at("mapped"), at("_http", "_tcp", "mapped"), at("10-244-200-9", "mapped"), at("::ffff:10-244-200-9", "mapped"),
		at("nx"), at("web-0", "nx"), at("_http", "_tcp", "nx"), at("api", "example", "com"), "api.example.com.svc.cluster.local.",
		"nx.nope-" + f.ns + ".svc.cluster.local.", "NX." + f.ns + ".SVC.Cluster.LOCAL.",
	}
}

// questions are every name asked for A, AAAA and SRV, a missing service
// asked for the types headless leaves to the kubernetes plugin even there,
// and the PTR name of every address.
func (f *diffFixture) questions() []diffQuery {
	var questions []diffQuery
	for _, n := range f.names() {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV} {
			questions = append(questions, diffQuery{n, qt})
		}
	}
	for _, qt := range []uint16{dns.TypeTXT, dns.TypeSOA, dns.TypeMX} {
		questions = append(questions, diffQuery{f.at("nx"), qt})
	}
	for _, a := range f.addrs() {
		questions = append(questions, diffQuery{mustReverse(a), dns.TypePTR})
	}
	return questions
}

// diffExpected is an answer that differs on purpose, in variant ("" both,
// "pods" only with endpoint_pod_names, "addr" only without), with the
// reason and a check of the answer headless must give instead.
type diffExpected struct {
	variant, reason string
	expect          func(got string) error
}

// expected are the answers that differ on purpose, by question.
func (f *diffFixture) expected() map[diffQuery]diffExpected {
	at, dashed, pods := f.at, f.dashed, f.pods
	srvPort0 := srvAnswers(func(port, target string) error {
		if port != "0" {
			return fmt.Errorf("SRV port %s, want 0", port)
		}
		return nil
	})
	mappedTarget := srvAnswers(func(port, target string) error {
		if target != at("10-244-200-9", "mapped") {
			return fmt.Errorf("SRV target %s, want %s", target, at("10-244-200-9", "mapped"))
		}
		return nil
	})
	return map[diffQuery]diffExpected{
		{at("_http", "_tcp", "web"), dns.TypeA}:           {"", "only SRV records at _port._proto names (spec 1.1.0): headless answers NODATA, kubernetes the addresses", noData},
		{at("_db", "_tcp", "v6"), dns.TypeAAAA}:           {"", "only SRV records at _port._proto names (spec 1.1.0)", noData},
		{at("noports"), dns.TypeSRV}:                      {"", "headless answers the port-less SRV form with port 0 for a service without ports, so that peer-finder finds its members; kubernetes has no SRV records (NODATA)", srvPort0},
		{at(dashed("test-name"), "noports"), dns.TypeSRV}: {"addr", "port-less SRV form with port 0", srvPort0},
		{at("test-name", "noports"), dns.TypeSRV}:         {"pods", "port-less SRV form with port 0", srvPort0},
		{mustReverse(pods["web-0"].Status.PodIP), dns.TypePTR}: {"", "one PTR per headless service for an endpoint with a hostname (spec 1.1.0); kubernetes adds a PTR for every service whose endpoints hold the address (web-lb, noports)",
			exactly("answer", "\tPTR\t"+at("web-0", "web"))},
		// Pod "a.b": kubernetes names it a.b.web... in SRV targets, PTR
		// and AXFR, but its own queries for that name fail; headless
		// answers it, with the empty name b.web... above it.
		{at("a", "b", "web"), dns.TypeA}:    {"pods", "headless answers the name kubernetes gives pod a.b", exactly("answer", "\tA\t"+pods["a.b"].Status.PodIP)},
		{at("a", "b", "web"), dns.TypeAAAA}: {"pods", "the name kubernetes gives pod a.b exists (NODATA, not NXDOMAIN)", noData},
		{at("a", "b", "web"), dns.TypeSRV}:  {"pods", "headless answers the name kubernetes gives pod a.b", notNXDomain},
		{at("b", "web"), dns.TypeA}:         {"pods", "empty non-terminal above a.b (NODATA, not NXDOMAIN)", noData},
		// The IPv4-mapped address: headless names the endpoint after the
		// IPv4 address it stands for; kubernetes after its text, colons
		// and all, which is no host name.
		{at("_http", "_tcp", "mapped"), dns.TypeSRV}:        {"", "an IPv4-mapped IPv6 address in an IPv4 slice is named after its IPv4 address, not with colons", mappedTarget},
		{at("mapped"), dns.TypeSRV}:                         {"", "the IPv4-mapped endpoint's name in the port-less SRV form", mappedTarget},
		{at("_http", "_tcp", "mapped"), dns.TypeA}:          {"", "only SRV records at _port._proto names (spec 1.1.0)", noData},
		{at("10-244-200-9", "mapped"), dns.TypeA}:           {"", "the IPv4-mapped endpoint's name", exactly("answer", "\tA\t10.244.200.9")},
		{at("10-244-200-9", "mapped"), dns.TypeAAAA}:        {"", "the IPv4-mapped endpoint's name exists (NODATA)", noData},
		{at("10-244-200-9", "mapped"), dns.TypeSRV}:         {"", "the IPv4-mapped endpoint's name has the port-less SRV", notNXDomain},
		{at("::ffff:10-244-200-9", "mapped"), dns.TypeA}:    {"", "the name with colons is not given out", nxDomain},
		{at("::ffff:10-244-200-9", "mapped"), dns.TypeAAAA}: {"", "the name with colons is not given out", nxDomain},
		{at("::ffff:10-244-200-9", "mapped"), dns.TypeSRV}:  {"", "the name with colons is not given out", nxDomain},
		{at("b", "web"), dns.TypeAAAA}:                      {"pods", "empty non-terminal above a.b (NODATA, not NXDOMAIN)", noData},
		{at("b", "web"), dns.TypeSRV}:                       {"pods", "empty non-terminal above a.b (NODATA, not NXDOMAIN)", noData},
	}
}

// waitServed waits until every server answers for the objects, so that
// servers that agree later do not agree on two empty answers.
func (f *diffFixture) waitServed(t *testing.T) {
	t.Helper()
	for label, addr := range f.servers {
		for _, q := range []diffQuery{{f.at("web-0", "web"), dns.TypeA}, {f.at("db-0", "v6"), dns.TypeAAAA}} {
			pollEvery(t, 50*time.Millisecond, 30*time.Second, label+": an answer to "+q.String(), func() (bool, string) {
				a, err := query(addr, q.name, q.qtype)
				if err != nil {
					return false, err.Error()
				}
				return strings.Contains(a, "answer "), a
			})
		}
	}
}

// sameAnswers asks every question of both servers of a variant, which
// watch on their own, until they agree, and then reports what differs:
// every answer must be the same, but those expected to differ, which must
// differ and pass their check.
func (f *diffFixture) sameAnswers(t *testing.T, v diffVariant, questions []diffQuery, expected map[diffQuery]diffExpected) {
	var bad []string
	err := poll(200*time.Millisecond, 30*time.Second, v.variant+": the same answers", func() (bool, string) {
		bad = f.compare(v.variant, v.headless, v.stock, questions, expected)
		return len(bad) == 0, fmt.Sprintf("%d differences", len(bad))
	})
	if err != nil {
		for _, b := range bad {
			t.Error(b)
		}
	}
	t.Logf("%s: %d questions, %d listed differences, %d unexpected", v.variant, len(questions), len(expected), len(bad))
}

// compare asks server h and server s every question and returns what does
// not hold.
func (f *diffFixture) compare(variant, h, s string, questions []diffQuery, expected map[diffQuery]diffExpected) []string {
	var bad []string
	for _, q := range questions {
		want, err := query(f.servers[s], q.name, q.qtype)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %s: %v", q, s, err))
			continue
		}
		got, err := query(f.servers[h], q.name, q.qtype)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %s: %v", q, h, err))
			continue
		}
		if w, ok := expected[q]; ok && (w.variant == "" || w.variant == variant) {
			if got == want {
				bad = append(bad, fmt.Sprintf("%s (%s): listed as different (%s), but both answer\n%s", q, variant, w.reason, got))
			} else if err := w.expect(got); err != nil {
				bad = append(bad, fmt.Sprintf("%s (%s): %s: %v; %s answers\n%s", q, variant, w.reason, err, h, got))
			}
			continue
		}
		if got != want {
			bad = append(bad, fmt.Sprintf("%s (%s): %s differs from %s\n%s:\n%s%s:\n%s", q, variant, h, s, s, want, h, got))
		}
	}
	return bad
}

// kubeNXCounted: it is headless that answers the missing services for the
// kubernetes plugin, and only those: it counts them.
func (f *diffFixture) kubeNXCounted(t *testing.T) {
	const metric = "coredns_headless_kubernetes_nxdomain_total"
	for _, c := range []struct {
		q    diffQuery
		mine bool
	}{
		{diffQuery{f.at("nx"), dns.TypeA}, true},
		{diffQuery{"api.example.com.svc.cluster.local.", dns.TypeSRV}, true},
		{diffQuery{f.at("web-lb"), dns.TypeA}, false},
		{diffQuery{f.at("nx"), dns.TypeTXT}, false},
	} {
		before := metricValue(t, f.metrics, metric)
		if _, err := query(f.servers["headless"], c.q.name, c.q.qtype); err != nil {
			t.Fatal(err)
		}
		want := before
		if c.mine {
			want++
		}
		if n := metricValue(t, f.metrics, metric); n != want {
			t.Errorf("%s: %s went from %v to %v, want %v", c.q, metric, before, n, want)
		}
	}
}

// kubeNXSerial: headless answers the missing services for the kubernetes
// plugin in the server labelled label, and says so in its log, with that
// plugin's SOA serial: the same as in the kubernetes plugin's own NODATA
// (web-lb has no IPv6 address) from the same server.
func (f *diffFixture) kubeNXSerial(t *testing.T, label string) {
	b, err := os.ReadFile(filepath.Join(tb.Dir, "logs", "coredns-"+label+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Answering NXDOMAIN for services the kubernetes plugin does not have") {
		t.Errorf("%s: headless does not answer for the kubernetes plugin; log:\n%s", label, b)
	}
	// The serial is the time of the cluster's last service change, which
	// other tests move: compare within a window where the NXDOMAIN's
	// serial stayed the same.
	server := f.servers[label]
	var before, nodata, after uint32
	err = poll(pollInterval, 10*time.Second, label+": the same NXDOMAIN serial before and after the NODATA", func() (bool, string) {
		before = soaSerial(t, server, f.at("nx"), dns.TypeA)
		nodata = soaSerial(t, server, f.at("web-lb"), dns.TypeAAAA)
		after = soaSerial(t, server, f.at("nx"), dns.TypeA)
		return before == after, fmt.Sprintf("serial %d, then %d", before, after)
	})
	if err != nil || nodata != before {
		t.Errorf("%s: NXDOMAIN for a missing service has SOA serial %d then %d, the kubernetes plugin's NODATA %d", label, before, after, nodata)
	}
}

// podNamed: the pod-named endpoints resolve through headless with
// endpoint_pod_names.
func (f *diffFixture) podNamed(t *testing.T) {
	got, _ := query(f.servers["headless-pods"], f.at("test-name", "web"), dns.TypeA)
	if !strings.Contains(got, f.pods["test-name"].Status.PodIP) {
		t.Errorf("test-name.web with endpoint_pod_names: %s", got)
	}
	got, _ = query(f.servers["headless-pods"], f.at("v6-pod", "v6"), dns.TypeAAAA)
	if !strings.Contains(got, "fd00:10:244::8") {
		t.Errorf("v6-pod.v6 with endpoint_pod_names: %s", got)
	}
}

// metricValue reads one sample without labels from a Prometheus
// endpoint; 0 when it is not there.
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return v
		}
	}
	return 0
}

// soaSerial returns the serial of the SOA in server's authority section
// for name and qtype.
func soaSerial(t *testing.T, server, name string, qtype uint16) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, server)
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	if len(r.Ns) != 1 {
		t.Fatalf("%s %s: want one SOA, got\n%v", name, dns.TypeToString[qtype], r)
	}
	soa, ok := r.Ns[0].(*dns.SOA)
	if !ok {
		t.Fatalf("%s %s: want one SOA, got\n%v", name, dns.TypeToString[qtype], r)
	}
	return soa.Serial
}

// noData checks a normalized answer (query's) for NODATA: NOERROR, no
// answer records, the zone's SOA in the authority section.
func noData(got string) error {
	if !strings.HasPrefix(got, "rcode NOERROR aa=true\n") || strings.Contains(got, "\nanswer ") || !strings.Contains(got, "\tSOA\t") {
		return fmt.Errorf("want NODATA (authoritative NOERROR, no answer, SOA)")
	}
	return nil
}

// nxDomain checks for an authoritative NXDOMAIN with the zone's SOA.
func nxDomain(got string) error {
	if !strings.HasPrefix(got, "rcode NXDOMAIN aa=true\n") || !strings.Contains(got, "\tSOA\t") {
		return fmt.Errorf("want NXDOMAIN with the SOA")
	}
	return nil
}

// notNXDomain checks that the name exists: authoritative NOERROR.
func notNXDomain(got string) error {
	if !strings.HasPrefix(got, "rcode NOERROR aa=true\n") {
		return fmt.Errorf("want an authoritative NOERROR")
	}
	return nil
}

// exactly checks for an authoritative NOERROR whose section has exactly
// one record, one containing part.
func exactly(section, part string) func(string) error {
	return func(got string) error {
		var recs []string
		for _, l := range strings.Split(got, "\n") {
			if strings.HasPrefix(l, section+" ") {
				recs = append(recs, l)
			}
		}
		if !strings.HasPrefix(got, "rcode NOERROR aa=true\n") || len(recs) != 1 || !strings.Contains(recs[0], part) {
			return fmt.Errorf("want exactly one %s record with %q", section, part)
		}
		return nil
	}
}

// srvAnswers checks for an authoritative NOERROR with SRV answers only,
// each passing check(port, target).
func srvAnswers(check func(port, target string) error) func(string) error {
	return func(got string) error {
		if !strings.HasPrefix(got, "rcode NOERROR aa=true\n") {
			return fmt.Errorf("want an authoritative NOERROR")
		}
		n := 0
		for _, l := range strings.Split(got, "\n") {
			f := strings.Fields(l)
			if len(f) == 0 || f[0] != "answer" {
				continue
			}
			// answer name ttl IN SRV priority weight port target
			if len(f) != 9 || f[4] != "SRV" {
				return fmt.Errorf("not an SRV answer: %s", l)
			}
			if err := check(f[7], f[8]); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("no SRV answers")
		}
		return nil
	}
}

func mustReverse(a string) string {
	r, err := dns.ReverseAddr(a)
	if err != nil {
		panic(err)
	}
	return r
}

// selfConsistent checks that every A, AAAA and SRV record that the
// server's AXFR of cluster.local holds for the headless services of ns
// (web, noports, v6) is what a query for it answers, and that the PTR
// answers for addrs that point into those services resolve back to the
// address. It returns what does not hold.
func selfConsistent(t *testing.T, server, ns string, addrs []string) []string {
	t.Helper()
	headless := map[string]bool{}
	for _, svc := range []string{"web", "noports", "v6"} {
		headless["."+svc+"."+ns+".svc.cluster.local."] = true
	}
	// under reports whether name is a name below one of the services
	// (a pod name with dots is several labels).
	under := func(name string) bool {
		for i := strings.IndexByte(name, '.'); i > 0; {
			if headless[name[i:]] {
				return true
			}
			j := strings.IndexByte(name[i+1:], '.')
			if j < 0 {
				return false
			}
			i += 1 + j
		}
		return false
	}
	resolves := func(name string, qtype uint16, want string) bool {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, err := dns.Exchange(m, server)
		if err != nil {
			return false
		}
		for _, rr := range r.Answer {
			switch v := rr.(type) {
			case *dns.A:
				if v.A.String() == want {
					return true
				}
			case *dns.AAAA:
				if v.AAAA.String() == want {
					return true
				}
			case *dns.SRV:
				if v.Target == want {
					return true
				}
			}
		}
		return false
	}

	var bad []string
	axfr := new(dns.Msg)
	axfr.SetAxfr("cluster.local.")
	ch, err := new(dns.Transfer).In(axfr, server)
	if err != nil {
		return []string{fmt.Sprintf("AXFR: %v", err)}
	}
	var checked []string
	for env := range ch {
		if env.Error != nil {
			bad = append(bad, fmt.Sprintf("AXFR: %v", env.Error))
			break
		}
		for _, rr := range env.RR {
			owner := strings.ToLower(rr.Header().Name)
			switch v := rr.(type) {
			case *dns.A:
				if under(owner) {
					checked = append(checked, rr.String())
					if !resolves(owner, dns.TypeA, v.A.String()) {
						bad = append(bad, fmt.Sprintf("AXFR has %s, but A %s does not answer it", rr, owner))
					}
				}
			case *dns.AAAA:
				if under(owner) {
					checked = append(checked, rr.String())
					if !resolves(owner, dns.TypeAAAA, v.AAAA.String()) {
						bad = append(bad, fmt.Sprintf("AXFR has %s, but AAAA %s does not answer it", rr, owner))
					}
				}
			case *dns.SRV:
				if under(v.Target) && strings.HasPrefix(owner, "_") {
					checked = append(checked, rr.String())
					if !resolves(owner, dns.TypeSRV, v.Target) {
						bad = append(bad, fmt.Sprintf("AXFR has %s, but SRV %s does not answer it", rr, owner))
					}
				}
			}
		}
	}
	if len(checked) == 0 {
		bad = append(bad, "AXFR holds no records of the test's headless services")
	}
	for _, a := range addrs {
		rev := mustReverse(a)
		m := new(dns.Msg)
		m.SetQuestion(rev, dns.TypePTR)
		r, err := dns.Exchange(m, server)
		if err != nil {
			bad = append(bad, fmt.Sprintf("PTR %s: %v", rev, err))
			continue
		}
		for _, rr := range r.Answer {
			target := strings.ToLower(rr.(*dns.PTR).Ptr)
			qt := dns.TypeA
			if strings.Contains(a, ":") {
				qt = dns.TypeAAAA
			}
			if under(target) && !resolves(target, qt, a) {
				bad = append(bad, fmt.Sprintf("PTR %s names %s, which does not answer %s", rev, target, a))
			}
		}
	}
	slices.Sort(checked)
	t.Logf("%s: %d records of the zone transfer checked:\n%s", server, len(checked), strings.Join(checked, "\n"))
	return bad
}
