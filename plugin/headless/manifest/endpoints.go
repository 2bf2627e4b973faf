package manifest

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Set is the content of manifest files indexed by service: what the
// Kubernetes API would hold for each Service.
type Set struct {
	Services map[types.NamespacedName]*corev1.Service
	// Slices are each service's EndpointSlices: the ones the files hold,
	// or, for a service with a selector and none in the files, the ones
	// Kubernetes' EndpointSlice controller would make from the Pods.
	Slices map[types.NamespacedName][]*discovery.EndpointSlice
}

// Index builds the Set of o. A later object of the same name replaces an
// earlier one.
func (o *Objects) Index() *Set {
	s := &Set{
		Services: map[types.NamespacedName]*corev1.Service{},
		Slices:   map[types.NamespacedName][]*discovery.EndpointSlice{},
	}
	for _, svc := range o.Services {
		s.Services[types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}] = svc
	}
	bySlice := map[types.NamespacedName]*discovery.EndpointSlice{}
	var order []types.NamespacedName
	for _, sl := range o.Slices {
		if sl.Labels[discovery.LabelServiceName] == "" {
			continue // like Kubernetes, a slice without the label belongs to no service
		}
		id := types.NamespacedName{Namespace: sl.Namespace, Name: sl.Name}
		if _, ok := bySlice[id]; !ok {
			order = append(order, id)
		}
		bySlice[id] = sl
	}
	for _, id := range order {
		sl := bySlice[id]
		k := types.NamespacedName{Namespace: sl.Namespace, Name: sl.Labels[discovery.LabelServiceName]}
		s.Slices[k] = append(s.Slices[k], sl)
	}
	for k, svc := range s.Services {
		if _, ok := s.Slices[k]; ok || len(svc.Spec.Selector) == 0 {
			continue
		}
		if derived := SlicesFor(svc, o.Pods); len(derived) > 0 {
			s.Slices[k] = derived
		}
	}
	return s
}

// SlicesFor derives the EndpointSlices of svc from pods the way the
// EndpointSlice controller does: pods in the service's namespace that its
// selector matches and that have an IP and have not finished; one slice per
// address family and port set; an endpoint's hostname when the pod's
// subdomain is the service's name; readiness from the pod's Ready
// condition, or always ready with publishNotReadyAddresses.
func SlicesFor(svc *corev1.Service, pods []*corev1.Pod) []*discovery.EndpointSlice {
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	byShape := map[string]*discovery.EndpointSlice{}
	var order []string
	for _, pod := range pods {
		if pod.Namespace != svc.Namespace || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		ports := podPorts(svc, pod)
		ep := endpoint(svc, pod)
		for _, ip := range podIPs(pod) {
			family := discovery.AddressTypeIPv4
			if ip.Is6() {
				family = discovery.AddressTypeIPv6
			}
			if !wantFamily(svc, family) {
				continue
			}
			shape := string(family) + "/" + portsKey(ports)
			sl := byShape[shape]
			if sl == nil {
				sl = &discovery.EndpointSlice{
					ObjectMeta: metav1.ObjectMeta{
						Namespace: svc.Namespace,
						Name:      svc.Name + "-" + strings.ToLower(string(family)) + "-" + strconv.Itoa(len(order)),
						Labels:    map[string]string{discovery.LabelServiceName: svc.Name},
					},
					AddressType: family,
					Ports:       ports,
				}
				byShape[shape] = sl
				order = append(order, shape)
			}
			e := ep
			e.Addresses = []string{ip.String()}
			sl.Endpoints = append(sl.Endpoints, e)
		}
	}
	out := make([]*discovery.EndpointSlice, 0, len(order))
	for _, shape := range order {
		out = append(out, byShape[shape])
	}
	return out
}

// endpoint is pod's endpoint, without its address.
func endpoint(svc *corev1.Service, pod *corev1.Pod) discovery.Endpoint {
	ready := podReady(pod) && pod.DeletionTimestamp == nil
	terminating := pod.DeletionTimestamp != nil
	published := ready || svc.Spec.PublishNotReadyAddresses
	ep := discovery.Endpoint{
		Conditions: discovery.EndpointConditions{
			Ready:       &published,
			Serving:     &ready,
			Terminating: &terminating,
		},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	if pod.Spec.NodeName != "" {
		node := pod.Spec.NodeName
		ep.NodeName = &node
	}
	if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name {
		h := pod.Spec.Hostname
		ep.Hostname = &h
	}
	return ep
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podIPs returns the pod's valid IPs, status.podIPs first, status.podIP when
// that list is empty.
func podIPs(pod *corev1.Pod) []netip.Addr {
	var raw []string
	for _, p := range pod.Status.PodIPs {
		raw = append(raw, p.IP)
	}
	if len(raw) == 0 && pod.Status.PodIP != "" {
		raw = []string{pod.Status.PodIP}
	}
	var out []netip.Addr
	for _, r := range raw {
		if ip, err := netip.ParseAddr(r); err == nil && ip.Zone() == "" {
			out = appendUniqueAddr(out, ip.Unmap())
		}
	}
	return out
}

func appendUniqueAddr(s []netip.Addr, a netip.Addr) []netip.Addr {
	if slices.Contains(s, a) {
		return s
	}
	return append(s, a)
}

// wantFamily reports whether svc serves addresses of family: those of its
// spec.ipFamilies, or any when it names none.
func wantFamily(svc *corev1.Service, family discovery.AddressType) bool {
	if len(svc.Spec.IPFamilies) == 0 {
		return true
	}
	for _, f := range svc.Spec.IPFamilies {
		if (f == corev1.IPv4Protocol && family == discovery.AddressTypeIPv4) ||
			(f == corev1.IPv6Protocol && family == discovery.AddressTypeIPv6) {
			return true
		}
	}
	return false
}

// podPorts resolves the service's ports against the pod: a numeric
// targetPort stands as is, a named one is looked up in the ports of the
// pod's containers and then of its sidecars (init containers with
// restartPolicy Always), and left out when the pod has no such port; none
// means the service port.
func podPorts(svc *corev1.Service, pod *corev1.Pod) []discovery.EndpointPort {
	var out []discovery.EndpointPort
	for _, sp := range svc.Spec.Ports {
		proto := sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		num, ok := targetPort(sp, proto, pod)
		if !ok {
			continue
		}
		name := sp.Name
		out = append(out, discovery.EndpointPort{Name: &name, Protocol: &proto, Port: &num, AppProtocol: sp.AppProtocol})
	}
	return out
}

func targetPort(sp corev1.ServicePort, proto corev1.Protocol, pod *corev1.Pod) (int32, bool) {
	switch {
	case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
		// The EndpointSlice controller (FindPort) looks in the containers
		// first, then in the sidecars: init containers with restartPolicy
		// Always.
		if n, ok := namedPort(pod.Spec.Containers, sp.TargetPort.StrVal, proto); ok {
			return n, true
		}
		var sidecars []corev1.Container
		for _, c := range pod.Spec.InitContainers {
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				sidecars = append(sidecars, c)
			}
		}
		return namedPort(sidecars, sp.TargetPort.StrVal, proto)
	case sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0:
		return sp.TargetPort.IntVal, true
	}
	return sp.Port, true
}

// namedPort finds the container port called name with protocol proto
// (unset means TCP) in cs.
func namedPort(cs []corev1.Container, name string, proto corev1.Protocol) (int32, bool) {
	for _, c := range cs {
		for _, cp := range c.Ports {
			cpProto := cp.Protocol
			if cpProto == "" {
				cpProto = corev1.ProtocolTCP
			}
			if cp.Name == name && cpProto == proto {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

func portsKey(ps []discovery.EndpointPort) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(*p.Name)
		b.WriteByte('/')
		b.WriteString(string(*p.Protocol))
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(*p.Port)))
		b.WriteByte(',')
	}
	return b.String()
}
