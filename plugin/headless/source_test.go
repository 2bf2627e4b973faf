package headless

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answers reports the A records h serves for name, as strings.
func answers(h *Headless, name string) []string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	h.ServeDNS(context.Background(), rec, m)
	if rec.Msg == nil {
		return nil
	}
	var out []string
	for _, rr := range rec.Msg.Answer {
		out = append(out, rr.(*dns.A).A.String())
	}
	return out
}

func equal(a []string, b ...string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const svcYAML = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: ns, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- {addresses: [%s], hostname: web-0}
`

func TestManifestSourceReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "web.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		// Make the change visible even on coarse modification times.
		future := time.Now().Add(time.Duration(len(content)) * time.Second)
		os.Chtimes(file, future, future)
	}
	write(fmt.Sprintf(svcYAML, "10.244.0.1"))

	h := &Headless{}
	h.configure([]string{"cluster.local."}, 5, 5)
	src := &manifestSource{paths: []string{dir}, reload: 10 * time.Millisecond}
	h.src = src
	if err := src.start(h.publish); err != nil {
		t.Fatal(err)
	}
	defer src.stop()
	const name = "web-0.web.ns.svc.cluster.local."
	if got := answers(h, name); !equal(got, "10.244.0.1") {
		t.Fatalf("first load: %v", got)
	}

	write(fmt.Sprintf(svcYAML, "10.244.0.2"))
	eventually(t, "the reload", func() bool { return equal(answers(h, name), "10.244.0.2") })

	// A broken file is reported, and the last good data keeps serving.
	before := testutil.ToFloat64(sourceErrors.WithLabelValues("manifests"))
	write("apiVersion: v1\nkind: Service\nmetadata: [\n")
	eventually(t, "the error count", func() bool {
		return testutil.ToFloat64(sourceErrors.WithLabelValues("manifests")) > before
	})
	if got := answers(h, name); !equal(got, "10.244.0.2") {
		t.Fatalf("after a broken file: %v, want the last good answer", got)
	}

	// Removing the service removes its names.
	write("apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: ns}\nspec: {clusterIP: None}\n")
	eventually(t, "the removal", func() bool { return answers(h, name) == nil })
	run(t, h, test.Case{Qname: name, Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{soaNeg("cluster.local.", 5)}})
}

func soaNeg(zone string, neg int) dns.RR {
	return test.SOA(fmt.Sprintf("%s %d IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 %d", zone, neg, neg))
}

func TestKubeSource(t *testing.T) {
	ready := true
	client := fake.NewClientset(
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		&discovery.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-abc",
				Labels:        map[string]string{discovery.LabelServiceName: "web", "extra": "x"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "test"}}},
			AddressType: discovery.AddressTypeIPv4,
			Endpoints:   []discovery.Endpoint{{Addresses: []string{"10.244.0.1"}, Hostname: ptrTo("web-0"), Conditions: discovery.EndpointConditions{Ready: &ready}}},
		},
		// In a namespace the plugin does not watch.
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "hidden", Name: "web"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		&discovery.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "hidden", Name: "web-abc", Labels: map[string]string{discovery.LabelServiceName: "web"}},
			AddressType: discovery.AddressTypeIPv4,
			Endpoints:   []discovery.Endpoint{{Addresses: []string{"10.244.9.1"}, Hostname: ptrTo("web-0")}},
		},
	)
	h := &Headless{}
	h.configure([]string{"cluster.local."}, 5, 5)
	src := &kubeSource{client: client, namespaces: []string{"ns"}}
	if err := src.start(h.publish); err != nil {
		t.Fatal(err)
	}
	defer src.stop()
	eventually(t, "the first sync", h.Ready)
	const name = "web-0.web.ns.svc.cluster.local."
	if got := answers(h, name); !equal(got, "10.244.0.1") {
		t.Fatalf("after sync: %v", got)
	}
	if got := answers(h, "web-0.web.hidden.svc.cluster.local."); got != nil {
		t.Fatalf("unwatched namespace served: %v", got)
	}

	// The informer caches hold slimmed objects only.
	for _, o := range src.watch["ns"].slices.GetStore().List() {
		if sl := o.(*discovery.EndpointSlice); sl.ManagedFields != nil || len(sl.Labels) > 1 {
			t.Fatalf("slice not slimmed: %+v", sl.ObjectMeta)
		}
	}

	ctx := context.Background()
	count := func() uint64 { return histogramCount(t, programming) }
	before := count()
	sl, _ := client.DiscoveryV1().EndpointSlices("ns").Get(ctx, "web-abc", metav1.GetOptions{})
	sl.Endpoints = append(sl.Endpoints, discovery.Endpoint{Addresses: []string{"10.244.0.2"}, Hostname: ptrTo("web-0")})
	sl.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: time.Now().Format(time.RFC3339Nano)}
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new endpoint", func() bool { return equal(answers(h, name), "10.244.0.1", "10.244.0.2") })
	eventually(t, "a programming latency sample", func() bool { return count() > before })

	// The service turns into a ClusterIP service: its names go.
	svc, _ := client.CoreV1().Services("ns").Get(ctx, "web", metav1.GetOptions{})
	svc.Spec.ClusterIP = "10.96.0.5"
	client.CoreV1().Services("ns").Update(ctx, svc, metav1.UpdateOptions{})
	eventually(t, "the service to stop being headless", func() bool { return answers(h, name) == nil })

	// Back to headless, then deleted.
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	client.CoreV1().Services("ns").Update(ctx, svc, metav1.UpdateOptions{})
	eventually(t, "the service to be headless again", func() bool { return answers(h, name) != nil })
	client.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{})
	eventually(t, "the deletion", func() bool { return answers(h, name) == nil })
	if n := h.snap.Load().table.len(); n != 0 {
		t.Fatalf("%d names left after the only service went", n)
	}
}

var _ cache.TransformFunc = (&kubeSource{}).slim

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// A ConfigMap mounted as a volume is read once, and an update, which swaps
// its "..data" link to a new directory, is reloaded.
func TestManifestSourceConfigMap(t *testing.T) {
	dir := t.TempDir()
	version := func(stamp, addr string) {
		t.Helper()
		real := filepath.Join(dir, stamp)
		if err := os.MkdirAll(real, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(real, "web.yaml"), []byte(fmt.Sprintf(svcYAML, addr)), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(stamp, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "web.yaml")); err != nil {
			if err := os.Symlink(filepath.Join("..data", "web.yaml"), filepath.Join(dir, "web.yaml")); err != nil {
				t.Fatal(err)
			}
		}
	}
	version("..2026_11_28_10_00_00.000000001", "10.244.0.1")

	h := &Headless{}
	h.configure([]string{"cluster.local."}, 5, 5)
	src := &manifestSource{paths: []string{dir}, reload: 10 * time.Millisecond}
	if err := src.start(h.publish); err != nil {
		t.Fatal(err)
	}
	defer src.stop()
	const name = "web-0.web.ns.svc.cluster.local."
	if got := answers(h, name); !equal(got, "10.244.0.1") {
		t.Fatalf("first load: %v", got)
	}
	if n := h.snap.Load().table.len(); n == 0 {
		t.Fatal("nothing served")
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 3 {
		t.Fatalf("layout %v, want ..data, ..<timestamp> and web.yaml", files)
	}

	version("..2026_11_28_10_05_00.000000002", "10.244.0.2")
	eventually(t, "the ConfigMap update", func() bool { return equal(answers(h, name), "10.244.0.2") })
}

// Informer updates that carry the object the informer had already (a
// relist after a lost watch or an API server restart delivers every object
// again) mark nothing dirty, so they rebuild nothing and feed no trigger
// time, however old, into the programming latency.
func TestKubeSourceIgnoresSameVersion(t *testing.T) {
	old := time.Now().Add(-3 * time.Hour).Format(time.RFC3339Nano)
	sl := slice("ns", "web", "web-abc", discovery.AddressTypeIPv4, nil, ep{addr: "10.244.0.1", hostname: "web-0"})
	sl.ResourceVersion = "7"
	sl.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: old}
	sv := svc("ns", "web", true)
	sv.ResourceVersion = "8"
	k := svcKey{Namespace: "ns", Name: "web"}

	tests := []struct {
		name    string
		update  func(s *kubeSource)
		dirty   bool
		trigger bool // a trigger time is pending
	}{
		{"slice relisted", func(s *kubeSource) { s.sliceUpdated(sl, sl.DeepCopy()) }, false, false},
		{"service relisted", func(s *kubeSource) { s.serviceUpdated(sv, sv.DeepCopy()) }, false, false},
		{"slice changed", func(s *kubeSource) {
			next := sl.DeepCopy()
			next.ResourceVersion = "9"
			s.sliceUpdated(sl, next)
		}, true, true},
		{"service changed", func(s *kubeSource) {
			next := sv.DeepCopy()
			next.ResourceVersion = "10"
			s.serviceUpdated(sv, next)
		}, true, false},
		// Without resource versions (a fake clientset) nothing is dropped.
		{"no versions", func(s *kubeSource) {
			a, b := sl.DeepCopy(), sl.DeepCopy()
			a.ResourceVersion, b.ResourceVersion = "", ""
			s.sliceUpdated(a, b)
		}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &kubeSource{dirty: map[svcKey]time.Time{}, wake: make(chan struct{}, 1), synced: true}
			tc.update(s)
			trigger, dirty := s.dirty[k]
			if dirty != tc.dirty || !trigger.IsZero() != tc.trigger {
				t.Fatalf("dirty %v (trigger %v), want dirty %v with a trigger %v", dirty, trigger, tc.dirty, tc.trigger)
			}
		})
	}
}
