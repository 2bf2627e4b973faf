//go:build e2e

package realnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// applyEtcdExample applies deploy/examples/etcd.yaml in ns.
func applyEtcdExample(t testing.TB, ns string) {
	t.Helper()
	applyEtcdFile(t, ns, filepath.Join(repo, "deploy", "examples", "etcd.yaml"))
}

// applyEtcdFile applies an etcd example in ns through a kustomization that
// only sets the namespace and the images (peer-finder from `make images`,
// etcd v3.6.5 from the testbed).
func applyEtcdFile(t testing.TB, ns, file string) {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etcd.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	etcdRef := tb.TestImage("etcd")
	name, tag, _ := strings.Cut(etcdRef[len(tb.Registry())+1:], ":")
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources: [etcd.yaml]
images:
- {name: ghcr.io/petset/peer-finder, newName: %s/petset/peer-finder, newTag: %q}
- {name: gcr.io/etcd-development/etcd, newName: %s/%s, newTag: %q}
`, ns, tb.Registry(), version, tb.Registry(), name, tag)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "-k", dir)
}

// etcdPods returns the etcd pets of ns by name.
func etcdPods(t testing.TB, ns string) map[string]*corev1.Pod {
	t.Helper()
	list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=etcd"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

// etcdClient talks to the members at the given pod addresses.
func etcdClient(t testing.TB, ips ...string) *clientv3.Client {
	t.Helper()
	var eps []string
	for _, ip := range ips {
		eps = append(eps, "http://"+ip+":2379")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// members lists the cluster's members by name (learners marked), through
// the member at ip.
func members(ip string) (map[string]uint64, []string, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + ip + ":2379"}, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	cx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.MemberList(cx)
	if err != nil {
		return nil, nil, err
	}
	ids := map[string]uint64{}
	var names []string
	for _, m := range resp.Members {
		n := m.Name
		if m.IsLearner {
			n += " (learner)"
		}
		ids[m.Name] = m.ID
		names = append(names, n)
	}
	slices.Sort(names)
	return ids, names, nil
}

// waitMembers waits until the pets named in want are the cluster's voting
// members, every one of them Ready, and returns their member IDs.
func waitMembers(t testing.TB, ns string, want ...string) map[string]uint64 {
	t.Helper()
	var ids map[string]uint64
	poll(t, 4*time.Minute, fmt.Sprintf("etcd members %v, all Ready", want), func() (bool, string) {
		pods := etcdPods(t, ns)
		var ready []string
		for name, p := range pods {
			if podReady(p) && p.DeletionTimestamp == nil {
				ready = append(ready, name)
			}
		}
		slices.Sort(ready)
		if !slices.Equal(ready, want) {
			return false, fmt.Sprintf("ready pets %v", ready)
		}
		var names []string
		var err error
		ids, names, err = members(pods[want[0]].Status.PodIP)
		return err == nil && slices.Equal(names, want), fmt.Sprintf("members %v %v", names, err)
	})
	return ids
}

// healthWatch reads a key through the members at ips with a linearizable
// (quorum) read every 100 ms until stopped, and counts the reads that
// failed: with the members at ips up, a read fails only when the cluster
// has no quorum.
type healthWatch struct {
	stop   context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	ok     int
	failed []string
}

func watchHealth(t testing.TB, ips ...string) *healthWatch {
	t.Helper()
	c := etcdClient(t, ips...)
	cx, cancel := context.WithCancel(ctx)
	h := &healthWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for cx.Err() == nil {
			rc, rcancel := context.WithTimeout(cx, 5*time.Second)
			_, err := c.Get(rc, "health")
			rcancel()
			if cx.Err() != nil {
				return
			}
			h.mu.Lock()
			if err != nil {
				h.failed = append(h.failed, time.Now().Format("15:04:05.000")+" "+err.Error())
			} else {
				h.ok++
			}
			h.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return h
}

// end stops the watch and fails the test if any read failed.
func (h *healthWatch) end(t testing.TB, what string) {
	t.Helper()
	h.stop()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failed) > 0 {
		t.Fatalf("%s: %d of %d quorum reads failed, the first: %s", what, len(h.failed), len(h.failed)+h.ok, h.failed[0])
	}
	if h.ok < 10 {
		t.Fatalf("%s: only %d quorum reads", what, h.ok)
	}
	t.Logf("%s: %d quorum reads, none failed", what, h.ok)
}

// deploy/examples/etcd.yaml in real containers, images from `make images`
// and the testbed: three pets form one etcd cluster through peer-finder;
// a key written through one member is read through another; a pet whose
// pod is deleted comes back with its name and claim as the same member
// and serves the key; the cluster scales 3 -> 5 -> 3 and is rolled with a
// partition without ever losing quorum, pets below the partition left
// alone.
func TestEtcdExample(t *testing.T) {
	usePetsetDNS(t)
	installController(t)
	ns := namespace(t, "etcd")
	applyEtcdExample(t, ns)
	three := []string{"etcd-0", "etcd-1", "etcd-2"}
	ids := waitMembers(t, ns, three...)

	pods := etcdPods(t, ns)
	if _, err := etcdClient(t, pods["etcd-0"].Status.PodIP).Put(ctx, "pet", "written through etcd-0"); err != nil {
		t.Fatal(err)
	}
	if r, err := etcdClient(t, pods["etcd-2"].Status.PodIP).Get(ctx, "pet"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "written through etcd-0" {
		t.Fatalf("read through etcd-2: %v %v", r, err)
	}

	// A pet deleted comes back as the same member, with its data.
	old := pods["etcd-1"]
	claim, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-etcd-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	health := watchHealth(t, pods["etcd-0"].Status.PodIP, pods["etcd-2"].Status.PodIP)
	if err := tb.Client.CoreV1().Pods(ns).Delete(ctx, "etcd-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 2*time.Minute, "etcd-1 made again", func() (bool, string) {
		p := etcdPods(t, ns)["etcd-1"]
		return p != nil && p.UID != old.UID, "the old pod"
	})
	again := waitMembers(t, ns, three...)
	health.end(t, "etcd-1 replaced")
	if again["etcd-1"] != ids["etcd-1"] {
		t.Errorf("etcd-1 came back as member %x, was %x", again["etcd-1"], ids["etcd-1"])
	}
	pods = etcdPods(t, ns)
	if c, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-etcd-1", metav1.GetOptions{}); err != nil || c.UID != claim.UID || c.Spec.VolumeName != claim.Spec.VolumeName {
		t.Errorf("etcd-1's claim: %v %v, was %s on %s", c, err, claim.UID, claim.Spec.VolumeName)
	}
	if r, err := etcdClient(t, pods["etcd-1"].Status.PodIP).Get(ctx, "pet", clientv3.WithSerializable()); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("read from the new etcd-1 alone: %v %v", r, err)
	}

	// 3 -> 5 -> 3, quorum read through the members that stay.
	health = watchHealth(t, pods["etcd-0"].Status.PodIP, pods["etcd-1"].Status.PodIP, pods["etcd-2"].Status.PodIP)
	kubectl(t, "-n", ns, "scale", "petset/etcd", "--replicas=5")
	waitMembers(t, ns, "etcd-0", "etcd-1", "etcd-2", "etcd-3", "etcd-4")
	kubectl(t, "-n", ns, "scale", "petset/etcd", "--replicas=3")
	poll(t, 2*time.Minute, "etcd-3 and etcd-4 gone", func() (bool, string) {
		p := etcdPods(t, ns)
		return p["etcd-3"] == nil && p["etcd-4"] == nil, fmt.Sprint(len(p), " pods")
	})
	waitMembers(t, ns, three...)
	health.end(t, "3 -> 5 -> 3")

	// A rolling update above a partition: etcd-0 is left as it is.
	pods = etcdPods(t, ns)
	before := pods["etcd-0"].UID
	// Through etcd-0 alone: the others' addresses change as they are
	// replaced.
	health = watchHealth(t, pods["etcd-0"].Status.PodIP)
	patch := `{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":1}},` +
		`"template":{"metadata":{"annotations":{"petset.dev/e2e-rollout":"1"}}}}}`
	if _, err := kubectlErr("-n", ns, "patch", "petset", "etcd", "--type=merge", "-p", patch); err != nil {
		t.Fatal(err)
	}
	poll(t, 4*time.Minute, "etcd-1 and etcd-2 at the new revision, Ready", func() (bool, string) {
		p := etcdPods(t, ns)
		var n int
		for _, name := range []string{"etcd-1", "etcd-2"} {
			if q := p[name]; q != nil && q.Annotations["petset.dev/e2e-rollout"] == "1" && podReady(q) {
				n++
			}
		}
		return n == 2, fmt.Sprint(n, " updated and Ready")
	})
	waitMembers(t, ns, three...)
	health.end(t, "rolling update with partition 1")
	p0 := etcdPods(t, ns)["etcd-0"]
	if p0.UID != before || p0.Annotations["petset.dev/e2e-rollout"] != "" {
		t.Errorf("etcd-0, below the partition, was replaced or updated: uid %s (was %s)", p0.UID, before)
	}
}
