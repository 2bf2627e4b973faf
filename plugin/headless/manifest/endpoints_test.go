package manifest

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func key(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func pod(name string, ready bool, ips ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Hostname: name, Subdomain: "web", Containers: []corev1.Container{{
			Name:  "c",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "gossip", ContainerPort: 7946, Protocol: corev1.ProtocolUDP}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	return p
}

func webService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "gossip", Port: 7946, Protocol: corev1.ProtocolUDP},
				{Name: "admin", Port: 9000, TargetPort: intstr.FromInt32(9090)},
			},
		},
	}
}

// endpointsOf flattens slices into address -> (hostname, ready, ports).
type got struct {
	hostname string
	ready    bool
	family   discovery.AddressType
	ports    map[string]int32
}

func flatten(sl []*discovery.EndpointSlice) map[string]got {
	out := map[string]got{}
	for _, s := range sl {
		ports := map[string]int32{}
		for _, p := range s.Ports {
			ports[*p.Name+"/"+string(*p.Protocol)] = *p.Port
		}
		for _, e := range s.Endpoints {
			g := got{ready: *e.Conditions.Ready, family: s.AddressType, ports: ports}
			if e.Hostname != nil {
				g.hostname = *e.Hostname
			}
			out[e.Addresses[0]] = g
		}
	}
	return out
}

func TestSlicesFor(t *testing.T) {
	other := pod("x-0", true, "10.244.0.9")
	other.Labels = map[string]string{"app": "other"}
	elsewhere := pod("web-9", true, "10.244.0.8")
	elsewhere.Namespace = "ns2"
	wrongSub := pod("web-5", true, "10.244.0.5")
	wrongSub.Spec.Subdomain = "not-web"
	done := pod("web-6", true, "10.244.0.6")
	done.Status.Phase = corev1.PodSucceeded
	noIP := pod("web-7", true)
	legacy := pod("web-3", true)
	legacy.Status.PodIP = "10.244.0.3"
	deleting := pod("web-4", true, "10.244.0.4")
	deleting.DeletionTimestamp = &metav1.Time{}
	noNamedPort := pod("web-8", true, "10.244.0.7")
	noNamedPort.Spec.Containers[0].Ports = nil

	pods := []*corev1.Pod{
		pod("web-0", true, "10.244.0.10", "fd00::10"),
		pod("web-1", false, "10.244.0.11"),
		other, elsewhere, wrongSub, done, noIP, legacy, deleting, noNamedPort,
	}
	all := map[string]int32{"http/TCP": 8080, "gossip/UDP": 7946, "admin/TCP": 9090}
	tests := []struct {
		name    string
		publish bool
		want    map[string]got
	}{
		{name: "ready only", want: map[string]got{
			"10.244.0.10": {hostname: "web-0", ready: true, family: discovery.AddressTypeIPv4, ports: all},
			"fd00::10":    {hostname: "web-0", ready: true, family: discovery.AddressTypeIPv6, ports: all},
			"10.244.0.11": {hostname: "web-1", ready: false, family: discovery.AddressTypeIPv4, ports: all},
			"10.244.0.5":  {hostname: "", ready: true, family: discovery.AddressTypeIPv4, ports: all},
			"10.244.0.3":  {hostname: "web-3", ready: true, family: discovery.AddressTypeIPv4, ports: all},
			"10.244.0.4":  {hostname: "web-4", ready: false, family: discovery.AddressTypeIPv4, ports: all},
			"10.244.0.7":  {hostname: "web-8", ready: true, family: discovery.AddressTypeIPv4, ports: map[string]int32{"gossip/UDP": 7946, "admin/TCP": 9090}},
		}},
		{name: "publishNotReadyAddresses", publish: true, want: map[string]got{
			"10.244.0.10": {hostname: "web-0", ready: true, family: discovery.AddressTypeIPv4, ports: all},
			"fd00::10":    {hostname: "web-0", ready: true, family: discovery.AddressTypeIPv6, ports: all},
			"10.244.0.11": {hostname: "web-1", ready: true, family: discovery.AddressTypeIPv4, ports: all},
			"10.244.0.5":  {hostname: "", ready: true, family: discovery.AddressTypeIPv4, ports: all},
			"10.244.0.3":  {hostname: "web-3", ready: true, family: discovery.AddressTypeIPv4, ports: all},
			"10.244.0.4":  {hostname: "web-4", ready: true, family: discovery.AddressTypeIPv4, ports: all},
			"10.244.0.7":  {hostname: "web-8", ready: true, family: discovery.AddressTypeIPv4, ports: map[string]int32{"gossip/UDP": 7946, "admin/TCP": 9090}},
		}},
	}
	for _, tc := range tests {
		svc := webService()
		svc.Spec.PublishNotReadyAddresses = tc.publish
		out := flatten(SlicesFor(svc, pods))
		if len(out) != len(tc.want) {
			t.Errorf("%s: %d endpoints %v, want %d", tc.name, len(out), out, len(tc.want))
		}
		for addr, w := range tc.want {
			g, ok := out[addr]
			if !ok {
				t.Errorf("%s: %s missing", tc.name, addr)
				continue
			}
			if g.hostname != w.hostname || g.ready != w.ready || g.family != w.family || len(g.ports) != len(w.ports) {
				t.Errorf("%s: %s is %+v, want %+v", tc.name, addr, g, w)
			}
			for p, n := range w.ports {
				if g.ports[p] != n {
					t.Errorf("%s: %s port %s is %d, want %d", tc.name, addr, p, g.ports[p], n)
				}
			}
		}
	}
}

func TestSlicesForIPFamilies(t *testing.T) {
	svc := webService()
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	out := flatten(SlicesFor(svc, []*corev1.Pod{pod("web-0", true, "10.244.0.10", "fd00::10")}))
	if _, ok := out["fd00::10"]; !ok || len(out) != 1 {
		t.Fatalf("IPv6-only service got %v, want only fd00::10", out)
	}
}

func TestIndexPrefersSlices(t *testing.T) {
	svc := webService()
	given := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "hand", Labels: map[string]string{discovery.LabelServiceName: "web"}},
		AddressType: discovery.AddressTypeIPv4,
		Endpoints:   []discovery.Endpoint{{Addresses: []string{"10.244.9.9"}}},
	}
	unlabelled := given.DeepCopy()
	unlabelled.Name, unlabelled.Labels = "stray", nil
	newer := given.DeepCopy()
	newer.Endpoints[0].Addresses = []string{"10.244.9.10"}
	o := &Objects{
		Services: []*corev1.Service{svc},
		Slices:   []*discovery.EndpointSlice{given, unlabelled, newer},
		Pods:     []*corev1.Pod{pod("web-0", true, "10.244.0.10")},
	}
	set := o.Index()
	sl := set.Slices[key("ns", "web")]
	if len(sl) != 1 || sl[0].Endpoints[0].Addresses[0] != "10.244.9.10" {
		t.Fatalf("slices %v, want only the later copy of the hand-written slice", sl)
	}
	o.Slices = nil
	if sl := o.Index().Slices[key("ns", "web")]; len(sl) != 1 || sl[0].Endpoints[0].Addresses[0] != "10.244.0.10" {
		t.Fatalf("slices %v, want one derived from web-0", sl)
	}
}

// A named targetPort resolves as the EndpointSlice controller's FindPort
// does: the containers' ports first, then the sidecars' (init containers
// with restartPolicy Always), never other init containers'.
func TestSlicesForSidecarPorts(t *testing.T) {
	always, never := corev1.ContainerRestartPolicyAlways, corev1.ContainerRestartPolicy("Never")
	svc := webService()
	svc.Spec.Ports = []corev1.ServicePort{
		{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
		{Name: "metrics", Port: 9100, TargetPort: intstr.FromString("metrics")},
		{Name: "setup", Port: 9200, TargetPort: intstr.FromString("setup")},
		{Name: "proxy-udp", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("proxy")},
	}
	p := pod("web-0", true, "10.244.0.1")
	p.Spec.InitContainers = []corev1.Container{
		{Name: "setup", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 9201}}},
		{Name: "once", RestartPolicy: &never, Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 9202}}},
		{Name: "sidecar", RestartPolicy: &always, Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 1111},    // the container's http comes first
			{Name: "metrics", ContainerPort: 9101}, // only here
			{Name: "proxy", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
		}},
	}
	g := flatten(SlicesFor(svc, []*corev1.Pod{p}))["10.244.0.1"]
	want := map[string]int32{"http/TCP": 8080, "metrics/TCP": 9101, "proxy-udp/UDP": 5353}
	if len(g.ports) != len(want) {
		t.Fatalf("ports %v, want %v", g.ports, want)
	}
	for k, v := range want {
		if g.ports[k] != v {
			t.Errorf("port %s = %d, want %d (all: %v)", k, g.ports[k], v, g.ports)
		}
	}
}
