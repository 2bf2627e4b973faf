package headless

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

func TestEndpointLabel(t *testing.T) {
	pod := func(name string) *corev1.ObjectReference { return &corev1.ObjectReference{Kind: "Pod", Name: name} }
	long := "p123456789012345678901234567890123456789012345678901234567890123" // 64
	tests := []struct {
		name     string
		ep       discovery.Endpoint
		addr     string
		podNames bool
		label    string
		fromHost bool
	}{
		{name: "hostname", ep: discovery.Endpoint{Hostname: ptrTo("web-0")}, addr: "10.244.0.1", label: "web-0", fromHost: true},
		{name: "hostname before pod", ep: discovery.Endpoint{Hostname: ptrTo("Web-0"), TargetRef: pod("other")}, addr: "10.244.0.1", podNames: true, label: "web-0", fromHost: true},
		{name: "pod name", ep: discovery.Endpoint{TargetRef: pod("test-name")}, addr: "10.244.0.1", podNames: true, label: "test-name"},
		{name: "pod name off", ep: discovery.Endpoint{TargetRef: pod("test-name")}, addr: "10.244.0.1", label: "10-244-0-1"},
		{name: "any targetRef kind", ep: discovery.Endpoint{TargetRef: &corev1.ObjectReference{Kind: "Node", Name: "n1"}}, addr: "10.244.0.1", podNames: true, label: "n1"},
		{name: "pod name with dots", ep: discovery.Endpoint{TargetRef: pod("a.b")}, addr: "10.244.0.1", podNames: true, label: "a.b"},
		{name: "pod name with an empty label", ep: discovery.Endpoint{TargetRef: pod("a..b")}, addr: "10.244.0.1", podNames: true, label: "10-244-0-1"},
		{name: "pod name with dots, too long", ep: discovery.Endpoint{TargetRef: pod("a." + long[:62])}, addr: "10.244.0.1", podNames: true, label: "10-244-0-1"},
		{name: "pod name with dots, 63", ep: discovery.Endpoint{TargetRef: pod("a." + long[:61])}, addr: "10.244.0.1", podNames: true, label: "a." + long[:61]},
		{name: "pod name not a label", ep: discovery.Endpoint{TargetRef: pod("a_b")}, addr: "10.244.0.1", podNames: true, label: "10-244-0-1"},
		{name: "pod name too long", ep: discovery.Endpoint{TargetRef: pod(long)}, addr: "10.244.0.1", podNames: true, label: "10-244-0-1"},
		{name: "pod name 63", ep: discovery.Endpoint{TargetRef: pod(long[:63])}, addr: "10.244.0.1", podNames: true, label: long[:63]},
		{name: "empty pod name", ep: discovery.Endpoint{TargetRef: pod("")}, addr: "10.244.0.1", podNames: true, label: "10-244-0-1"},
		{name: "empty hostname", ep: discovery.Endpoint{Hostname: ptrTo("")}, addr: "10.244.0.1", label: "10-244-0-1"},
		// Not an RFC 1123 label, which the API server would refuse; the
		// kubernetes plugin names the endpoint so all the same.
		{name: "hostname with hyphens at the ends", ep: discovery.Endpoint{Hostname: ptrTo("-web-")}, addr: "10.244.0.1", label: "-web-", fromHost: true},
		{name: "ipv6", addr: "fd00::5", label: "fd00--5"},
		{name: "ipv6 trailing colons", addr: "fd00::", label: "fd00--0"},
		{name: "ipv6 leading colons", addr: "::1", label: "--1"},
		{name: "ipv6 unspecified", addr: "::", label: "--0"},
		{name: "ipv6 full", addr: "2001:db8:1:2:3:4:5:6", label: "2001-db8-1-2-3-4-5-6"},
		{name: "ipv6 upper case", addr: "FD00::A", label: "fd00--a"},
		{name: "ipv4-mapped", addr: "::ffff:10.244.0.1", label: "10-244-0-1"},
	}
	for _, tc := range tests {
		a := netip.MustParseAddr(tc.addr).Unmap()
		label, fromHost := endpointLabel(&tc.ep, tc.addr, a, tc.podNames)
		if label != tc.label || fromHost != tc.fromHost {
			t.Errorf("%s: got %q (hostname %v), want %q (hostname %v)", tc.name, label, fromHost, tc.label, tc.fromHost)
		}
	}
}
