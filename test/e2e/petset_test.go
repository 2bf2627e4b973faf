//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRD installs the PetSet CRD from deploy/ and returns a client
// that knows PetSets once the API serves them.
func installCRD(t *testing.T) client.Client {
	t.Helper()
	b, err := os.ReadFile("../../deploy/crd/petset.dev_petsets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(tb.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(crdGVR).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("CRD: %v", err)
	}
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	v1alpha1.AddToScheme(scheme)
	c, err := client.NewWithWatch(tb.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// The CRD is served once a list works.
	pollUntil(t, 30*time.Second, "PetSet API served", func() (bool, string) {
		err := c.List(ctx, &v1alpha1.PetSetList{})
		return err == nil, fmt.Sprint(err)
	})

	return c
}

// startController installs the PetSet CRD and runs cmd/ordinal-controller
// against the testbed; it returns a client that knows PetSets and a
// function that kills the controller with SIGKILL.
func startController(t *testing.T) (client.Client, func()) {
	t.Helper()
	c := installCRD(t)
	return c, runController(t)
}

// suiteBinary is a command of the module, built once for the whole suite
// into the testbed's directory.
type suiteBinary struct {
	name, pkg string
	once      sync.Once
	err       error
}

// path builds the binary the first time it is asked for and returns its
// path; every caller after a failed build sees the error too.
func (b *suiteBinary) path(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(tb.Dir, b.name)
	b.once.Do(func() {
		build := exec.Command("go", "build", "-o", bin, b.pkg)
		build.Stderr = os.Stderr
		b.err = build.Run()
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return bin
}

var controllerBin = &suiteBinary{name: "ordinal-controller", pkg: "petset.dev/petset/cmd/ordinal-controller"}

// controllerBinary builds cmd/ordinal-controller into the testbed's
// directory, once for the whole suite, and returns its path.
func controllerBinary(t *testing.T) string { return controllerBin.path(t) }

// runController starts cmd/ordinal-controller (built once) with leader
// election on, and returns a function that kills it with SIGKILL. When
// the test ends it is stopped as a Deployment would stop it (SIGTERM),
// so it gives up its lease and the next test's controller need not wait
// for the lease to expire.
func runController(t *testing.T) func() {
	kill, _ := controllerProcess(t)
	return kill
}

// controllerProcess starts cmd/ordinal-controller and returns functions
// that kill it (SIGKILL) and that stop it (SIGTERM, then SIGKILL after
// 30 s); each waits for it to exit, and only the first call acts.
func controllerProcess(t *testing.T) (kill, term func()) {
	t.Helper()
	bin := controllerBinary(t)
	logf, err := os.OpenFile(filepath.Join(tb.Dir, "logs", "ordinal-controller.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--kubeconfig="+tb.Kubeconfig, "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--leader-elect=true", "--leader-election-namespace=default", "-v=2")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	var once sync.Once
	kill = func() {
		once.Do(func() { cmd.Process.Signal(syscall.SIGKILL); <-exited })
	}
	term = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				t.Errorf("ordinal-controller still running 30s after SIGTERM; killed")
				cmd.Process.Signal(syscall.SIGKILL)
				<-exited
			}
		})
	}
	t.Cleanup(term)
	return kill, term
}

func newPetSet(ns, name, service string, replicas int32) *v1alpha1.PetSet {
	ps := &v1alpha1.PetSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.PetSetSpec{
			Replicas:    &replicas,
			ServiceName: service,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:    podTemplate(name, svcPort{"peer", 2380, corev1.ProtocolTCP}),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
	return ps
}

// podEvents watches pods of app in ns and reports ADDED and DELETED names
// in the order they happened.
func podEvents(t *testing.T, ns, app string) (added, deleted func() []string, stop func()) {
	t.Helper()
	w, err := tb.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		a, d []string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			mu.Lock()
			switch ev.Type {
			case watch.Added:
				a = append(a, p.Name)
			case watch.Deleted:
				d = append(d, p.Name)
			}
			mu.Unlock()
		}
	}()
	snapshot := func(s *[]string) func() []string {
		return func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(*s) }
	}
	return snapshot(&a), snapshot(&d), func() { w.Stop(); <-done }
}

func TestPetSet(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "petset")
	headlessService(t, ns, "db", map[string]string{"app": "db"}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	added, deleted, stopWatch := podEvents(t, ns, "db")
	defer stopWatch()

	ps := newPetSet(ns, "db", "db", 3)
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(t, ns, "db", 3)
	if got := added(); !slices.Equal(got, []string{"db-0", "db-1", "db-2"}) {
		t.Errorf("creation order %v, want db-0, db-1, db-2", got)
	}
	volumes := map[string]string{}
	for i := range 3 {
		pod := pods[controller.PodName("db", i)]
		if pod.Spec.Hostname != pod.Name || pod.Spec.Subdomain != "db" {
			t.Errorf("%s: hostname %q subdomain %q", pod.Name, pod.Spec.Hostname, pod.Spec.Subdomain)
		}
		if pod.Labels[controller.LabelPodName] != pod.Name || pod.Labels[controller.LabelPodIndex] != fmt.Sprint(i) {
			t.Errorf("%s: labels %v", pod.Name, pod.Labels)
		}
		if ref := metav1.GetControllerOf(pod); ref == nil || ref.Kind != "PetSet" || ref.Name != "db" {
			t.Errorf("%s: controller %v", pod.Name, ref)
		}
		claim := controller.ClaimName("data", "db", i)
		volumes[claim] = boundVolume(t, ns, claim)
		// headless serves the pet by its stable name.
		host := fqdn(pod.Name, "db", ns)
		eventually(t, 30*time.Second, host, dns.TypeA, func(m *dns.Msg) bool {
			return len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == pod.Status.PodIP
		})
	}
	waitStatus(t, c, ns, "db", func(st v1alpha1.PetSetStatus) bool {
		return st.ReadyReplicas == 3 && len(st.Members) == 3 && st.Members[2].Claims[0] == "data-db-2"
	})

	// Scale down through the scale subresource: highest ordinal first,
	// claims kept.
	scalePetSet(t, c, ns, "db", 1)
	waitPods(t, ns, "db", 1)
	if got := deleted(); !slices.Equal(got, []string{"db-2", "db-1"}) {
		t.Errorf("deletion order %v, want db-2, db-1", got)
	}
	// Scale up again: the same claims, so the same volumes.
	scalePetSet(t, c, ns, "db", 3)
	waitPods(t, ns, "db", 3)
	for claim, pv := range volumes {
		if got := boundVolume(t, ns, claim); got != pv {
			t.Errorf("%s is bound to %s, was %s", claim, got, pv)
		}
	}

	// A deleted pet comes back with its name and its claim.
	old := waitPods(t, ns, "db", 3)["db-1"]
	if err := tb.Client.CoreV1().Pods(ns).Delete(ctx, "db-1", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	var back *corev1.Pod
	pollUntil(t, 60*time.Second, "db-1 back", func() (bool, string) {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, "db-1", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		back = p
		return p.UID != old.UID && podReady(p), describePod(p) + " uid " + string(p.UID)
	})
	if v := back.Spec.Volumes; len(v) == 0 || v[0].PersistentVolumeClaim == nil || v[0].PersistentVolumeClaim.ClaimName != "data-db-1" {
		t.Errorf("recreated db-1 volumes %+v", v)
	}

	// Deleting the set lets the garbage collector delete its pods, as
	// for a StatefulSet (no ordered shutdown: scale to zero first for
	// one); the claims stay (whenDeleted defaults to Retain).
	before := len(deleted())
	if err := c.Delete(ctx, ps); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "PetSet and its pods deleted", func() (bool, string) {
		err := c.Get(ctx, client.ObjectKeyFromObject(ps), &v1alpha1.PetSet{})
		return apierrors.IsNotFound(err) && len(deleted()) == before+3, fmt.Sprintf("%v, deleted %v", err, deleted())
	})
	// db-1's recreation shows as one more deletion before these.
	if got := slices.Sorted(slices.Values(deleted()[before:])); !slices.Equal(got, []string{"db-0", "db-1", "db-2"}) {
		t.Errorf("deleted %v, want db-0, db-1, db-2", got)
	}
	for claim, pv := range volumes {
		if got := boundVolume(t, ns, claim); got != pv {
			t.Errorf("after deleting the set, %s is bound to %q, was %s", claim, got, pv)
		}
	}
}

func boundVolume(t *testing.T, ns, claim string) string {
	t.Helper()
	var volume string
	pollUntil(t, 60*time.Second, "claim "+claim+" bound", func() (bool, string) {
		pvc, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		volume = pvc.Spec.VolumeName
		return pvc.Status.Phase == corev1.ClaimBound && volume != "", fmt.Sprintf("%s, volume %q", pvc.Status.Phase, volume)
	})
	return volume
}

func scalePetSet(t *testing.T, c client.Client, ns, name string, replicas int32) {
	t.Helper()
	ps := &v1alpha1.PetSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	// The scale subresource carries the set's resourceVersion, which the
	// controller's status writes move on: retry on conflicts.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale := &autoscalingv1.Scale{}
		if err := c.SubResource("scale").Get(ctx, ps, scale); err != nil {
			return err
		}
		scale.Spec.Replicas = replicas
		return c.SubResource("scale").Update(ctx, ps, client.WithSubResourceBody(scale))
	})
	if err != nil {
		t.Fatalf("scale %s to %d: %v", name, replicas, err)
	}
}

// waitStatus waits until cond accepts the status of PetSet name.
func waitStatus(t *testing.T, c client.Client, ns, name string, cond func(v1alpha1.PetSetStatus) bool) {
	t.Helper()
	pollUntil(t, 60*time.Second, "the wanted status of "+name, func() (bool, string) {
		var ps v1alpha1.PetSet
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ps); err != nil {
			return false, err.Error()
		}
		return cond(ps.Status), fmt.Sprintf("%+v", ps.Status)
	})
}

// updatePetSet changes a PetSet, retrying on conflicts with the
// controller's own writes, and returns the result.
func updatePetSet(t *testing.T, c client.Client, key client.ObjectKey, change func(*v1alpha1.PetSet)) *v1alpha1.PetSet {
	t.Helper()
	cur := &v1alpha1.PetSet{}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, key, cur); err != nil {
			return err
		}
		change(cur)
		return c.Update(ctx, cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	return cur
}
