package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: with-ns
  context: {cluster: c, user: u, namespace: team-a}
- name: without-ns
  context: {cluster: c, user: u}
current-context: %s
`

func TestLeaseNamespace(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	withNS := write("with", strings.Replace(testKubeconfig, "%s", "with-ns", 1))
	withoutNS := write("without", strings.Replace(testKubeconfig, "%s", "without-ns", 1))
	saFile := write("namespace", "petset-system\n")
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name                           string
		flag, kubeconfig, env, inClust string
		want, from                     string
		err                            bool
	}{
		{name: "flag wins", flag: "leases", kubeconfig: withNS, inClust: saFile, want: "leases", from: "--leader-election-namespace"},
		{name: "--kubeconfig context namespace", kubeconfig: withNS, inClust: saFile, want: "team-a", from: `context "with-ns"`},
		{name: "--kubeconfig context without namespace", kubeconfig: withoutNS, want: "default", from: "sets no namespace"},
		{name: "in cluster", inClust: saFile, want: "petset-system", from: "service account"},
		{name: "$KUBECONFIG beats in-cluster", env: withNS, inClust: saFile, want: "team-a", from: "$KUBECONFIG"},
		{name: "$KUBECONFIG list", env: missing + string(os.PathListSeparator) + withoutNS, inClust: missing, want: "default", from: "$KUBECONFIG"},
		{name: "unreadable kubeconfig", kubeconfig: missing, err: true},
		{name: "broken kubeconfig", kubeconfig: write("broken", "{{{"), err: true},
	}
	for _, tc := range tests {
		ns, from, err := LeaseNamespace(tc.flag, tc.kubeconfig, tc.env, tc.inClust)
		if tc.err {
			if err == nil {
				t.Errorf("%s: namespace %q, want an error", tc.name, ns)
			}
			continue
		}
		if err != nil || ns != tc.want || !strings.Contains(from, tc.from) {
			t.Errorf("%s: %q from %q (%v), want %q from %q", tc.name, ns, from, err, tc.want, tc.from)
		}
	}
}
