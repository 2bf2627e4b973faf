//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	sigsyaml "sigs.k8s.io/yaml"
)

// documents reads the YAML documents of a file as unstructured objects.
func documents(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc == nil {
			continue
		}
		j, _ := sigsyaml.Marshal(doc)
		u := &unstructured.Unstructured{}
		if err := sigsyaml.Unmarshal(j, &u.Object); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
}

// kustomizationFiles returns the manifest files the kustomization in dir
// names, following directory resources (overlays and bases) depth first.
func kustomizationFiles(t *testing.T, dir string) []string {
	t.Helper()
	var kust struct {
		Resources []string `json:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.Unmarshal(b, &kust); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var out []string
	for _, r := range kust.Resources {
		p := filepath.Join(dir, r)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			out = append(out, kustomizationFiles(t, p)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// Everything `kubectl apply -k deploy/` would send is accepted by the API
// server (server-side dry run), and the CRD's schema rejects a bad PetSet
// with a message that names the field.
func TestDeployManifests(t *testing.T) {
	installCRD(t)
	dyn, err := dynamic.NewForConfig(tb.Config)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(tb.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))

	ns := tb.Namespace(t, "deploy")
	apply := func(u *unstructured.Unstructured, namespace string, dryRun bool) error {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(schema.GroupKind{Group: gvk.Group, Kind: gvk.Kind}, gvk.Version)
		if err != nil {
			return err
		}
		opts := metav1.CreateOptions{}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		var r dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			u.SetNamespace(namespace)
			r = dyn.Resource(m.Resource).Namespace(namespace)
		}
		_, err = r.Create(ctx, u, opts)
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	count := 0
	files := kustomizationFiles(t, "../../deploy")
	for _, dir := range []string{"controller", "dns", "crd"} {
		if !slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, "../../deploy/"+dir+"/") }) {
			t.Errorf("deploy/kustomization.yaml does not reach deploy/%s: %v", dir, files)
		}
	}
	for _, res := range files {
		for _, u := range documents(t, res) {
			// The kustomization's namespace does not exist in this dry
			// run; a test namespace stands in for it.
			if u.GetKind() == "Namespace" {
				continue
			}
			if err := apply(u, ns, true); err != nil {
				t.Errorf("%s %s/%s: %v", res, u.GetKind(), u.GetName(), err)
			}
			count++
		}
	}
	if count < 6 {
		t.Fatalf("only %d objects in deploy/", count)
	}
	examples, _ := filepath.Glob("../../deploy/examples/*.yaml")
	if len(examples) < 2 {
		t.Fatalf("examples: %v", examples)
	}
	for _, ex := range examples {
		for _, u := range documents(t, ex) {
			if err := apply(u, ns, true); err != nil {
				t.Errorf("%s: %s/%s: %v", filepath.Base(ex), u.GetKind(), u.GetName(), err)
			}
		}
	}

	bad := map[string]func(map[string]any){
		"spec.replicas":            func(spec map[string]any) { spec["replicas"] = int64(-1) },
		"spec.podManagementPolicy": func(spec map[string]any) { spec["podManagementPolicy"] = "Sometimes" },
		"spec.serviceName":         func(spec map[string]any) { spec["serviceName"] = "Not_A_Name" },
	}
	for field, mutate := range bad {
		docs := documents(t, "../../deploy/examples/web.yaml")
		ps := docs[len(docs)-1]
		spec := ps.Object["spec"].(map[string]any)
		mutate(spec)
		err := apply(ps, ns, true)
		if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), field) {
			t.Errorf("a bad %s: error %v, want Invalid naming the field", field, err)
		}
	}
}
