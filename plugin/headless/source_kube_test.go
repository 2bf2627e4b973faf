package headless

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

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

func TestKubeSource(t *testing.T) {
	ready := true
	client := fake.NewClientset(
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		&discovery.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-abc",
				Labels:        map[string]string{discovery.LabelServiceName: "web", "extra": "x"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "test"}}},
			AddressType: discovery.AddressTypeIPv4,
			Endpoints:   []discovery.Endpoint{{Addresses: []string{"10.244.0.1"}, Hostname: ptrTo("web-0"), Conditions: discovery.EndpointConditions{Ready: &ready}}},
		},
		// In a namespace the plugin does not watch.
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "hidden", Name: "web"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		&discovery.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "hidden", Name: "web-abc", Labels: map[string]string{discovery.LabelServiceName: "web"}},
			AddressType: discovery.AddressTypeIPv4,
			Endpoints:   []discovery.Endpoint{{Addresses: []string{"10.244.9.1"}, Hostname: ptrTo("web-0")}},
		},
	)
	h := &Headless{}
	h.configure([]string{"cluster.local."}, 5, 5)
	src := &kubeSource{client: client, namespaces: []string{"ns"}}
	if err := src.start(h.publish); err != nil {
		t.Fatal(err)
	}
	defer src.stop()
	eventually(t, "the first sync", h.Ready)
	const name = "web-0.web.ns.svc.cluster.local."
	if got := answers(h, name); !equal(got, "10.244.0.1") {
		t.Fatalf("after sync: %v", got)
	}
	if got := answers(h, "web-0.web.hidden.svc.cluster.local."); got != nil {
		t.Fatalf("unwatched namespace served: %v", got)
	}

	// The informer caches hold slimmed objects only.
	for _, o := range src.watch["ns"].slices.GetStore().List() {
		if sl := o.(*discovery.EndpointSlice); sl.ManagedFields != nil || len(sl.Labels) > 1 {
			t.Fatalf("slice not slimmed: %+v", sl.ObjectMeta)
		}
	}

	ctx := context.Background()
	count := func() uint64 { return histogramCount(t, programming) }
	before := count()
	sl, _ := client.DiscoveryV1().EndpointSlices("ns").Get(ctx, "web-abc", metav1.GetOptions{})
	sl.Endpoints = append(sl.Endpoints, discovery.Endpoint{Addresses: []string{"10.244.0.2"}, Hostname: ptrTo("web-0")})
	sl.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: time.Now().Format(time.RFC3339Nano)}
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new endpoint", func() bool { return equal(answers(h, name), "10.244.0.1", "10.244.0.2") })
	eventually(t, "a programming latency sample", func() bool { return count() > before })

	// The service turns into a ClusterIP service: its names go.
	svc, _ := client.CoreV1().Services("ns").Get(ctx, "web", metav1.GetOptions{})
	svc.Spec.ClusterIP = "10.96.0.5"
	client.CoreV1().Services("ns").Update(ctx, svc, metav1.UpdateOptions{})
	eventually(t, "the service to stop being headless", func() bool { return answers(h, name) == nil })

	// Back to headless, then deleted.
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	client.CoreV1().Services("ns").Update(ctx, svc, metav1.UpdateOptions{})
	eventually(t, "the service to be headless again", func() bool { return answers(h, name) != nil })
	client.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{})
	eventually(t, "the deletion", func() bool { return answers(h, name) == nil })
	if n := h.snap.Load().table.len(); n != 0 {
		t.Fatalf("%d names left after the only service went", n)
	}
}

var _ cache.TransformFunc = (&kubeSource{}).slim

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// Informer updates that carry the object the informer had already (a
// relist after a lost watch or an API server restart delivers every object
// again) mark nothing dirty, so they rebuild nothing and feed no trigger
// time, however old, into the programming latency.
func TestKubeSourceIgnoresSameVersion(t *testing.T) {
	old := time.Now().Add(-3 * time.Hour).Format(time.RFC3339Nano)
	sl := slice("ns", "web", "web-abc", discovery.AddressTypeIPv4, nil, ep{addr: "10.244.0.1", hostname: "web-0"})
	sl.ResourceVersion = "7"
	sl.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: old}
	sv := svc("ns", "web", true)
	sv.ResourceVersion = "8"
	k := svcKey{Namespace: "ns", Name: "web"}

	tests := []struct {
		name    string
		update  func(s *kubeSource)
		dirty   bool
		trigger bool // a trigger time is pending
	}{
		{"slice relisted", func(s *kubeSource) { s.sliceUpdated(sl, sl.DeepCopy()) }, false, false},
		{"service relisted", func(s *kubeSource) { s.serviceUpdated(sv, sv.DeepCopy()) }, false, false},
		{"slice changed", func(s *kubeSource) {
			next := sl.DeepCopy()
			next.ResourceVersion = "9"
			s.sliceUpdated(sl, next)
		}, true, true},
		{"service changed", func(s *kubeSource) {
			next := sv.DeepCopy()
			next.ResourceVersion = "10"
			s.serviceUpdated(sv, next)
		}, true, false},
		// Without resource versions (a fake clientset) nothing is dropped.
		{"no versions", func(s *kubeSource) {
			a, b := sl.DeepCopy(), sl.DeepCopy()
			a.ResourceVersion, b.ResourceVersion = "", ""
			s.sliceUpdated(a, b)
		}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &kubeSource{dirty: map[svcKey]time.Time{}, wake: make(chan struct{}, 1), synced: true}
			tc.update(s)
			trigger, dirty := s.dirty[k]
			if dirty != tc.dirty || !trigger.IsZero() != tc.trigger {
				t.Fatalf("dirty %v (trigger %v), want dirty %v with a trigger %v", dirty, trigger, tc.dirty, tc.trigger)
			}
		})
	}
}

// fullSlice is an EndpointSlice of a headless StatefulSet's service as the
// EndpointSlice controller writes it: every field it sets, managed fields
// and all, pods on 10 nodes in 3 zones.
func fullSlice(svcName string, first, pods int) *discovery.EndpointSlice {
	trueV, falseV := true, false
	proto := corev1.ProtocolTCP
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: svcName + "-abcde", GenerateName: svcName + "-", Namespace: "bench",
			UID: types.UID("3f1c5b0e-9a7d-4e0b-8f3a-" + fmt.Sprintf("%012d", first)), ResourceVersion: "123456",
			Generation: 3, CreationTimestamp: metav1.Now(),
			Labels: map[string]string{
				discovery.LabelServiceName:       svcName,
				discovery.LabelManagedBy:         "endpointslice-controller.k8s.io",
				"app.kubernetes.io/name":         svcName,
				"service.kubernetes.io/headless": "",
				"app.kubernetes.io/part-of":      "bench",
			},
			Annotations: map[string]string{corev1.EndpointsLastChangeTriggerTime: time.Now().UTC().Format(time.RFC3339Nano)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svcName,
				UID: "0d9e2c4a-5b6f-4a1e-9c3d-7e8f9a0b1c2d", Controller: &trueV, BlockOwnerDeletion: &trueV}},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate,
				APIVersion: "discovery.k8s.io/v1", Time: ptrTo(metav1.Now()), FieldsType: "FieldsV1",
				FieldsV1: metav1.NewFieldsV1(`{"f:addressType":{},"f:endpoints":{},"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:generateName":{},"f:labels":{".":{},"f:endpointslice.kubernetes.io/managed-by":{},"f:kubernetes.io/service-name":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"0d9e2c4a-5b6f-4a1e-9c3d-7e8f9a0b1c2d\"}":{}}},"f:ports":{}}`)}},
		},
		AddressType: discovery.AddressTypeIPv4,
		Ports: []discovery.EndpointPort{
			{Name: ptrTo("http"), Protocol: &proto, Port: ptrTo(int32(80))},
			{Name: ptrTo("peer"), Protocol: &proto, Port: ptrTo(int32(7000))},
		},
	}
	for p := range pods {
		i := first + p
		name := fmt.Sprintf("%s-%d", svcName, p)
		node := fmt.Sprintf("node-%d", i%10)
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)},
			Conditions: discovery.EndpointConditions{Ready: &trueV, Serving: &trueV, Terminating: &falseV},
			Hostname:   &name,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "bench", Name: name, UID: types.UID(fmt.Sprintf("8c2e4f6a-1b3d-4c5e-9f7a-%012d", i))},
			NodeName:   &node,
			Zone:       ptrTo(fmt.Sprintf("zone-%d", i%3)),
		})
	}
	return s
}

// fullService is a headless Service as a StatefulSet's chart makes it.
func fullService(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench", UID: "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", ResourceVersion: "123",
			Labels: map[string]string{"app.kubernetes.io/name": name}, CreationTimestamp: metav1.Now()},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone}, Type: corev1.ServiceTypeClusterIP,
			Selector: map[string]string{"app.kubernetes.io/name": name}, PublishNotReadyAddresses: true,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "peer", Port: 7000, Protocol: corev1.ProtocolTCP}}},
	}
}

// BenchmarkCacheMemory reports the heap the informers' caches hold per
// endpoint, for 100,000 endpoints in 1,000 services of 100 pods: full
// objects are encoded as the API server sends them (protobuf), decoded,
// slimmed by the informers' transform and put into indexers like the
// informers' own, with the plugin's index; then everything but the
// indexers is dropped. With endpoint_pod_names the endpoints keep their
// pod's name too.
func BenchmarkCacheMemory(b *testing.B) {
	for _, podNames := range []bool{false, true} {
		b.Run(fmt.Sprintf("endpoint_pod_names=%v", podNames), func(b *testing.B) {
			const services, pods = 1000, 100
			src := &kubeSource{podNames: podNames}
			var perEndpoint float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				svcs := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
				sls := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{byService: sliceService})
				for s := range services {
					name := fmt.Sprintf("set%d", s)
					wire, err := fullService(name).Marshal()
					if err != nil {
						b.Fatal(err)
					}
					var svc corev1.Service
					if err := svc.Unmarshal(wire); err != nil {
						b.Fatal(err)
					}
					o, _ := src.slim(&svc)
					if err := svcs.Add(o); err != nil {
						b.Fatal(err)
					}
					wire, err = fullSlice(name, s*pods, pods).Marshal()
					if err != nil {
						b.Fatal(err)
					}
					var sl discovery.EndpointSlice
					if err := sl.Unmarshal(wire); err != nil {
						b.Fatal(err)
					}
					o, _ = src.slim(&sl)
					if err := sls.Add(o); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if n := len(sls.ListKeys()); n != services {
					b.Fatalf("%d slices cached, want %d", n, services)
				}
				runtime.KeepAlive(svcs)
				runtime.KeepAlive(sls)
				perEndpoint = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (services * pods)
			}
			b.ReportMetric(perEndpoint, "B/endpoint")
		})
	}
}
