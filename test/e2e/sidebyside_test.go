//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// identity is what a pet looks like from outside: pod names with their
// hostnames and subdomains, claim names, and DNS answers relative to the
// namespace.
func identity(t *testing.T, ns string, n int) string {
	t.Helper()
	pods := waitPods(t, ns, "web", n)
	var lines []string
	for name, p := range pods {
		var claims []string
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				claims = append(claims, v.PersistentVolumeClaim.ClaimName)
			}
		}
		lines = append(lines, fmt.Sprintf("pod %s hostname=%s subdomain=%s claims=%v", name, p.Spec.Hostname, p.Spec.Subdomain, claims))
		host := fqdn(name, "web", ns)
		eventually(t, 30*time.Second, host, dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
		rev, _ := dns.ReverseAddr(p.Status.PodIP)
		m, err := dig(rev, dns.TypePTR)
		if err != nil {
			t.Fatal(err)
		}
		for _, rr := range m.Answer {
			lines = append(lines, "ptr "+name+" -> "+strings.ReplaceAll(rr.(*dns.PTR).Ptr, ns, "NS"))
		}
	}
	eventually(t, 30*time.Second, fqdn("_http._tcp.web", ns), dns.TypeSRV, func(m *dns.Msg) bool { return len(m.Answer) == n })
	m, _ := dig(fqdn("_http._tcp.web", ns), dns.TypeSRV)
	for _, rr := range m.Answer {
		s := rr.(*dns.SRV)
		lines = append(lines, fmt.Sprintf("srv %d %s", s.Port, strings.ReplaceAll(s.Target, ns, "NS")))
	}
	list, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Items {
		lines = append(lines, "claim "+c.Name)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// writes counts, from outside, what a controller writes while it scales:
// pods and claims created, and changes to the set object itself (status).
type writes struct {
	mu          sync.Mutex
	pods, owner int
	claims      int // claims that existed when counting began
	stop        []func()
}

func countWrites(t *testing.T, ns string, setWatch watch.Interface) *writes {
	t.Helper()
	w := &writes{claims: len(claimNames(t, ns))}
	pw, err := tb.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	count := func(wi watch.Interface, typ watch.EventType, n *int) {
		for ev := range wi.ResultChan() {
			if ev.Type == typ {
				w.mu.Lock()
				*n++
				w.mu.Unlock()
			}
		}
	}
	go count(pw, watch.Added, &w.pods)
	go count(setWatch, watch.Modified, &w.owner)
	w.stop = []func(){pw.Stop, setWatch.Stop}
	return w
}

// done stops counting and returns pods created, claims created and
// updates of the set object.
func (w *writes) done(t *testing.T, ns string) (pods, claims, owner int) {
	for _, f := range w.stop {
		f()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pods, len(claimNames(t, ns)) - w.claims, w.owner
}

func claimNames(t *testing.T, ns string) []string {
	t.Helper()
	list, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list.Items {
		out = append(out, c.Name)
	}
	return out
}

// The same spec as a StatefulSet and as a PetSet, side by side: the same
// pod names, hostnames, subdomains, claim names and DNS answers; and each
// controller's time to scale 0 -> 20 under OrderedReady, with its writes.
func TestPetSetBesideStatefulSet(t *testing.T) {
	c, _ := startController(t)
	nsS := tb.Namespace(t, "sts")
	nsP := tb.Namespace(t, "pet")
	port := svcPort{"http", 80, corev1.ProtocolTCP}
	for _, ns := range []string{nsS, nsP} {
		headlessService(t, ns, "web", map[string]string{"app": "web"}, false, port)
	}
	pet := newPetSet(nsP, "web", "web", 3)
	pet.Spec.Template = podTemplate("web", port)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsS, Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:             ptr(int32(3)),
			ServiceName:          "web",
			Selector:             pet.Spec.Selector,
			Template:             pet.Spec.Template,
			VolumeClaimTemplates: pet.Spec.VolumeClaimTemplates,
		},
	}
	if _, err := tb.Client.AppsV1().StatefulSets(nsS).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, pet); err != nil {
		t.Fatal(err)
	}
	a, b := identity(t, nsS, 3), identity(t, nsP, 3)
	if a != b {
		t.Errorf("StatefulSet and PetSet differ:\nStatefulSet:\n%s\nPetSet:\n%s", a, b)
	}

	// Scale both to zero, then time 0 -> 20 one after the other.
	scale(t, nsS, "web", 0)
	scalePetSet(t, c, nsP, "web", 0)
	waitPods(t, nsS, "web", 0)
	waitPods(t, nsP, "web", 0)

	stsWatch, err := tb.Client.AppsV1().StatefulSets(nsS).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := countWrites(t, nsS, stsWatch)
	start := time.Now()
	scale(t, nsS, "web", 20)
	waitPods(t, nsS, "web", 20)
	stsTime := time.Since(start)
	time.Sleep(500 * time.Millisecond) // let the last status write land
	sp, sc, so := w.done(t, nsS)

	petWatch, err := c.(client.WithWatch).Watch(ctx, &v1alpha1.PetSetList{}, client.InNamespace(nsP))
	if err != nil {
		t.Fatal(err)
	}
	w = countWrites(t, nsP, petWatch)
	start = time.Now()
	scalePetSet(t, c, nsP, "web", 20)
	waitPods(t, nsP, "web", 20)
	petTime := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	pp, pc, po := w.done(t, nsP)
	if pp != 20 || sp != 20 {
		t.Errorf("pods created: StatefulSet %d, PetSet %d, want 20 each", sp, pp)
	}
	recordLatency("StatefulSet scale 0 -> 20 (OrderedReady), all Ready", stsTime)
	recordLatency("PetSet scale 0 -> 20 (OrderedReady), all Ready", petTime)
	if sc != 17 || pc != 17 {
		t.Errorf("claims created: StatefulSet %d, PetSet %d, want 17 each (3 reused)", sc, pc)
	}
	summary := fmt.Sprintf("API writes per pod, scaling 0 -> 20: StatefulSet %.2f (%d pods, %d claims, %d status updates), PetSet %.2f (%d pods, %d claims, %d status updates)",
		float64(sp+sc+so)/20, sp, sc, so, float64(pp+pc+po)/20, pp, pc, po)
	t.Log(summary)
	latencyMu.Lock()
	latencies = append(latencies, summary)
	latencyMu.Unlock()
	a, b = identity(t, nsS, 20), identity(t, nsP, 20)
	if a != b {
		t.Errorf("after scaling, StatefulSet and PetSet differ:\nStatefulSet:\n%s\nPetSet:\n%s", a, b)
	}
}
