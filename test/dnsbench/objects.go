package dnsbench

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"petset.dev/petset/test/cluster"
)

// CreateServices makes a namespace with n headless services of pods pods
// each, as a StatefulSet would name them (pod s3-7 has hostname s3-7 and
// subdomain s3), bound straight to the kwok node (no scheduling), with
// creates spread over workers in parallel. It returns the services; their
// IPs come from WaitServices.
func CreateServices(ctx context.Context, client kubernetes.Interface, ns string, n, pods, workers int) ([]Service, error) {
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	svcs := make([]Service, n)
	type job struct{ svc, pod int }
	jobs := make(chan job)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				var err error
				if j.pod < 0 {
					err = createService(ctx, client, ns, svcs[j.svc].Name)
				} else {
					err = createPod(ctx, client, ns, svcs[j.svc].Name, svcs[j.svc].Hosts[j.pod])
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range svcs {
		name := fmt.Sprintf("s%d", i)
		svcs[i] = Service{Namespace: ns, Name: name, PortName: "http"}
		for k := range pods {
			svcs[i].Hosts = append(svcs[i].Hosts, fmt.Sprintf("%s-%d", name, k))
		}
	}
	send := func(j job) bool {
		select {
		case jobs <- j:
			return true
		case err := <-errs:
			errs <- err
			return false
		case <-ctx.Done():
			return false
		}
	}
	ok := true
	for i := range svcs {
		if ok = send(job{i, -1}); !ok {
			break
		}
	}
	// Pods round-robin over services, so every service fills at once.
	for k := 0; ok && k < pods; k++ {
		for i := range svcs {
			if ok = send(job{i, k}); !ok {
				break
			}
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return svcs, ctx.Err()
}

func createService(ctx context.Context, client kubernetes.Interface, ns, name string) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": name},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}},
		},
	}
	_, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service %s/%s: %w", ns, name, err)
	}
	return nil
}

func createPod(ctx context.Context, client kubernetes.Interface, ns, svc, name string) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": svc}},
		Spec: corev1.PodSpec{
			Hostname:  name,
			Subdomain: svc,
			NodeName:  cluster.NodeName,
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.invalid/bench:never-pulled",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
			}},
		},
	}
	for attempt := 0; ; attempt++ {
		_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		if attempt >= 5 || ctx.Err() != nil {
			return fmt.Errorf("pod %s/%s: %w", ns, name, err)
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond) // a busy API server (429, timeouts)
	}
}

// WaitServices polls the EndpointSlices of the services' namespace until
// every pod of every service is a ready endpoint with its hostname, and
// fills in the services' IPs from them.
func WaitServices(ctx context.Context, client kubernetes.Interface, svcs []Service, timeout time.Duration, progress func(ready, want int)) error {
	if len(svcs) == 0 {
		return nil
	}
	ns := svcs[0].Namespace
	want := 0
	for _, s := range svcs {
		want += len(s.Hosts)
	}
	deadline := time.Now().Add(timeout)
	last := time.Now()
	for {
		ips, err := readyEndpoints(ctx, client, ns)
		if err == nil {
			ready := 0
			for _, s := range svcs {
				for _, h := range s.Hosts {
					if ips[s.Name][h] != "" {
						ready++
					}
				}
			}
			if progress != nil && time.Since(last) > 5*time.Second {
				progress(ready, want)
				last = time.Now()
			}
			if ready == want {
				for i := range svcs {
					svcs[i].IPs = make([]string, len(svcs[i].Hosts))
					for k, h := range svcs[i].Hosts {
						svcs[i].IPs[k] = ips[svcs[i].Name][h]
					}
				}
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("after %s, %d of %d endpoints in %s are ready", timeout, ready, want, ns)
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("endpoint slices in %s: %w", ns, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// readyEndpoints maps service -> hostname -> address of the ready
// endpoints in a namespace.
func readyEndpoints(ctx context.Context, client kubernetes.Interface, ns string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, sl := range list.Items {
			svc := sl.Labels[discoveryv1.LabelServiceName]
			if out[svc] == nil {
				out[svc] = map[string]string{}
			}
			for _, ep := range sl.Endpoints {
				if ep.Hostname == nil || len(ep.Addresses) == 0 || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
					continue
				}
				out[svc][*ep.Hostname] = ep.Addresses[0]
			}
		}
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}
