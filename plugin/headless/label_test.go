package headless

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/coredns/caddy"
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

func caddyController(input string) *caddy.Controller {
	c := caddy.NewTestController("dns", input)
	c.Next()
	return c
}

// The informer caches keep an endpoint's targetRef name only when
// endpoint_pod_names needs it: for an endpoint without a valid hostname.
// Whatever they drop, the members built from a slimmed slice are those
// built from the slice itself.
func TestSlimPodNames(t *testing.T) {
	in := &discovery.EndpointSlice{AddressType: discovery.AddressTypeIPv4, Endpoints: []discovery.Endpoint{{
		Addresses: []string{"10.244.0.1"},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-0", UID: "u"},
	}, {
		Addresses:  []string{"10.244.0.2"},
		Hostname:   ptrTo("web-1"),
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-1", UID: "v"},
		Conditions: discovery.EndpointConditions{Ready: ptrTo(true), Serving: ptrTo(true)},
	}, {
		Addresses:  []string{"10.244.0.3"},
		Hostname:   ptrTo("Not_A_Label"),
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-2"},
		Conditions: discovery.EndpointConditions{Ready: ptrTo(true)},
	}, {
		Addresses:  []string{"10.244.0.4"},
		Hostname:   ptrTo("web-3"),
		Conditions: discovery.EndpointConditions{Ready: ptrTo(false)},
	}}}
	for _, podNames := range []bool{false, true} {
		o, err := (&kubeSource{podNames: podNames}).slim(in.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		out := o.(*discovery.EndpointSlice)
		for i, ep := range out.Endpoints {
			ref := ep.TargetRef
			needed := podNames && i != 1 && in.Endpoints[i].TargetRef != nil
			switch {
			case !needed && ref != nil:
				t.Errorf("podNames %v, endpoint %d: targetRef %+v kept, but never read", podNames, i, ref)
			case needed && (ref == nil || ref.Name != in.Endpoints[i].TargetRef.Name || ref.UID != ""):
				t.Errorf("podNames %v, endpoint %d: targetRef %+v, want only the name %s", podNames, i, ref, in.Endpoints[i].TargetRef.Name)
			}
		}
		want, got := collect([]*discovery.EndpointSlice{in}, podNames), collect([]*discovery.EndpointSlice{out}, podNames)
		if len(got) != len(want) {
			t.Fatalf("podNames %v: %d members from the slimmed slice, %d from the slice", podNames, len(got), len(want))
		}
		for i := range want {
			if g, w := fmt.Sprint(got[i].label, got[i].hostname, got[i].v4), fmt.Sprint(want[i].label, want[i].hostname, want[i].v4); g != w {
				t.Errorf("podNames %v: member %s from the slimmed slice, %s from the slice", podNames, g, w)
			}
		}
	}
}
