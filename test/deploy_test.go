package test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// deployCorefiles returns the Corefile of every ConfigMap under deploy/
// (run from the repository's root), so that TestCorefiles starts them.
func deployCorefiles(t *testing.T) []example {
	t.Helper()
	var out []example
	err := filepath.WalkDir("deploy", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if doc["kind"] != "ConfigMap" {
				continue
			}
			j, err := sigsyaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			var cm corev1.ConfigMap
			if err := sigsyaml.UnmarshalStrict(j, &cm); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if body, ok := cm.Data["Corefile"]; ok {
				out = append(out, example{source: p + ":ConfigMap/" + cm.Name, body: body})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The Corefile that deploy/dns installs is corefile/cluster.Corefile (the
// file the e2e suite serves from the testbed), comments aside; and it puts
// headless in front of kubernetes with fallthrough, with the health,
// ready and prometheus endpoints the Deployment's probes and port use.
func TestDeployCorefile(t *testing.T) {
	t.Chdir("..")
	var found []example
	for _, ex := range deployCorefiles(t) {
		if strings.HasPrefix(ex.source, filepath.Join("deploy", "dns")) {
			found = append(found, ex)
		}
	}
	if len(found) != 1 {
		t.Fatalf("deploy/dns has %d Corefile ConfigMaps, want 1", len(found))
	}
	cluster, err := os.ReadFile("corefile/cluster.Corefile")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := uncomment(found[0].body), uncomment(string(cluster)); a != b {
		t.Errorf("%s differs from corefile/cluster.Corefile:\n%s\n----\n%s", found[0].source, a, b)
	}
	deployment, err := os.ReadFile("deploy/dns/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{
		{"health :8080", "path: /health, port: 8080"},
		{"ready :8181", "path: /ready, port: 8181"},
		{"prometheus :9153", "containerPort: 9153"},
	} {
		if !strings.Contains(found[0].body, pair[0]) || !strings.Contains(string(deployment), pair[1]) {
			t.Errorf("Corefile %q and deployment %q must go together", pair[0], pair[1])
		}
	}
	h, k := strings.Index(found[0].body, "headless "), strings.Index(found[0].body, "kubernetes ")
	if h < 0 || k < 0 || h > k || !strings.Contains(found[0].body[h:k], "fallthrough") {
		t.Errorf("headless with fallthrough must come before kubernetes:\n%s", found[0].body)
	}
}

func uncomment(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			out = append(out, t)
		}
	}
	return strings.Join(out, "\n")
}
