package cluster

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// NodeName is the one node kwok manages.
const NodeName = "kwok-node-0"

// KwokTaint is on kwok's node when a real node runs beside it.
var KwokTaint = corev1.Taint{Key: "kwok.x-k8s.io/node", Value: "fake", Effect: corev1.TaintEffectNoSchedule}

// addNode creates the kwok node, gives it the Ready condition kwok's stage
// looks for, waits until kwok makes it Ready, and removes the not-ready
// taint that nobody else would (the node lifecycle controller is off, or
// ignores kwok's node).
func (c *Cluster) addNode(ctx context.Context) error {
	nodes := c.Client.CoreV1().Nodes()
	big := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("1000"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
		corev1.ResourcePods:   resource.MustParse("10000"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			// The labels a kubelet puts on its node (the CoreDNS
			// Deployment's nodeSelector wants the OS one).
			Labels: map[string]string{"type": "kwok", corev1.LabelHostname: NodeName, corev1.LabelOSStable: "linux", corev1.LabelArchStable: runtime.GOARCH},
		},
		Status: corev1.NodeStatus{Capacity: big, Allocatable: big},
	}
	if err := waitFor(ctx, 60*time.Second, func() (bool, error) {
		_, err := nodes.Create(ctx, node, metav1.CreateOptions{})
		return err == nil || apierrors.IsAlreadyExists(err), nil
	}); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := waitFor(ctx, 30*time.Second, func() (bool, error) {
		n, err := nodes.Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		n.Status.Capacity, n.Status.Allocatable = big, big
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "Starting", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
		_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	// Beside a real node, kwok's takes only pods that tolerate KwokTaint.
	var want []corev1.Taint
	if c.opts.RealNode {
		want = []corev1.Taint{KwokTaint}
	}
	return waitFor(ctx, 60*time.Second, func() (bool, error) {
		n, err := nodes.Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil || !nodeReady(n) {
			return false, nil
		}
		if len(n.Spec.Taints) == len(want) && (len(want) == 0 || n.Spec.Taints[0].MatchTaint(&want[0])) {
			return true, nil
		}
		n.Spec.Taints = want
		nodes.Update(ctx, n, metav1.UpdateOptions{}) // on failure, the next poll tries again
		return false, nil                            // check again that the taints stay so
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// addVolumes creates n hostPath PersistentVolumes of 1Gi without a storage
// class, so claims without one bind through the real PV controller. No
// kubelet runs, so the paths are never touched.
func (c *Cluster) addVolumes(ctx context.Context, n int) error {
	for i := range n {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pv-%03d", i), Labels: map[string]string{"petset.dev/pool": "testbed"}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: fmt.Sprintf("/nonexistent/petset-testbed/pv-%03d", i)},
				},
			},
		}
		if _, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("persistent volume %s: %w", pv.Name, err)
		}
	}
	return nil
}

// SetPodReady sets a running pod's Ready and ContainersReady conditions, as
// a readiness probe would; kwok leaves running pods alone after that.
func (c *Cluster) SetPodReady(ctx context.Context, ns, name string, ready bool) error {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return waitFor(ctx, 30*time.Second, func() (bool, error) {
		pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for i, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodReady || cond.Type == corev1.ContainersReady {
				pod.Status.Conditions[i].Status = status
				pod.Status.Conditions[i].LastTransitionTime = metav1.Now()
			}
		}
		for i := range pod.Status.ContainerStatuses {
			pod.Status.ContainerStatuses[i].Ready = ready
		}
		_, err = c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
}

// Namespace creates a namespace for one test and deletes it when the test
// ends, so cases never see each other's objects.
func (c *Cluster) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("namespace: %v", err)
	}
	t.Cleanup(func() {
		c.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return cond() })
}
