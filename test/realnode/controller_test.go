//go:build e2e

package realnode

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// installController applies deploy/controller (images from the testbed)
// and waits until its two replicas are Ready and one holds the lease.
func installController(t testing.TB) {
	t.Helper()
	kubectl(t, "apply", "-k", overlays+"/controller")
	poll(t, 3*time.Minute, "the ordinal-controller Deployment rolled out", func() (bool, string) {
		d, err := tb.Client.AppsV1().Deployments("petset-system").Get(ctx, "ordinal-controller", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return rolledOut(d), fmt.Sprintf("%+v", d.Status)
	})
	poll(t, time.Minute, "a leader", func() (bool, string) {
		l, err := lease()
		return err == nil && l.Spec.HolderIdentity != nil, fmt.Sprint(err)
	})
}

func lease() (*coordinationv1.Lease, error) {
	return tb.Client.CoordinationV1().Leases("petset-system").Get(ctx, "ordinal-controller.petset.dev", metav1.GetOptions{})
}

// petSetYAML is a PetSet of the pause image with one claim per pet, and
// its headless service.
func petSetYAML(ns, name string, replicas int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  clusterIP: None
  selector: {app: %[2]s}
  ports: [{name: http, port: 80}]
---
apiVersion: petset.dev/v1alpha1
kind: PetSet
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: %[3]d
  serviceName: %[2]s
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      containers:
      - {name: pause, image: %[4]s}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
`, ns, name, replicas, tb.TestImage("pause"))
}

// waitPets waits until the PetSet's status says n pets are Ready.
func waitPets(t testing.TB, ns, name string, n int) {
	t.Helper()
	poll(t, 3*time.Minute, fmt.Sprintf("%d pets of %s Ready", n, name), func() (bool, string) {
		out, err := kubectlErr("-n", ns, "get", "petset", name, "-o", "jsonpath={.status.readyReplicas}/{.status.replicas}")
		return err == nil && out == fmt.Sprintf("%d/%d", n, n), out + fmt.Sprint(err)
	})
}

// deploy/controller as shipped, in pods: it reaches the API server
// through the kubernetes Service with its service account, one of its two
// replicas leads, its metrics are served over HTTP, and when the leader's
// process is killed (no lease given up) another takes the lease and pets
// keep being managed.
func TestControllerInPod(t *testing.T) {
	installController(t)
	ns := namespace(t, "controller")
	file := filepath.Join(t.TempDir(), "petset.yaml")
	if err := os.WriteFile(file, []byte(petSetYAML(ns, "web", 2)), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "-f", file)
	waitPets(t, ns, "web", 2)

	l, err := lease()
	if err != nil {
		t.Fatal(err)
	}
	holder := *l.Spec.HolderIdentity
	leader, _, _ := strings.Cut(holder, "_") // <pod name>_<uuid>
	pod, err := tb.Client.CoreV1().Pods("petset-system").Get(ctx, leader, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the lease holder %s is no controller pod: %v", holder, err)
	}
	metric := fmt.Sprintf(`petset_status_ready_replicas{namespace=%q,petset="web"}`, ns)
	poll(t, time.Minute, metric+" 2 from the leader's /metrics", func() (bool, string) {
		v, err := scrape(pod.Status.PodIP, metric)
		return err == nil && v == 2, fmt.Sprint(v, err)
	})

	// A crash: the leader's process, killed on the node, gives nothing up.
	proc := podProcess(t, string(pod.UID), "ordinal-control") // comm is cut at 15 bytes
	pid, _ := strconv.Atoi(filepath.Base(proc))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	poll(t, time.Minute, "another holder of the lease than "+holder, func() (bool, string) {
		l, err := lease()
		if err != nil || l.Spec.HolderIdentity == nil {
			return false, fmt.Sprint(err)
		}
		return *l.Spec.HolderIdentity != holder, *l.Spec.HolderIdentity
	})
	l, _ = lease()
	t.Logf("lease taken over by %s %s after the leader was killed", *l.Spec.HolderIdentity, time.Since(killed).Round(100*time.Millisecond))
	kubectl(t, "-n", ns, "scale", "petset/web", "--replicas=3")
	waitPets(t, ns, "web", 3)
}

// scrape reads one sample, by its full name with labels, from the
// metrics endpoint of a controller pod.
func scrape(ip, sample string) (float64, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ip + ":8080/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s", sample)
}
