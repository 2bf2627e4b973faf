package dnsbench

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func testServices(n, pods int) []Service {
	svcs := make([]Service, n)
	for i := range svcs {
		svcs[i] = Service{Namespace: "bench", Name: fmt.Sprintf("s%d", i), PortName: "http"}
		for k := range pods {
			svcs[i].Hosts = append(svcs[i].Hosts, fmt.Sprintf("s%d-%d", i, k))
		}
	}
	return svcs
}

func TestQueriesMix(t *testing.T) {
	tests := []struct {
		n                      int
		podA, svcA, srv, nxdom int
	}{
		{n: 1000, podA: 600, svcA: 100, srv: 100, nxdom: 200},
		{n: 10, podA: 6, svcA: 1, srv: 1, nxdom: 2},
		// Shares are rounded down; the rest is per-pod A.
		{n: 7, podA: 6, svcA: 0, srv: 0, nxdom: 1},
		{n: 199, podA: 122, svcA: 19, srv: 19, nxdom: 39},
	}
	for _, tc := range tests {
		svcs := testServices(5, 4)
		mixed, podA, err := Queries(svcs, tc.n, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(mixed) != tc.n || len(podA) != tc.n {
			t.Fatalf("n=%d: %d mixed, %d pod-A lines", tc.n, len(mixed), len(podA))
		}
		count := map[string]int{}
		for _, q := range mixed {
			count[q.Kind]++
		}
		want := map[string]int{KindPodA: tc.podA, KindServiceA: tc.svcA, KindSRV: tc.srv, KindNXDomain: tc.nxdom}
		for k, v := range want {
			if count[k] != v {
				t.Errorf("n=%d: %d %s queries, want %d (all: %v)", tc.n, count[k], k, v, count)
			}
		}
		for _, q := range podA {
			if q.Kind != KindPodA || q.Type != "A" {
				t.Fatalf("pod-A file has %+v", q)
			}
		}
	}
}

// Every name is of the kind it says: pod names are pods of a service,
// service and SRV names are services, and NXDOMAIN names are nowhere.
func TestQueriesNames(t *testing.T) {
	svcs := testServices(3, 5)
	exists := map[string]string{}
	for _, s := range svcs {
		exists[s.ServiceName()] = KindServiceA
		exists["_http._tcp."+s.ServiceName()] = KindSRV
		for i := range s.Hosts {
			exists[s.PodName(i)] = KindPodA
		}
	}
	mixed, podA, err := Queries(svcs, 500, 7)
	if err != nil {
		t.Fatal(err)
	}
	seenPods := map[string]bool{}
	for _, q := range append(mixed, podA...) {
		kind, ok := exists[q.Name]
		if q.Kind == KindNXDomain {
			if ok || !strings.HasSuffix(q.Name, ".bench.svc.cluster.local") {
				t.Errorf("nxdomain query %q exists or is outside the namespace", q.Name)
			}
			continue
		}
		if kind != q.Kind {
			t.Errorf("%q is %q, labelled %q", q.Name, kind, q.Kind)
		}
		if q.Kind == KindPodA {
			seenPods[q.Name] = true
		}
	}
	if len(seenPods) != 15 {
		t.Errorf("1,000 draws reached %d of 15 pods", len(seenPods))
	}
}

func TestQueriesDeterministic(t *testing.T) {
	svcs := testServices(10, 10)
	a1, b1, _ := Queries(svcs, 2000, 42)
	a2, b2, _ := Queries(svcs, 2000, 42)
	if !slices.Equal(a1, a2) || !slices.Equal(b1, b2) {
		t.Fatal("same seed, different queries")
	}
	a3, b3, _ := Queries(svcs, 2000, 43)
	if slices.Equal(a1, a3) || slices.Equal(b1, b3) {
		t.Fatal("another seed, same queries")
	}
	var w1, w2 bytes.Buffer
	WriteQueries(&w1, a1)
	WriteQueries(&w2, a2)
	if !bytes.Equal(w1.Bytes(), w2.Bytes()) {
		t.Fatal("files differ")
	}
	first := strings.SplitN(w1.String(), "\n", 2)[0]
	if f := strings.Fields(first); len(f) != 2 || (f[1] != "A" && f[1] != "SRV") {
		t.Errorf("line %q is not NAME TYPE", first)
	}
}

func TestQueriesErrors(t *testing.T) {
	if _, _, err := Queries(nil, 10, 1); err == nil {
		t.Error("no services: no error")
	}
	if _, _, err := Queries(testServices(1, 1), 0, 1); err == nil {
		t.Error("n=0: no error")
	}
	if _, _, err := Queries([]Service{{Namespace: "a", Name: "b"}}, 10, 1); err == nil {
		t.Error("a service without pods: no error")
	}
}
