//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// The multicluster differential's Corefile parts: headless serves the
// kubernetes plugin's multicluster zone too, as a server block of both
// zones would have it.
const (
	mcHeadless = `    headless cluster.local clusterset.local {
        kubeconfig %s
        fallthrough
    }
`
	mcKubernetes = `    kubernetes cluster.local clusterset.local {
        kubeconfig %s
        multicluster clusterset.local
    }
`
)

var serviceImportGVR = schema.GroupVersionResource{Group: "multicluster.x-k8s.io", Version: "v1alpha1", Resource: "serviceimports"}

// In the kubernetes plugin's multicluster zone, headless in front of it
// answers as it does alone: names of a ServiceImport with no Service of
// that name are that plugin's to answer, not a missing service's NXDOMAIN
// for headless to give (which it does in cluster.local of the same
// server). This fails if headless takes the zone for an ordinary one.
func TestDifferentialMulticluster(t *testing.T) {
	installServiceImportCRD(t)
	ns := tb.Namespace(t, "diffmc")
	dyn, err := dynamic.NewForConfig(tb.Config)
	if err != nil {
		t.Fatal(err)
	}
	imp := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "multicluster.x-k8s.io/v1alpha1",
		"kind":       "ServiceImport",
		"metadata":   map[string]any{"name": "imp", "namespace": ns},
		"spec": map[string]any{
			"type":  "Headless",
			"ports": []any{map[string]any{"name": "http", "protocol": "TCP", "port": int64(80)}},
		},
	}}
	if _, err := dyn.Resource(serviceImportGVR).Namespace(ns).Create(ctx, imp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	httpName, proto, port := "http", corev1.ProtocolTCP, int32(80)
	if _, err := tb.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "imp-c1", Labels: map[string]string{
			"multicluster.kubernetes.io/service-name":   "imp",
			"multicluster.kubernetes.io/source-cluster": "c1",
		}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: &httpName, Protocol: &proto, Port: &port}},
		Endpoints:   []discovery.Endpoint{{Addresses: []string{"10.244.201.1"}, Hostname: ptr("imp-0")}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	kc := tb.Kubeconfig
	metricsPort, err := freeUDPTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]string{
		"headless-mc": startServer(t, "headless-mc", "    prometheus 127.0.0.1:"+metricsPort+"\n"+fmt.Sprintf(mcHeadless, kc)+fmt.Sprintf(mcKubernetes, kc)),
		"stock-mc":    startServer(t, "stock-mc", fmt.Sprintf(mcKubernetes, kc)),
	}

	at := func(labels ...string) string { return strings.Join(labels, ".") + "." + ns + ".svc.clusterset.local." }
	var questions []diffQuery
	for _, n := range []string{at("imp"), at("imp-0", "c1", "imp"), at("_http", "_tcp", "imp"), at("nx"), at("api", "example", "com")} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV} {
			questions = append(questions, diffQuery{n, qt})
		}
	}

	// Both servers have the import before anything is compared, so that
	// agreement is not two empty answers.
	for label, addr := range servers {
		pollUntil(t, 30*time.Second, label+" answers the import's endpoint", func() (bool, string) {
			a, err := query(addr, at("imp-0", "c1", "imp"), dns.TypeA)
			return err == nil && strings.Contains(a, "10.244.201.1"), fmt.Sprint(a, err)
		})
	}
	metricsURL := "http://127.0.0.1:" + metricsPort + "/metrics"
	before := metricValue(t, metricsURL, "coredns_headless_kubernetes_nxdomain_total")
	pollUntil(t, 30*time.Second, "headless-mc answers as stock-mc", func() (bool, string) {
		var bad []string
		for _, q := range questions {
			want, err := query(servers["stock-mc"], q.name, q.qtype)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: stock-mc: %v", q, err))
				continue
			}
			got, err := query(servers["headless-mc"], q.name, q.qtype)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: headless-mc: %v", q, err))
				continue
			}
			if got != want {
				bad = append(bad, fmt.Sprintf("%s: headless-mc differs from stock-mc\nstock-mc:\n%sheadless-mc:\n%s", q, want, got))
			}
		}
		return len(bad) == 0, strings.Join(bad, "\n")
	})
	if n := metricValue(t, metricsURL, "coredns_headless_kubernetes_nxdomain_total"); n != before {
		t.Errorf("headless answered %v NXDOMAINs for the kubernetes plugin in its multicluster zone", n-before)
	}

	// In cluster.local of the same server headless does answer them.
	b, err := os.ReadFile(filepath.Join(tb.Dir, "logs", "coredns-headless-mc.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Answering NXDOMAIN for services the kubernetes plugin does not have") {
		t.Errorf("headless does not answer for the kubernetes plugin in cluster.local; log:\n%s", b)
	}
	if _, err := query(servers["headless-mc"], "nx."+ns+".svc.cluster.local.", dns.TypeA); err != nil {
		t.Fatal(err)
	}
	if n := metricValue(t, metricsURL, "coredns_headless_kubernetes_nxdomain_total"); n != before+1 {
		t.Errorf("a missing service in cluster.local: coredns_headless_kubernetes_nxdomain_total went from %v to %v, want one more", before, n)
	}
}

// installServiceImportCRD installs a CRD for the multicluster API's
// ServiceImports (all fields kept, none checked), which the kubernetes
// plugin watches for its multicluster zones, and waits until it is served.
func installServiceImportCRD(t *testing.T) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(tb.Config)
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "serviceimports.multicluster.x-k8s.io"},
		"spec": map[string]any{
			"group": "multicluster.x-k8s.io",
			"scope": "Namespaced",
			"names": map[string]any{"kind": "ServiceImport", "listKind": "ServiceImportList", "plural": "serviceimports", "singular": "serviceimport"},
			"versions": []any{map[string]any{
				"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}}
	if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("ServiceImport CRD: %v", err)
	}
	pollUntil(t, 30*time.Second, "the ServiceImport API is served", func() (bool, string) {
		_, err := dyn.Resource(serviceImportGVR).List(ctx, metav1.ListOptions{})
		return err == nil, fmt.Sprint(err)
	})
}
