package headless

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

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
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:addressType":{},"f:endpoints":{},"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:generateName":{},"f:labels":{".":{},"f:endpointslice.kubernetes.io/managed-by":{},"f:kubernetes.io/service-name":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"0d9e2c4a-5b6f-4a1e-9c3d-7e8f9a0b1c2d\"}":{}}},"f:ports":{}}`)}}},
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
