package headless

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/caddy"
)

// writeKubeconfig writes a kubeconfig for an API server on a closed
// loopback port; nothing connects to it during setup.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: me
  user: {token: secret}
contexts:
- name: local
  context: {cluster: local, user: me}
- name: other
  context: {cluster: local, user: me, namespace: x}
current-context: local
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSetup(t *testing.T) {
	kc := writeKubeconfig(t)
	demo := filepath.Join("..", "..", "corefile", "demo")
	tests := []struct {
		input   string
		err     string // substring of the error; empty: must succeed
		zones   []string
		ttl     uint32
		negTTL  uint32
		fall    bool
		kube    bool
		reload  string
		nsCount int
		pods    bool // endpoint_pod_names
	}{
		{input: "headless {\nmanifests " + demo + "\n}", zones: []string{"cluster.local.", "in-addr.arpa."}, ttl: 5, negTTL: 5, reload: "2s"},
		{input: "headless example.org {\nmanifests " + demo + "\nttl 30\nnegative_ttl 0\nfallthrough\nreload 0\n}", zones: []string{"example.org."}, ttl: 30, negTTL: 0, fall: true, reload: "0s"},
		{input: "headless {\nkubeconfig " + kc + "\n}", zones: []string{"cluster.local.", "in-addr.arpa."}, ttl: 5, negTTL: 5, kube: true},
		{input: "headless {\nkubeconfig " + kc + " other\nnamespaces a b\nnamespaces c\n}", zones: []string{"cluster.local.", "in-addr.arpa."}, ttl: 5, negTTL: 5, kube: true, nsCount: 3},
		{input: "headless Cluster.Local {\nmanifests " + demo + "\n}", zones: []string{"cluster.local."}, ttl: 5, negTTL: 5, reload: "2s"},
		{input: "headless {\nmanifests " + demo + "\nendpoint_pod_names\n}", zones: []string{"cluster.local.", "in-addr.arpa."}, ttl: 5, negTTL: 5, reload: "2s", pods: true},
		{input: "headless {\nkubeconfig " + kc + "\nendpoint_pod_names\n}", zones: []string{"cluster.local.", "in-addr.arpa."}, ttl: 5, negTTL: 5, kube: true, pods: true},

		{input: "headless {\nmanifests " + demo + "\nttl\n}", err: "Wrong argument count"},
		{input: "headless {\nmanifests " + demo + "\nttl 3601\n}", err: "ttl: want whole seconds from 0 to 3600"},
		{input: "headless {\nmanifests " + demo + "\nttl -1\n}", err: "ttl: want whole seconds"},
		{input: "headless {\nmanifests " + demo + "\nnegative_ttl abc\n}", err: "negative_ttl: want whole seconds"},
		{input: "headless {\nmanifests " + demo + "\nbogus\n}", err: `unknown property "bogus"`},
		{input: "headless {\nmanifests\n}", err: "Wrong argument count"},
		{input: "headless {\nmanifests " + demo + "\nendpoint_pod_names yes\n}", err: "Wrong argument count"},
		{input: "headless {\nmanifests /does/not/exist\n}", err: "no such file"},
		{input: "headless {\nmanifests " + demo + "\nkubeconfig " + kc + "\n}", err: "only one of kubeconfig and manifests"},
		{input: "headless {\nkubeconfig " + kc + "\nreload 1s\n}", err: "reload only applies to manifests"},
		{input: "headless {\nmanifests " + demo + "\nreload soon\n}", err: "reload: want a duration"},
		{input: "headless {\nmanifests " + demo + "\nnamespaces Bad_NS\n}", err: "is not a namespace name"},
		{input: "headless {\nkubeconfig /does/not/exist\n}", err: "kubeconfig /does/not/exist"},
		{input: "headless {\nkubeconfig " + kc + " nosuchcontext\n}", err: "nosuchcontext"},
		{input: "headless in-addr.arpa {\nmanifests " + demo + "\n}", err: "at least one zone must be a forward zone"},
		{input: "headless {\nmanifests " + demo + "\n}\nheadless {\nmanifests " + demo + "\n}", err: "can only be used once"},
	}
	for i, tc := range tests {
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		c := caddy.NewTestController("dns", tc.input)
		c.ServerBlockKeys = []string{"cluster.local.:53", "in-addr.arpa.:53"}
		h, err := parse(c)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("test %d: error %v, want one containing %q", i, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("test %d: unexpected error %v", i, err)
			continue
		}
		if strings.Join(h.zones, " ") != strings.Join(tc.zones, " ") {
			t.Errorf("test %d: zones %v, want %v", i, h.zones, tc.zones)
		}
		if h.cfg.ttl != tc.ttl || h.negTTL != tc.negTTL || h.soa[0].Minttl != tc.negTTL {
			t.Errorf("test %d: ttl %d negative_ttl %d (SOA minimum %d), want %d and %d", i, h.cfg.ttl, h.negTTL, h.soa[0].Minttl, tc.ttl, tc.negTTL)
		}
		if h.cfg.podNames != tc.pods || h.builder.cfg.podNames != tc.pods {
			t.Errorf("test %d: endpoint_pod_names %v (builder %v), want %v", i, h.cfg.podNames, h.builder.cfg.podNames, tc.pods)
		}
		if fell := h.Fall.Through("x.cluster.local."); fell != tc.fall && tc.zones[0] == "cluster.local." {
			t.Errorf("test %d: fallthrough %v, want %v", i, fell, tc.fall)
		}
		switch src := h.src.(type) {
		case *kubeSource:
			if !tc.kube {
				t.Errorf("test %d: kubernetes source, want manifests", i)
			}
			if len(src.namespaces) != tc.nsCount {
				t.Errorf("test %d: namespaces %v, want %d", i, src.namespaces, tc.nsCount)
			}
		case *manifestSource:
			if tc.kube {
				t.Errorf("test %d: manifests source, want kubernetes", i)
			}
			if src.reload.String() != tc.reload {
				t.Errorf("test %d: reload %s, want %s", i, src.reload, tc.reload)
			}
		}
	}
}

// Errors carry the Corefile's name and line, so users find what to fix.
func TestSetupErrorNamesLine(t *testing.T) {
	c := caddy.NewTestController("dns", "headless {\n  manifests .\n  ttl forever\n}")
	_, err := parse(c)
	if err == nil || !strings.Contains(err.Error(), "Testfile:3") {
		t.Fatalf("error %v does not name Testfile:3", err)
	}
}

func TestSetupInClusterMissing(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	_, err := parse(caddy.NewTestController("dns", "headless cluster.local"))
	if err == nil || !strings.Contains(err.Error(), "no kubeconfig or manifests given, and no in-cluster configuration") {
		t.Fatalf("error %v, want one about the missing in-cluster configuration", err)
	}
}

// A broken manifest stops the start with the file and line at fault.
func TestSetupBrokenManifest(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: [\n"), 0o644)
	_, err := parse(caddy.NewTestController("dns", "headless cluster.local {\nmanifests "+dir+"\n}"))
	if err == nil || !strings.Contains(err.Error(), bad+":") {
		t.Fatalf("error %v does not name %s", err, bad)
	}
}
