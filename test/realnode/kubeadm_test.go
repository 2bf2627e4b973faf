//go:build e2e

package realnode

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"petset.dev/petset/test/cluster"
)

// kubeadmManifests is where kubeadm v1.34.2 keeps the templates of the
// cluster DNS it installs, in the module cache (test/tools requires
// k8s.io/kubernetes v1.34.2, so the testbed's build put it there).
const kubeadmManifests = "k8s.io/kubernetes@v1.34.2/cmd/kubeadm/app/phases/addons/dns/manifests.go"

// kubeadmDNS renders kubeadm v1.34.2's own CoreDNS templates for this
// cluster, in the order kubeadm creates them: the stock CoreDNS v1.15.0
// image from the testbed's registry, two replicas, cluster.local, and the
// kubelet's clusterDNS as the kube-dns Service's address.
func kubeadmDNS(t testing.TB) string {
	t.Helper()
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(modcache)), kubeadmManifests))
	if err != nil {
		t.Fatalf("kubeadm's DNS manifests (test/tools/build.sh downloads them): %v", err)
	}
	consts := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)\\t(CoreDNS\\w+) = `(.*?)`").FindAllStringSubmatch(string(src), -1) {
		consts[m[1]] = m[2]
	}
	data := map[string]any{
		"DNSIP": cluster.ClusterDNS, "DNSDomain": "cluster.local", "Replicas": 2,
		"Image": tb.TestImage("coredns"), "DeploymentName": "coredns",
		"ControlPlaneTaintKey": "node-role.kubernetes.io/control-plane",
	}
	var docs []string
	for _, name := range []string{"CoreDNSServiceAccount", "CoreDNSClusterRole", "CoreDNSClusterRoleBinding", "CoreDNSConfigMap", "CoreDNSDeployment", "CoreDNSService"} {
		text, ok := consts[name]
		if !ok {
			t.Fatalf("%s has no %s", kubeadmManifests, name)
		}
		var b strings.Builder
		if err := template.Must(template.New(name).Parse(text)).Execute(&b, data); err != nil {
			t.Fatal(err)
		}
		// kubeadm updates the Service with resourceVersion "0"; a
		// create must not name one.
		docs = append(docs, strings.Replace(b.String(), "  resourceVersion: \"0\"\n", "", 1))
	}
	return strings.Join(docs, "\n---\n")
}

// installKubeadmDNS installs the cluster DNS kubeadm would and waits until
// its pods are Ready. A DNS another test left in its place (petset's) is
// removed first, so the cluster's DNS is kubeadm's as kubeadm made it.
func installKubeadmDNS(t testing.TB) {
	t.Helper()
	if d, err := tb.Client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{}); err == nil && d.Spec.Template.Spec.Containers[0].Image != tb.TestImage("coredns") {
		kubectl(t, "delete", "-k", overlays+"/dns", "--wait=true")
	}
	file := filepath.Join(t.TempDir(), "kubeadm-dns.yaml")
	if err := os.WriteFile(file, []byte(kubeadmDNS(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "-f", file)
	waitDNS(t, tb.TestImage("coredns"))
}

// waitDNS waits until the coredns Deployment has rolled out: every pod
// runs image and is Ready, and no other pod is left.
func waitDNS(t testing.TB, image string) {
	t.Helper()
	poll(t, 3*time.Minute, "the coredns Deployment rolled out at "+image, func() (bool, string) {
		d, err := tb.Client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if !rolledOut(d) {
			return false, fmt.Sprintf("status %+v", d.Status)
		}
		pods, err := tb.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
		if err != nil {
			return false, err.Error()
		}
		for _, p := range pods.Items {
			if p.Spec.Containers[0].Image != image || !podReady(&p) || p.DeletionTimestamp != nil {
				return false, fmt.Sprintf("pod %s: %s ready %v", p.Name, p.Spec.Containers[0].Image, podReady(&p))
			}
		}
		return len(pods.Items) == int(*d.Spec.Replicas), fmt.Sprintf("%d pods", len(pods.Items))
	})
}

func rolledOut(d *appsv1.Deployment) bool {
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == *d.Spec.Replicas &&
		s.Replicas == *d.Spec.Replicas && s.AvailableReplicas == *d.Spec.Replicas
}
