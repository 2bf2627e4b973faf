//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
)

var ctx = context.Background()

type svcPort struct {
	name  string
	port  int32
	proto corev1.Protocol
}

func headlessService(t *testing.T, ns, name string, selector map[string]string, publishNotReady bool, ports ...svcPort) *corev1.Service {
	t.Helper()
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 selector,
			PublishNotReadyAddresses: publishNotReady,
		},
	}
	for _, p := range ports {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: p.name, Port: p.port, Protocol: p.proto, TargetPort: intstr.FromInt32(p.port)})
	}
	out, err := tb.Client.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return out
}

func podTemplate(app string, ports ...svcPort) corev1.PodTemplateSpec {
	c := corev1.Container{Name: "main", Image: "registry.invalid/petset/fake:1"}
	for _, p := range ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: p.name, ContainerPort: p.port, Protocol: p.proto})
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
	}
}

func statefulSet(t *testing.T, ns, name, service string, replicas int32, parallel bool, ports ...svcPort) {
	t.Helper()
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: service,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:    podTemplate(name, ports...),
		},
	}
	if parallel {
		ss.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	}
	if _, err := tb.Client.AppsV1().StatefulSets(ns).Create(ctx, ss, metav1.CreateOptions{}); err != nil {
		t.Fatalf("statefulset %s: %v", name, err)
	}
}

func scale(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	// Retry on conflicts with the StatefulSet controller's status writes.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := tb.Client.AppsV1().StatefulSets(ns).GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = replicas
		_, err = tb.Client.AppsV1().StatefulSets(ns).UpdateScale(ctx, name, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("scale %s to %d: %v", name, replicas, err)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// petPods lists the pods of app in ns by name.
func petPods(t *testing.T, ns, app string) map[string]*corev1.Pod {
	t.Helper()
	list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

// describePods is a one-line state of pods for failure messages.
func describePods(pods map[string]*corev1.Pod) string {
	var s []string
	for _, name := range slices.Sorted(maps.Keys(pods)) {
		s = append(s, describePod(pods[name]))
	}
	return strings.Join(s, " ")
}

// describePod is a pod's name and state, such as web-0(Running,Ready).
func describePod(p *corev1.Pod) string {
	state := string(p.Status.Phase)
	if podReady(p) {
		state += ",Ready"
	}
	if p.DeletionTimestamp != nil {
		state += ",Terminating"
	}
	return p.Name + "(" + state + ")"
}

// waitPods waits until n pods matching app are running and ready with an
// IP, and returns them by name.
func waitPods(t *testing.T, ns, app string, n int) map[string]*corev1.Pod {
	t.Helper()
	var out map[string]*corev1.Pod
	sel := labels.SelectorFromSet(labels.Set{"app": app}).String()
	pollUntil(t, 120*time.Second, fmt.Sprintf("%d ready pods of %s", n, app), func() (bool, string) {
		list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err.Error()
		}
		out = map[string]*corev1.Pod{}
		all := map[string]*corev1.Pod{}
		for i := range list.Items {
			p := &list.Items[i]
			all[p.Name] = p
			if p.DeletionTimestamp == nil && p.Status.PodIP != "" && podReady(p) {
				out[p.Name] = p
			}
		}
		return len(out) == n && len(list.Items) == n, fmt.Sprintf("%d ready: %s", len(out), describePods(all))
	})
	return out
}

func barePod(t *testing.T, ns, name, app, hostname, subdomain string) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec:       podTemplate(app).Spec,
	}
	p.Spec.Hostname, p.Spec.Subdomain = hostname, subdomain
	if _, err := tb.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod %s: %v", name, err)
	}
}

func fqdn(parts ...string) string {
	s := ""
	for _, p := range parts {
		s += p + "."
	}
	return s + "svc.cluster.local."
}

func name(format string, args ...any) string { return fmt.Sprintf(format, args...) }
