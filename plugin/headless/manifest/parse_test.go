package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name                            string
		in                              string
		services, slices, pods, skipped int
		err                             string // "file:line: text" substring
	}{
		{name: "empty", in: ""},
		{name: "comments only", in: "# nothing\n---\n# still nothing\n"},
		{name: "service", in: "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: None}\n", services: 1},
		{name: "two documents", in: "kind: Service\napiVersion: v1\nmetadata: {name: a}\n---\nkind: Pod\napiVersion: v1\nmetadata: {name: a-0}\n", services: 1, pods: 1},
		{name: "list with other kinds", in: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a}}\n- {apiVersion: apps/v1, kind: StatefulSet, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n", services: 1, skipped: 2},
		{name: "typed list without item kinds", in: "apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: a}\n- metadata: {name: b}\n", services: 2},
		{name: "json", in: `{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"s","labels":{"kubernetes.io/service-name":"a"}},"addressType":"IPv4","endpoints":[{"addresses":["10.244.0.1"]}]}`, slices: 1},

		{name: "syntax error", in: "kind: Service\nmetadata:\n  name: [\n", err: "f.yaml:3: "},
		{name: "wrong type", in: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - port: http\n", err: "f.yaml:1: Service: json: cannot unmarshal string"},
		{name: "second document wrong", in: "kind: Pod\napiVersion: v1\nmetadata: {name: p}\n---\n\nkind: Service\napiVersion: v1\nmetadata: {name: 5x}\n", err: "f.yaml:6: Service name \"5x\""},
		{name: "list item wrong", in: "kind: List\nitems:\n- {kind: Pod, apiVersion: v1, metadata: {name: p}}\n- kind: Service\n  apiVersion: v1\n  metadata: {namespace: Bad_NS, name: a}\n", err: "f.yaml:4: metadata.namespace \"Bad_NS\""},
		{name: "no kind", in: "apiVersion: v1\nmetadata: {name: a}\n", err: "f.yaml:1: no kind"},
		{name: "scalar document", in: "just a string\n", err: "f.yaml:1: not an object"},
		{name: "no name", in: "apiVersion: v1\nkind: Service\nspec: {}\n", err: "metadata.name is missing"},
		{name: "old slice version", in: "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\n", err: `apiVersion "discovery.k8s.io/v1beta1" is not supported`},
		{name: "bad address type", in: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv5\n", err: `addressType "IPv5"`},
		{name: "endpoint without address", in: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints:\n- hostname: a\n", err: "endpoints[0]: no addresses"},
		{name: "bad hostname", in: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints:\n- {addresses: [10.244.0.1], hostname: a.b}\n", err: `endpoints[0].hostname "a.b"`},
		{name: "non-string keys", in: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {1: 2}\n", err: "f.yaml:1: "},
	}
	for _, tc := range tests {
		o, err := Parse("f.yaml", []byte(tc.in))
		if tc.err != "" {
			var merr *Error
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &merr) || merr.File != "f.yaml" {
				t.Errorf("%s: error %v, want an *Error containing %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: unexpected error %v", tc.name, err)
			continue
		}
		if len(o.Services) != tc.services || len(o.Slices) != tc.slices || len(o.Pods) != tc.pods || o.Skipped != tc.skipped {
			t.Errorf("%s: got %d services, %d slices, %d pods, %d skipped; want %d, %d, %d, %d", tc.name,
				len(o.Services), len(o.Slices), len(o.Pods), o.Skipped, tc.services, tc.slices, tc.pods, tc.skipped)
		}
		for _, s := range o.Services {
			if s.Namespace != "default" {
				t.Errorf("%s: service %s in namespace %q, want default", tc.name, s.Name, s.Namespace)
			}
		}
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "b.yml"), []byte("apiVersion: v1\nkind: Service\nmetadata: {name: b}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("not yaml: ["), 0o644)
	o, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Services) != 2 || o.Services[0].Name != "a" || o.Services[1].Name != "b" {
		t.Fatalf("services %v, want a and b in order", o.Services)
	}
	if _, err := Load(filepath.Join(dir, "sub", "..", "none")); err == nil {
		t.Fatal("no error for a missing path")
	}
	empty := t.TempDir()
	if _, err := Load(empty); !errors.Is(err, ErrNoFiles) {
		t.Fatalf("error %v, want ErrNoFiles", err)
	}
}

// kubectl's own output for a real cluster is servable as is.
func TestParseKubectlOutput(t *testing.T) {
	o, err := Load(filepath.Join("testdata", "kubectl-get.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Services) != 2 || len(o.Slices) != 2 || len(o.Pods) != 2 {
		t.Fatalf("got %d services, %d slices, %d pods; want 2, 2, 2", len(o.Services), len(o.Slices), len(o.Pods))
	}
	set := o.Index()
	k := key("default", "nginx")
	if len(set.Slices[k]) != 1 || len(set.Slices[k][0].Endpoints) != 2 {
		t.Fatalf("nginx slices %v, want the one from the file with 2 endpoints", set.Slices[k])
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"../../../corefile/demo/web.yaml", "../../../corefile/demo/db.yaml", "testdata/kubectl-get.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("kind: List\nitems:\n- &a {kind: Service, metadata: {name: a}}\n- *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Parse("fuzz.yaml", data)
		if err != nil {
			var merr *Error
			if !errors.As(err, &merr) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		set := o.Index()
		for _, s := range set.Services {
			SlicesFor(s, o.Pods)
		}
	})
}
