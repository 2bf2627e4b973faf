//go:build e2e

package realnode

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// usePetsetDNS makes petset's CoreDNS (deploy/dns, images from the
// testbed) the cluster's DNS, over kubeadm's if none is there yet.
func usePetsetDNS(t testing.TB) {
	t.Helper()
	if _, err := tb.Client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{}); err != nil {
		installKubeadmDNS(t)
	}
	kubectl(t, "apply", "-k", overlays+"/dns")
	waitDNS(t, tb.Registry()+"/petset/coredns:"+version)
}

// A pod's own resolver, through its resolv.conf (the kube-dns Service's
// address, the search path, ndots), gets the names of the Kubernetes DNS
// spec from petset's DNS: a pet by <pet>.<svc> and by its full name, the
// service's port-less and _port._proto SRV records, the pet's PTR, and
// NXDOMAIN for a pet that does not exist. Expected answers come from the
// API (pod addresses, hostnames, service ports), not from the DNS.
func TestNamesFromPod(t *testing.T) {
	usePetsetDNS(t)
	ns := namespace(t, "names")
	pets(t, ns, "web", 2)
	client := resolverPod(t, ns, "client")
	pods, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, p := range pods.Items {
		ips[p.Name] = p.Status.PodIP
	}
	full := func(pet string) string { return pet + ".web." + ns + ".svc.cluster.local" }
	var srv []string
	for _, pet := range []string{"web-0", "web-1"} {
		srv = append(srv, full(pet)+".")
	}
	for _, tc := range []struct {
		typ, name string
		want      []string // records, sorted; nil: NXDOMAIN
	}{
		{"A", "web-0.web", []string{ips["web-0"]}},
		{"A", "web-1.web." + ns, []string{ips["web-1"]}},
		{"A", full("web-0") + ".", []string{ips["web-0"]}},
		{"SRV", "web." + ns + ".svc.cluster.local.", srvRecords(80, srv)},
		{"SRV", "_http._tcp.web." + ns + ".svc.cluster.local.", srvRecords(80, srv)},
		{"PTR", ips["web-1"], []string{full("web-1") + "."}},
		{"A", "web-9.web", nil},
	} {
		var got Result
		poll(t, 30*time.Second, fmt.Sprintf("%s %s from the pod", tc.typ, tc.name), func() (bool, string) {
			got = resolve(t, client, tc.typ, tc.name)
			if tc.want == nil {
				return got.NotFound, fmt.Sprintf("%+v", got)
			}
			return got.Error == "" && slices.Equal(srvTargets(tc.typ, got.Records), tc.want), fmt.Sprintf("%+v, want %v", got, tc.want)
		})
	}
}

// srvRecords is what an SRV question for a service with one port is
// answered: each pet's name on that port (priority and weight aside).
func srvRecords(port int, targets []string) []string {
	var out []string
	for _, t := range targets {
		out = append(out, fmt.Sprintf("%d %s", port, t))
	}
	slices.Sort(out)
	return out
}

// srvTargets drops priority and weight from SRV records ("p w port
// target"), which the spec leaves to the server, and sorts them; other
// types are only sorted.
func srvTargets(typ string, records []string) []string {
	out := slices.Clone(records)
	if typ == "SRV" {
		for i, r := range out {
			if f := strings.Fields(r); len(f) == 4 {
				out[i] = f[2] + " " + f[3]
			}
		}
	}
	slices.Sort(out)
	return out
}
