//go:build e2e

package realnode

import (
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The real node's numbers (make bench-realnode), measured, not asserted.

// BenchmarkEtcdBootstrap is the time from `kubectl apply` of
// deploy/examples/etcd.yaml to three voting etcd members, every pet Ready:
// as a PetSet and as a StatefulSet of the same pods, Parallel (the
// example) and OrderedReady (where the first pet cannot wait for three,
// so -min-peers=1 and the others join as learners).
func BenchmarkEtcdBootstrap(b *testing.B) {
	usePetsetDNS(b)
	installController(b)
	for _, kind := range []string{"PetSet", "StatefulSet"} {
		for _, policy := range []string{"Parallel", "OrderedReady"} {
			b.Run(kind+"/"+policy, func(b *testing.B) {
				var total time.Duration
				for range b.N {
					ns := namespace(b, "bench-etcd")
					start := time.Now()
					applyEtcdVariant(b, ns, kind, policy)
					waitMembers(b, ns, "etcd-0", "etcd-1", "etcd-2")
					total += time.Since(start)
				}
				b.ReportMetric(total.Seconds()/float64(b.N), "s/healthy")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// applyEtcdVariant applies the example as kind with policy.
func applyEtcdVariant(b testing.TB, ns, kind, policy string) {
	src, err := os.ReadFile(filepath.Join(repo, "deploy", "examples", "etcd.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	y := string(src)
	if kind == "StatefulSet" {
		y = strings.Replace(y, "apiVersion: petset.dev/v1alpha1\nkind: PetSet", "apiVersion: apps/v1\nkind: StatefulSet", 1)
	}
	if policy == "OrderedReady" {
		y = strings.Replace(y, "podManagementPolicy: Parallel", "podManagementPolicy: OrderedReady", 1)
		y = strings.Replace(y, "- -min-peers=3", "- -min-peers=1", 1)
	}
	dir := b.TempDir()
	file := filepath.Join(dir, "etcd.yaml")
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		b.Fatal(err)
	}
	applyEtcdFile(b, ns, file)
}

// BenchmarkPetBackInDNS is the time from deleting a pet's pod to its name
// answering with the new pod's address from petset's DNS on the node, as a
// PetSet and as a StatefulSet; then the headless plugin's own DNS
// programming latency over everything it saw (its histogram, bucket bounds).
func BenchmarkPetBackInDNS(b *testing.B) {
	usePetsetDNS(b)
	installController(b)
	for _, kind := range []string{"PetSet", "StatefulSet"} {
		b.Run(kind, func(b *testing.B) {
			ns := namespace(b, "bench-dns")
			if kind == "PetSet" {
				file := filepath.Join(b.TempDir(), "petset.yaml")
				if err := os.WriteFile(file, []byte(petSetYAML(ns, "web", 3)), 0o644); err != nil {
					b.Fatal(err)
				}
				kubectl(b, "apply", "-f", file)
				waitPets(b, ns, "web", 3)
			} else {
				pets(b, ns, "web", 3)
			}
			server := dnsPodIP(b) + ":53"
			name := "web-1.web." + ns + ".svc.cluster.local."
			var total time.Duration
			for range b.N {
				old := podIP(b, ns, "web-1")
				start := time.Now()
				if err := tb.Client.CoreV1().Pods(ns).Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
					b.Fatal(err)
				}
				for {
					if ip := askA(server, name); ip != "" && ip != old {
						break
					}
					if time.Since(start) > 2*time.Minute {
						b.Fatalf("%s never answered a new address", name)
					}
					time.Sleep(20 * time.Millisecond)
				}
				total += time.Since(start)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/back")
			b.ReportMetric(0, "ns/op")
		})
	}
	b.Run("programming", func(b *testing.B) {
		p50, p99, n := programming(b)
		b.ReportMetric(p50, "s/p50")
		b.ReportMetric(p99, "s/p99")
		b.ReportMetric(float64(n), "changes")
		b.ReportMetric(0, "ns/op")
	})
}

func podIP(b testing.TB, ns, name string) string {
	var ip string
	poll(b, 2*time.Minute, name+" running with an address", func() (bool, string) {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ip = p.Status.PodIP
		return ip != "" && podReady(p), string(p.Status.Phase)
	})
	return ip
}

func dnsPodIP(b testing.TB) string {
	pods, err := tb.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	if err != nil || len(pods.Items) == 0 {
		b.Fatalf("no DNS pod: %v", err)
	}
	return pods.Items[0].Status.PodIP
}

// askA returns the first address of an A answer, or "".
func askA(server, name string) string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, server)
	if err != nil || len(r.Answer) == 0 {
		return ""
	}
	if a, ok := r.Answer[0].(*dns.A); ok {
		return a.A.String()
	}
	return ""
}

// programming reads coredns_headless_dns_programming_duration_seconds from
// every DNS pod and returns the bucket bounds holding the median and the
// 99th percentile of all their observations, and how many there were.
func programming(b testing.TB) (p50, p99 float64, n int) {
	pods, err := tb.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	if err != nil {
		b.Fatal(err)
	}
	buckets := map[float64]int{}
	for _, p := range pods.Items {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + p.Status.PodIP + ":9153/metrics")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			rest, ok := strings.CutPrefix(line, `coredns_headless_dns_programming_duration_seconds_bucket{le="`)
			if !ok {
				continue
			}
			le, count, _ := strings.Cut(rest, `"} `)
			bound, err1 := strconv.ParseFloat(le, 64)
			if le == "+Inf" {
				bound, err1 = math.Inf(1), nil
			}
			c, err2 := strconv.ParseFloat(count, 64)
			if err1 == nil && err2 == nil {
				buckets[bound] += int(c)
			}
		}
	}
	var bounds []float64
	for k := range buckets {
		bounds = append(bounds, k)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		b.Fatal("no coredns_headless_dns_programming_duration_seconds")
	}
	n = buckets[bounds[len(bounds)-1]]
	for _, k := range bounds {
		if p50 == 0 && float64(buckets[k]) >= 0.5*float64(n) {
			p50 = k
		}
		if p99 == 0 && float64(buckets[k]) >= 0.99*float64(n) {
			p99 = k
		}
	}
	return p50, p99, n
}
