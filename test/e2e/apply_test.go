//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	petsettest "petset.dev/petset/test"
	"petset.dev/petset/test/cluster"
)

// kubectl runs the testbed's kubectl (built by test/tools at the control
// plane's version) against the testbed and returns its standard output.
func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bins, err := cluster.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bins, "kubectl"), append([]string{"--kubeconfig", tb.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &kubectlError{args: args, err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type kubectlError struct {
	args   []string
	err    error
	stderr string
}

func (e *kubectlError) Error() string {
	return "kubectl " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + strings.TrimSpace(e.stderr)
}

// pollKubectl runs kubectl every 500ms until ok accepts its output, or
// fails the test at the deadline with the last output.
func pollKubectl(t *testing.T, what string, timeout time.Duration, ok func(string) bool, args ...string) {
	t.Helper()
	pollEvery(t, 500*time.Millisecond, timeout, what, func() (bool, string) {
		out, err := kubectl(t, args...)
		return err == nil && ok(out), fmt.Sprintf("%q %v", out, err)
	})
}

// `kubectl apply -k deploy/` with the testbed's own kubectl installs the
// controller and petset's CoreDNS for real: both Deployments become
// Available (kwok runs no container but marks the pods Ready), the
// Corefile read back from the cluster starts in cmd/coredns and serves
// the testbed, and `kubectl delete -k deploy/` leaves no object behind.
func TestApplyDeploy(t *testing.T) {
	out, err := kubectl(t, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Client struct{ GitVersion string } `json:"clientVersion"`
		Server struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Client.GitVersion == "" || v.Client.GitVersion != v.Server.GitVersion {
		t.Fatalf("kubectl %q against API server %q (%v): want the same version", v.Client.GitVersion, v.Server.GitVersion, err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			kubectl(t, "delete", "-k", "../../deploy", "--ignore-not-found", "--wait=false")
		}
	})
	if out, err := kubectl(t, "apply", "-k", "../../deploy"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "deployment.apps/coredns") || !strings.Contains(out, "deployment.apps/ordinal-controller") {
		t.Fatalf("apply printed:\n%s", out)
	}
	for _, d := range []string{"kube-system/coredns", "petset-system/ordinal-controller"} {
		ns, name, _ := strings.Cut(d, "/")
		pollKubectl(t, d+" Available", 2*time.Minute, func(s string) bool { return s == "True" },
			"-n", ns, "get", "deployment", name, "-o", `jsonpath={.status.conditions[?(@.type=="Available")].status}`)
		img, err := kubectl(t, "-n", ns, "get", "deployment", name, "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		if err != nil || !strings.HasPrefix(img, "ghcr.io/petset/") {
			t.Errorf("%s runs %q (%v)", d, img, err)
		}
	}

	// The Corefile as the cluster holds it starts in cmd/coredns and
	// serves the testbed: a headless name and, behind it, kubernetes.
	corefile, err := kubectl(t, "-n", "kube-system", "get", "configmap", "coredns", "-o", "jsonpath={.data.Corefile}")
	if err != nil || !strings.Contains(corefile, "headless") {
		t.Fatalf("Corefile %q (%v)", corefile, err)
	}
	body := petsettest.Localize(corefile, tb.Kubeconfig)
	serveTestbed(t, body, "the deployed Corefile")

	// Everything goes away again.
	if _, err := kubectl(t, "delete", "-k", "../../deploy", "--wait=true", "--timeout=2m"); err != nil {
		t.Fatal(err)
	}
	deleted = true
	pollKubectl(t, "objects of deploy/ gone", 2*time.Minute, func(s string) bool { return strings.TrimSpace(s) == "" },
		"get", "-k", "../../deploy", "--ignore-not-found", "-o", "name")
	pollKubectl(t, "DNS pods and ReplicaSets gone", 2*time.Minute, func(s string) bool { return strings.TrimSpace(s) == "" },
		"-n", "kube-system", "get", "pods,replicasets", "-l", "k8s-app=kube-dns", "-o", "name")
	if _, err := tb.Client.CoreV1().Namespaces().Get(ctx, "petset-system", metav1.GetOptions{}); err == nil {
		t.Error("namespace petset-system still exists")
	}
}
