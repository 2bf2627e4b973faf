//go:build e2e

package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// poll waits until cond holds, failing the test after timeout with what
// was awaited and what cond last said.
func poll(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	last := ""
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, seen := cond()
		last = seen
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s; last seen: %s", what, timeout, last)
	}
}

// namespace makes a namespace for one test, deleted when it ends, and
// waits for its default service account (ServiceAccount admission is on).
func namespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := tb.Namespace(t, prefix)
	poll(t, 30*time.Second, "the default service account of "+ns, func() (bool, string) {
		_, err := tb.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	return ns
}

// pets makes a headless service and a StatefulSet of n pets running the
// pause image, and waits until they run.
func pets(t testing.TB, ns, name string, n int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone, Selector: labels,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80)}},
		},
	}
	if _, err := tb.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &n, ServiceName: name, Selector: &metav1.LabelSelector{MatchLabels: labels},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "pause", Image: tb.TestImage("pause"),
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
				}}},
			},
		},
	}
	if _, err := tb.Client.AppsV1().StatefulSets(ns).Create(ctx, ss, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 2*time.Minute, fmt.Sprintf("%d pets of %s Ready", n, name), func() (bool, string) {
		s, err := tb.Client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return s.Status.ReadyReplicas == n, fmt.Sprintf("%d ready", s.Status.ReadyReplicas)
	})
}

// resolverPod runs the resolver image (test/images/resolver) with args and
// returns its address, once it is Ready.
func resolverPod(t testing.TB, ns, name string, args ...string) string {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "resolver", Image: tb.TestImage("resolver"), Args: args,
			Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/loop", Port: intstr.FromString("http")}}, PeriodSeconds: 1},
		}}},
	}
	if _, err := tb.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ip string
	poll(t, 2*time.Minute, name+" Ready", func() (bool, string) {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ip = p.Status.PodIP
		return podReady(p), string(p.Status.Phase)
	})
	return ip
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Result and Loop are the resolver's answers (test/images/resolver).
type Result struct {
	Records  []string `json:"records"`
	Error    string   `json:"error"`
	NotFound bool     `json:"notFound"`
}

type Loop struct {
	OK       map[string]int `json:"ok"`
	Failures []struct {
		Name  string    `json:"name"`
		At    time.Time `json:"at"`
		Error string    `json:"error"`
	} `json:"failures"`
}

// resolve asks the resolver pod at ip to look name up through its own
// resolv.conf.
func resolve(t testing.TB, ip, typ, name string) Result {
	t.Helper()
	var r Result
	getJSON(t, "http://"+ip+":8080/resolve?type="+typ+"&name="+url.QueryEscape(name), &r)
	return r
}

func loopStats(t testing.TB, ip string) Loop {
	t.Helper()
	var l Loop
	getJSON(t, "http://"+ip+":8080/loop", &l)
	return l
}

func getJSON(t testing.TB, u string, v any) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v: %s", u, err, b)
	}
}
