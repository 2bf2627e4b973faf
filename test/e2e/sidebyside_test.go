//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// auditWrite is what the API server's audit log says of one write.
type auditWrite struct {
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	UserAgent string `json:"userAgent"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// writeCount is the writes one controller made in one namespace, keyed
// "verb resource[/subresource] code".
type writeCount map[string]int

func (w writeCount) total() (n int) {
	for _, v := range w {
		n += v
	}
	return n
}

func (w writeCount) String() string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, w[k])
	}
	return strings.TrimSpace(b.String())
}

// auditOffset is where the audit log ends now: counting starts there.
func auditOffset(t *testing.T) int64 {
	t.Helper()
	fi, err := os.Stat(tb.AuditLog())
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// countWrites reads the audit log from offset and counts, per controller,
// every write it made in namespace ns: creates, updates, patches and
// deletes of any resource (events and status included), whatever the
// answer (409s too). The StatefulSet controller is the client
// kube-controller-manager names statefulset-controller; the PetSet
// controller is the ordinal-controller binary. Writes by anyone else in
// ns (the test, the scheduler, kwok) are returned under "other".
func countWrites(t *testing.T, offset int64, ns string) map[string]writeCount {
	t.Helper()
	f, err := os.Open(tb.AuditLog())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	out := map[string]writeCount{"StatefulSet": {}, "PetSet": {}, "other": {}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e auditWrite
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // a line still being written
		}
		if e.Stage != "ResponseComplete" || e.ObjectRef.Namespace != ns {
			continue
		}
		who := "other"
		switch {
		case strings.Contains(e.UserAgent, "statefulset-controller"):
			who = "StatefulSet"
		case strings.HasPrefix(e.UserAgent, "ordinal-controller"):
			who = "PetSet"
		}
		res := e.ObjectRef.Resource
		if e.ObjectRef.Subresource != "" {
			res += "/" + e.ObjectRef.Subresource
		}
		out[who][fmt.Sprintf("%s %s %d", e.Verb, res, e.ResponseStatus.Code)]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// quietWrites waits, after the end state is reached, until the
// controller's count of writes in ns has not moved for a quiet period
// (polled, not slept on), and returns the counts.
func quietWrites(t *testing.T, offset int64, ns, who string) map[string]writeCount {
	t.Helper()
	const quiet = 5 * time.Second
	last, since := -1, time.Now()
	var got map[string]writeCount
	pollEvery(t, 250*time.Millisecond, 2*time.Minute, fmt.Sprintf("%s quiet for %v", who, quiet), func() (bool, string) {
		got = countWrites(t, offset, ns)
		if n := got[who].total(); n != last {
			last, since = n, time.Now()
			return false, got[who].String()
		}
		return time.Since(since) >= quiet, got[who].String()
	})
	return got
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

	// Each scales 0 -> 20; its writes are counted until the end state
	// (20 pods, all Ready, status current for the generation) and a quiet
	// period with no write of its own.
	off := auditOffset(t)
	start := time.Now()
	scale(t, nsS, "web", 20)
	waitPods(t, nsS, "web", 20)
	stsTime := time.Since(start)
	pollUntil(t, 2*time.Minute, "StatefulSet status current", func() (bool, string) {
		s, err := tb.Client.AppsV1().StatefulSets(nsS).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := s.Status
		return st.ObservedGeneration == s.Generation && st.Replicas == 20 && st.ReadyReplicas == 20 && st.UpdatedReplicas == 20,
			fmt.Sprintf("%+v", st)
	})
	stsW := quietWrites(t, off, nsS, "StatefulSet")

	off = auditOffset(t)
	start = time.Now()
	scalePetSet(t, c, nsP, "web", 20)
	var scaled v1alpha1.PetSet
	if err := c.Get(ctx, client.ObjectKey{Namespace: nsP, Name: "web"}, &scaled); err != nil {
		t.Fatal(err)
	}
	gen := scaled.Generation
	waitPods(t, nsP, "web", 20)
	petTime := time.Since(start)
	waitStatus(t, c, nsP, "web", func(st v1alpha1.PetSetStatus) bool {
		return st.ObservedGeneration >= gen && st.Replicas == 20 && st.ReadyReplicas == 20 && st.UpdatedReplicas == 20
	})
	petW := quietWrites(t, off, nsP, "PetSet")
	recordLatency("StatefulSet scale 0 -> 20 (OrderedReady), all Ready", stsTime)
	recordLatency("PetSet scale 0 -> 20 (OrderedReady), all Ready", petTime)

	sw, pw := stsW["StatefulSet"], petW["PetSet"]
	for _, c := range []struct {
		name string
		w    writeCount
	}{{"StatefulSet", sw}, {"PetSet", pw}} {
		if got := c.w["create pods 201"]; got != 20 {
			t.Errorf("%s created %d pods, want 20", c.name, got)
		}
		if got := c.w["create persistentvolumeclaims 201"]; got != 17 {
			t.Errorf("%s created %d claims, want 17 (3 reused)", c.name, got)
		}
		t.Logf("%s writes (audit log, verb resource code=count): %s", c.name, c.w)
	}
	t.Logf("writes in the namespaces by others: StatefulSet's %s; PetSet's %s", stsW["other"], petW["other"])
	sPer, pPer := float64(sw.total())/20, float64(pw.total())/20
	summary := fmt.Sprintf("API writes per pod, scaling 0 -> 20 (audit log, every verb, resource and code): StatefulSet %.2f (%d), PetSet %.2f (%d)",
		sPer, sw.total(), pPer, pw.total())
	t.Log(summary)
	latencyMu.Lock()
	latencies = append(latencies, summary)
	latencyMu.Unlock()
	if pPer > sPer*1.1 {
		t.Errorf("PetSet makes %.2f writes per pod, more than 1.1 x StatefulSet's %.2f", pPer, sPer)
	}
	a, b = identity(t, nsS, 20), identity(t, nsP, 20)
	if a != b {
		t.Errorf("after scaling, StatefulSet and PetSet differ:\nStatefulSet:\n%s\nPetSet:\n%s", a, b)
	}
}
