//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
	"petset.dev/petset/test/cluster"
)

// controllerProc is a running ordinal-controller with its metrics served
// on a loopback port, so a test can read its memory.
type controllerProc struct {
	cmd     *exec.Cmd
	metrics string // http://127.0.0.1:port/metrics
	stop    func()
}

// startMeasuredController starts the controller binary (cmd/ordinal-controller
// as the suite builds it, or the one PETSET_CONTROLLER_BIN names, to
// measure another build by hand) without leader election, with metrics on
// a free loopback port.
func startMeasuredController(t *testing.T) *controllerProc {
	t.Helper()
	bin := os.Getenv("PETSET_CONTROLLER_BIN")
	if bin == "" {
		bin = controllerBinary(t)
	}
	port, err := freeTCP()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(tb.Dir, "logs", "ordinal-controller.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--kubeconfig="+tb.Kubeconfig, "--metrics-bind-address=127.0.0.1:"+port,
		"--health-probe-bind-address=0", "--leader-elect=false", "-v=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	p := &controllerProc{cmd: cmd, metrics: "http://127.0.0.1:" + port + "/metrics"}
	p.stop = func() { once.Do(func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait(); logf.Close() }) }
	t.Cleanup(p.stop)
	return p
}

// rssBytes is the process's resident set size (VmRSS in /proc/pid/status).
func (p *controllerProc) rssBytes(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// metric reads one sample of the controller's metrics: the first line
// whose name and labels start with prefix (e.g. `petset_cache_objects{resource="pods"}`).
// ok is false when there is none (or the endpoint does not answer yet).
func (p *controllerProc) metric(prefix string) (float64, bool) {
	resp, err := http.Get(p.metrics)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// settledMemory waits until the controller has reconciled at least once
// and its workqueue is empty, then samples RSS and heap in use every
// 250ms for 3s and returns the largest of each: a window that catches a
// garbage collector cycle's high point rather than one lucky sample.
func (p *controllerProc) settledMemory(t *testing.T) (rss, heap int64) {
	t.Helper()
	pollUntil(t, 60*time.Second, "controller reconciled and idle", func() (bool, string) {
		n, ok := p.metric(`controller_runtime_reconcile_total{controller="petset",result="success"}`)
		depth, ok2 := p.metric(`workqueue_depth{controller="petset"`)
		return ok && ok2 && n >= 1 && depth == 0, fmt.Sprintf("reconciles %v, queue depth %v", n, depth)
	})
	holdsFor(t, 250*time.Millisecond, 3*time.Second, "memory sampled", func() (bool, string) {
		rss = max(rss, p.rssBytes(t))
		if h, ok := p.metric("go_memstats_heap_inuse_bytes"); ok {
			heap = max(heap, int64(h))
		}
		return true, ""
	})
	return rss, heap
}

// unrelatedPods creates n pods in ns, bound to the kwok node (so the
// scheduler is not the bottleneck; kwok makes them Running), from workers
// goroutines, and waits until all are Running.
func unrelatedPods(t *testing.T, ns string, n int) {
	t.Helper()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || failed.Load() != nil {
					return
				}
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("other-%d", i), Labels: map[string]string{
						"app": "other", "tier": "backend", "shard": strconv.Itoa(i % 50)}},
					Spec: podTemplate("other", svcPort{"http", 8080, corev1.ProtocolTCP}).Spec,
				}
				pod.Spec.NodeName = cluster.NodeName
				if _, err := tb.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatalf("create unrelated pods: %v", err)
	}
	// All n were created; none is left that is not Running (a list of
	// at most one pod, not of all n, on each poll).
	pollUntil(t, 5*time.Minute, fmt.Sprintf("%d unrelated pods Running", n), func() (bool, string) {
		list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "status.phase!=Running", Limit: 1})
		if err != nil {
			return false, err.Error()
		}
		if len(list.Items) > 0 {
			return false, list.Items[0].Name + " is " + string(list.Items[0].Status.Phase)
		}
		return true, ""
	})
}

// removePods deletes every pod in ns at once, without grace (no kubelet
// runs them), and waits until they are gone, so the next test does not
// share the machine with their deletion.
func removePods(t *testing.T, ns string) {
	t.Helper()
	zero := int64(0)
	if err := tb.Client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil {
		t.Errorf("delete pods of %s: %v", ns, err)
		return
	}
	pollUntil(t, 3*time.Minute, "pods of "+ns+" gone", func() (bool, string) {
		list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return false, err.Error()
		}
		return len(list.Items) == 0, "pods left"
	})
}

// labelledPods counts the pods in the cluster that carry the set-name
// label: the pets of this test's set and of sets other tests left behind
// (their namespaces may still be going). Read just before the cache's
// count, it bounds it: nothing makes labelled pods meanwhile but the
// controller, for the set of this test, which is whole.
func labelledPods(t *testing.T) int {
	t.Helper()
	list, err := tb.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: controller.LabelSetName})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// maxCacheGrowthMB is how much more resident memory the controller may
// use with 5,000 unrelated pods in the cluster than with none. The cache
// holds none of them, so the growth is noise: measured on a 2-core
// machine at -0.8 MiB (RSS 40.9 -> 40.1 MiB, heap in use 9.1 -> 9.3
// MiB), where the binary from before label-selected caches, which cached
// every pod, grew by 42.9 MiB (40.7 -> 83.6 MiB, heap 9.8 -> 51.2 MiB;
// run with PETSET_CONTROLLER_BIN set to it, this test fails). 10 MiB is
// far above the noise and far below what caching the pods costs.
const maxCacheGrowthMB = 10

// The controller's caches hold only what it owns: with 5,000 unrelated
// pods in the cluster, its cache holds none of them (petset_cache_objects
// counts no more pods than carry the set label: the 3 pets, and those of
// other tests' sets still being deleted) and its resident memory is not more than
// maxCacheGrowthMB above what it is with none. A PetSet of three pets
// runs throughout; the controller is measured once before the pods exist
// and once (a fresh process, which lists everything it watches) after.
func TestControllerMemoryUnrelatedPods(t *testing.T) {
	const unrelated = 5000
	c := installCRD(t)
	ns := tb.Namespace(t, "mem")
	ps := newPetSet(ns, "mem", "mem", 3)
	ps.Spec.VolumeClaimTemplates = nil
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	first := startMeasuredController(t)
	waitPods(t, ns, "mem", 3)
	waitStatus(t, c, ns, "mem", func(st v1alpha1.PetSetStatus) bool { return st.ReadyReplicas == 3 })
	rss0, heap0 := first.settledMemory(t)
	labelled0 := labelledPods(t)
	cached0, ok0 := first.metric(`petset_cache_objects{resource="pods"}`)
	first.stop()

	other := tb.Namespace(t, "unrelated")
	start := time.Now()
	unrelatedPods(t, other, unrelated)
	made := time.Since(start)
	t.Cleanup(func() { removePods(t, other) })

	second := startMeasuredController(t)
	rss1, heap1 := second.settledMemory(t)
	labelled1 := labelledPods(t)
	cached1, ok1 := second.metric(`petset_cache_objects{resource="pods"}`)
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	summary := fmt.Sprintf("controller memory with a 3-pet PetSet: RSS %.1f MiB (heap in use %.1f MiB) with no other pods; "+
		"RSS %.1f MiB (heap %.1f MiB) with %d unrelated pods (created and Running in %s); pods in cache %v -> %v",
		mib(rss0), mib(heap0), mib(rss1), mib(heap1), unrelated, made.Round(time.Second), cached0, cached1)
	t.Log(summary)
	latencyMu.Lock()
	latencies = append(latencies, summary)
	latencyMu.Unlock()

	if !ok0 || !ok1 || cached0 < 3 || cached1 < 3 || cached0 > float64(labelled0) || cached1 > float64(labelled1) {
		t.Errorf("pods in the controller's cache: %v (metric present %v) before, %v (present %v) with %d unrelated pods; "+
			"want the 3 pets and at most the %d, %d pods labelled %s in the cluster (pets of other tests' sets)",
			cached0, ok0, cached1, ok1, unrelated, labelled0, labelled1, controller.LabelSetName)
	}
	if growth := mib(rss1 - rss0); growth > maxCacheGrowthMB {
		t.Errorf("RSS grew by %.1f MiB with %d unrelated pods, more than %d MiB", growth, unrelated, maxCacheGrowthMB)
	}
	// The set is still whole and served by the second process.
	waitStatus(t, c, ns, "mem", func(st v1alpha1.PetSetStatus) bool { return st.ReadyReplicas == 3 && len(st.Members) == 3 })
}

// readyNames polls (every second, up to timeout) until ns has exactly n pods
// of app, all Ready, and returns how long that took from start and their
// names.
func readyNames(t *testing.T, ns, app string, n int, start time.Time, timeout time.Duration) (time.Duration, []string) {
	t.Helper()
	var names []string
	var took time.Duration
	pollEvery(t, time.Second, timeout, fmt.Sprintf("%d Ready pods of %s in %s", n, app, ns), func() (bool, string) {
		list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, err.Error()
		}
		names = names[:0]
		ready := 0
		for i := range list.Items {
			p := &list.Items[i]
			names = append(names, p.Name)
			if p.DeletionTimestamp == nil && podReady(p) {
				ready++
			}
		}
		took = time.Since(start)
		return ready == n && len(list.Items) == n, fmt.Sprintf("%d pods, %d Ready", len(list.Items), ready)
	})
	slices.Sort(names)
	return took, names
}

// A StatefulSet and a PetSet of 1,000 pets each (Parallel, no claims),
// one after the other: both reach 1,000 Ready pods named 0..999, and the
// PetSet makes at most 1.1 times the StatefulSet's API writes per pet
// (every write each controller made in its namespace, from the audit
// log, until it has been quiet for 5s). Time to all Ready is reported,
// not asserted.
func TestThousandPets(t *testing.T) {
	const n = 1000
	c, stop := startController(t)
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("big-%d", i)
	}
	slices.Sort(want)
	nsS := tb.Namespace(t, "big-sts")
	nsP := tb.Namespace(t, "big-pet")

	off := auditOffset(t)
	start := time.Now()
	statefulSet(t, nsS, "big", "big", n, true)
	stsTime, names := readyNames(t, nsS, "big", n, start, 10*time.Minute)
	if !slices.Equal(names, want) {
		t.Errorf("StatefulSet pod names are not big-0..big-999: %d names, first %v", len(names), names[:min(5, len(names))])
	}
	pollUntil(t, 2*time.Minute, "StatefulSet status current", func() (bool, string) {
		s, err := tb.Client.AppsV1().StatefulSets(nsS).Get(ctx, "big", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return s.Status.ObservedGeneration == s.Generation && s.Status.ReadyReplicas == n, fmt.Sprintf("%+v", s.Status)
	})
	stsW := quietWrites(t, off, nsS, "StatefulSet")["StatefulSet"]
	// Its pods go before the PetSet starts, so the two do not share the
	// machine: once the StatefulSet is gone (so nothing makes them
	// again), they are deleted at once rather than one by one.
	if err := tb.Client.AppsV1().StatefulSets(nsS).Delete(ctx, "big", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, time.Minute, "StatefulSet gone", func() (bool, string) {
		_, err := tb.Client.AppsV1().StatefulSets(nsS).Get(ctx, "big", metav1.GetOptions{})
		return err != nil, "still there"
	})
	removePods(t, nsS)

	ps := newPetSet(nsP, "big", "big", n)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	ps.Spec.Template = podTemplate("big")
	off = auditOffset(t)
	start = time.Now()
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	petTime, names := readyNames(t, nsP, "big", n, start, 10*time.Minute)
	if !slices.Equal(names, want) {
		t.Errorf("PetSet pod names are not big-0..big-999: %d names, first %v", len(names), names[:min(5, len(names))])
	}
	var created v1alpha1.PetSet
	pollUntil(t, 2*time.Minute, "PetSet status current", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(ps), &created); err != nil {
			return false, err.Error()
		}
		st := created.Status
		return st.ObservedGeneration == created.Generation && st.ReadyReplicas == n && len(st.Members) == n,
			fmt.Sprintf("observed %d/%d ready %d members %d", st.ObservedGeneration, created.Generation, st.ReadyReplicas, len(st.Members))
	})
	petW := quietWrites(t, off, nsP, "PetSet")["PetSet"]

	for _, w := range []struct {
		name string
		w    writeCount
	}{{"StatefulSet", stsW}, {"PetSet", petW}} {
		if got := w.w["create pods 201"]; got != n {
			t.Errorf("%s created %d pods, want %d", w.name, got, n)
		}
		t.Logf("%s writes (audit log, verb resource code=count): %s", w.name, w.w)
	}
	sPer, pPer := float64(stsW.total())/n, float64(petW.total())/n
	summary := fmt.Sprintf("1,000 pets (Parallel, no claims), creation to all Ready: StatefulSet %s, %.2f writes per pet (%d); PetSet %s, %.2f writes per pet (%d)",
		stsTime.Round(100*time.Millisecond), sPer, stsW.total(), petTime.Round(100*time.Millisecond), pPer, petW.total())
	t.Log(summary)
	latencyMu.Lock()
	latencies = append(latencies, summary)
	latencyMu.Unlock()
	if pPer > sPer*1.1 {
		t.Errorf("PetSet makes %.2f writes per pet, more than 1.1 x StatefulSet's %.2f", pPer, sPer)
	}
	// Its pods go with the test, at once rather than one by one through
	// the garbage collector: the controller is stopped first, so that it
	// does not make them again.
	stop()
	removePods(t, nsP)
}
