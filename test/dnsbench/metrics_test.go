package dnsbench

import (
	"math"
	"os"
	"strings"
	"testing"
)

const scrape = `# HELP coredns_kubernetes_dns_programming_duration_seconds x
# TYPE coredns_kubernetes_dns_programming_duration_seconds histogram
coredns_kubernetes_dns_programming_duration_seconds_bucket{service_kind="headless_with_selector",le="0.001"} 0
coredns_kubernetes_dns_programming_duration_seconds_bucket{service_kind="headless_with_selector",le="0.5"} 10
coredns_kubernetes_dns_programming_duration_seconds_bucket{service_kind="headless_with_selector",le="1"} 95
coredns_kubernetes_dns_programming_duration_seconds_bucket{service_kind="headless_with_selector",le="2"} 100
coredns_kubernetes_dns_programming_duration_seconds_bucket{service_kind="headless_with_selector",le="+Inf"} 100
coredns_kubernetes_dns_programming_duration_seconds_bucket{service_kind="cluster_ip",le="0.5"} 1000
coredns_kubernetes_dns_programming_duration_seconds_bucket{service_kind="cluster_ip",le="+Inf"} 1000
go_memstats_heap_inuse_bytes 1.23456e+07
broken line
`

func TestHistogram(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(scrape))
	if err != nil {
		t.Fatal(err)
	}
	if m["go_memstats_heap_inuse_bytes"] != 12345600 {
		t.Errorf("heap: %v", m["go_memstats_heap_inuse_bytes"])
	}
	h := m.Histogram("coredns_kubernetes_dns_programming_duration_seconds", `service_kind="headless_with_selector"`)
	if len(h) != 5 || h[4].Count != 100 || !math.IsInf(h[4].LE, 1) {
		t.Fatalf("buckets: %+v", h)
	}
	for _, tc := range []struct{ q, want float64 }{{0.5, 1}, {0.1, 0.5}, {0.99, 2}, {0.95, 1}} {
		if got, n := BucketQuantile(h, tc.q); got != tc.want || n != 100 {
			t.Errorf("q%v = %v (%d), want %v", tc.q, got, n, tc.want)
		}
	}
	// Only the changes between two scrapes count.
	before := []Bucket{{0.001, 0}, {0.5, 10}, {1, 90}, {2, 90}, {math.Inf(1), 90}}
	d := DiffBuckets(before, h)
	if got, n := BucketQuantile(d, 0.5); got != 1 || n != 10 {
		t.Errorf("diff median %v of %d, want 1 of 10", got, n)
	}
	if got, n := BucketQuantile(nil, 0.5); got != 0 || n != 0 {
		t.Errorf("empty: %v %d", got, n)
	}
}

func TestVmRSS(t *testing.T) {
	v, err := VmRSS(os.Getpid())
	if err != nil || v < 1<<20 {
		t.Errorf("VmRSS of this test: %d, %v", v, err)
	}
	if _, err := VmRSS(-1); err == nil {
		t.Error("no process: no error")
	}
}

func TestChurnPlan(t *testing.T) {
	svcs := testServices(10, 100)
	plan := churnPlan(svcs, 3000, 50, 5)
	down := map[[2]int]bool{}
	ups, downs, observed := 0, 0, 0
	for i, c := range plan {
		k := [2]int{c.svc, c.pod}
		if c.ready {
			if !down[k] {
				t.Fatalf("change %d brings back %v, which is not down", i, k)
			}
			delete(down, k)
			ups++
		} else {
			if down[k] {
				t.Fatalf("change %d takes down %v twice", i, k)
			}
			down[k] = true
			downs++
		}
		if c.observe {
			observed++
		}
	}
	// Half the changes each way, give or take the first second's lag;
	// at most a second's worth of pods down at once.
	if ups < 1450 || downs > 1550 || len(down) > 30 {
		t.Errorf("%d up, %d down, %d left down", ups, downs, len(down))
	}
	if observed != 600 {
		t.Errorf("%d observed, want every fifth", observed)
	}
}

func TestCPUSeconds(t *testing.T) {
	// A command with spaces and parentheses: fields count from the last ')'.
	stat := "1234 (core dns) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0"
	if got, err := parseStatCPU(stat); err != nil || got != 3.25 {
		t.Errorf("parseStatCPU = %v, %v; want 3.25 (250 + 75 ticks)", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1", "1 (x) S 1 2 3 4 5 6 7 8 9 u s"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if v, err := CPUSeconds(os.Getpid()); err != nil || v < 0 {
		t.Errorf("CPUSeconds of this test: %v, %v", v, err)
	}
}
