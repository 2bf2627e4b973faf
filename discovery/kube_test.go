package discovery

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kubeSet reads the set with the service account's token over TLS checked
// against the service account's CA, as a pod's API calls go.
func TestKubeSet(t *testing.T) {
	objects := map[string]string{
		"/apis/petset.dev/v1alpha1/namespaces/demo/petsets/etcd":    `{"metadata":{"name":"etcd"},"spec":{"replicas":5,"ordinals":{"start":2}}}`,
		"/apis/apps/v1/namespaces/demo/statefulsets/etcd":           `{"metadata":{"name":"etcd","deletionTimestamp":"2025-01-01T00:00:00Z"},"spec":{}}`,
		"/apis/petset.dev/v1alpha1/namespaces/demo/petsets/private": `forbidden`,
	}
	token := "token-1"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		body, ok := objects[r.URL.Path]
		switch {
		case !ok:
			http.Error(w, `{"kind":"Status","code":404}`, http.StatusNotFound)
		case body == "forbidden":
			http.Error(w, `petsets.petset.dev "private" is forbidden`, http.StatusForbidden)
		default:
			w.Write([]byte(body))
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	env := map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}

	scale := func(ref string) (setScale, error) {
		t.Helper()
		kind, name, err := parseSetRef(ref)
		if err != nil {
			t.Fatal(err)
		}
		k, err := newKubeSet(kind, name, "demo", dir, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		return k.Scale(context.Background())
	}
	if s, err := scale("petset/etcd"); err != nil || s != (setScale{Found: true, Replicas: 5, Start: 2}) {
		t.Errorf("petset: %+v %v", s, err)
	}
	if s, err := scale("StatefulSet/etcd"); err != nil || s != (setScale{Found: true, Deleting: true, Replicas: 1}) {
		t.Errorf("statefulset: %+v %v", s, err)
	}
	if s, err := scale("petset/gone"); err != nil || s.Found {
		t.Errorf("gone: %+v %v", s, err)
	}
	if _, err := scale("petset/private"); err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("forbidden: %v", err)
	}
	// The token is read for every request: kubelet rotates it.
	token = "token-2"
	os.WriteFile(filepath.Join(dir, "token"), []byte(token), 0o600)
	if s, err := scale("petset/etcd"); err != nil || !s.Found {
		t.Errorf("after rotation: %+v %v", s, err)
	}

	for _, bad := range []string{"etcd", "deployment/etcd", "petset/", "/etcd"} {
		if _, _, err := parseSetRef(bad); err == nil {
			t.Errorf("parseSetRef(%q) accepted", bad)
		}
	}
	if _, err := newKubeSet("petset", "etcd", "demo", dir, func(string) string { return "" }); err == nil {
		t.Error("no KUBERNETES_SERVICE_HOST accepted")
	}
	if _, err := newKubeSet("petset", "etcd", "demo", t.TempDir(), func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "automountServiceAccountToken") {
		t.Errorf("no CA: %v", err)
	}
}
