//go:build e2e

// Package realnode runs petset in real containers: a control plane from
// test/cluster with one node run by a real kubelet, containerd and
// kube-proxy. petset's images, built by `make images` for this machine's
// platform, reach the node through a registry on 127.0.0.1, as they reach
// a user's nodes from theirs, and deploy/ is applied through a
// kustomization that only sets image references.
package realnode

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"petset.dev/petset/test/cluster"
)

var (
	ctx = context.Background()
	tb  *cluster.Cluster
	// overlays holds one kustomization per deploy/ directory, setting the
	// images to those pushed to the testbed's registry.
	overlays string
	// version is the tag of petset's images in the registry.
	version string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "realnode: "+format+"\n", args...) }
	var err error
	tb, err = cluster.Start(ctx, cluster.Options{RealNode: true, Volumes: 100, Log: logf})
	if err != nil {
		logf("testbed: %v", err)
		return 1
	}
	code := 1
	// An interrupted run still takes the node down: its mounts, bridge
	// and rules are the host's.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		logf("interrupted; stopping the testbed")
		tb.Stop()
		os.Exit(130)
	}()
	defer func() {
		tb.Stop()
		if code == 0 {
			os.RemoveAll(tb.Dir)
		} else {
			logf("failed; logs kept in %s/logs", tb.Dir)
		}
	}()
	logf("building petset's images and pushing them to %s", tb.Registry())
	if err := pushImages(); err != nil {
		logf("images: %v", err)
		return 1
	}
	code = m.Run()
	return code
}

// repo is the root of the main module.
var repo = func() string { d, _ := filepath.Abs("../.."); return d }()

// pushImages builds petset's images as `make images` does, for this
// machine's platform, pushes them to the testbed's registry with the
// project's push code, and writes the overlays.
func pushImages() error {
	out := filepath.Join(tb.Dir, "images")
	build := exec.Command("go", "-C", filepath.Join(repo, "build"), "run", "./cmd/images",
		"-root", repo, "-out", out, "-platforms", "linux/"+goarch())
	var stdout, stderr bytes.Buffer
	build.Stdout, build.Stderr = &stdout, &stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("make images: %w: %s", err, stderr.String())
	}
	push := exec.Command("go", "-C", filepath.Join(repo, "build"), "run", "./cmd/images",
		"-push", "-insecure", "-out", out, "-registry", tb.Registry()+"/petset")
	pushed, err := push.CombinedOutput()
	if err != nil {
		return fmt.Errorf("push: %w: %s", err, pushed)
	}
	// Each line: <registry>/petset/<name>:<version> <digest>.
	sc := bufio.NewScanner(bytes.NewReader(pushed))
	for sc.Scan() {
		ref, _, _ := strings.Cut(sc.Text(), " ")
		if i := strings.LastIndex(ref, ":"); i > 0 && strings.Contains(ref, "/petset/") {
			version = ref[i+1:]
		}
	}
	if version == "" {
		return fmt.Errorf("push printed no image:\n%s", pushed)
	}
	overlays = filepath.Join(tb.Dir, "overlays")
	for _, dir := range []string{"dns", "controller"} {
		base, err := filepath.Rel(filepath.Join(overlays, dir), filepath.Join(repo, "deploy", dir))
		if err != nil {
			return err
		}
		k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + base + "\nimages:\n"
		for _, name := range []string{"coredns", "ordinal-controller", "peer-finder"} {
			k += fmt.Sprintf("- {name: ghcr.io/petset/%s, newName: %s/petset/%s, newTag: %q}\n", name, tb.Registry(), name, version)
		}
		if err := os.MkdirAll(filepath.Join(overlays, dir), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(overlays, dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func goarch() string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		return "amd64"
	}
	return strings.TrimSpace(string(out))
}

// kubectl runs the testbed's kubectl with the testbed's kubeconfig.
func kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := kubectlErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func kubectlErr(args ...string) (string, error) {
	bins, err := cluster.Binaries()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bins, "kubectl"), append([]string{"--kubeconfig", tb.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
