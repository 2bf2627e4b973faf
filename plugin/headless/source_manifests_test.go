package headless

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

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

func soaNeg(zone string, neg int) dns.RR {
	return test.SOA(fmt.Sprintf("%s %d IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 %d", zone, neg, neg))
}

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

// The records built from corefile/demo, some of which the top-level README
// shows.
func TestGoldenDemo(t *testing.T) {
	h := &Headless{}
	if err := h.configure([]string{"cluster.local.", "in-addr.arpa.", "ip6.arpa."}, 5, 5); err != nil {
		t.Fatal(err)
	}
	src := &manifestSource{paths: []string{filepath.Join("..", "..", "corefile", "demo")}}
	if err := src.start(h.publish); err != nil {
		t.Fatal(err)
	}
	defer src.stop()
	checkGolden(t, "demo.golden", dump(&h.cfg, h.snap.Load().table))
}
