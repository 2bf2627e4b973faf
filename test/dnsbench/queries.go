package dnsbench

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
)

// Zone is the cluster zone the benchmark asks names in.
const Zone = "cluster.local"

// Service is one headless service of the benchmark: its pods are named
// Hosts (their hostnames, as a StatefulSet names them) and it has one
// named TCP port, PortName.
type Service struct {
	Namespace string
	Name      string
	PortName  string
	Hosts     []string
	// IPs are the pods' addresses, in the order of Hosts; filled in once
	// the pods run. Only returned in answers, never contacted.
	IPs []string
}

// Query is one line of a dnsperf data file.
type Query struct {
	Name string
	Type string // A, SRV
	// Kind says which part of the mix the query is: pod-a, service-a,
	// srv or nxdomain.
	Kind string
}

// The query kinds and their share of the mixed file, in percent.
const (
	KindPodA     = "pod-a"
	KindServiceA = "service-a"
	KindSRV      = "srv"
	KindNXDomain = "nxdomain"
)

// Mix is the mixed file's composition: 60% per-pod A, 10% service A,
// 10% SRV, 20% names that do not exist.
var Mix = []struct {
	Kind    string
	Percent int
}{{KindPodA, 60}, {KindServiceA, 10}, {KindSRV, 10}, {KindNXDomain, 20}}

// PodName is the name of the i-th pod of a service.
func (s Service) PodName(i int) string {
	return s.Hosts[i] + "." + s.Name + "." + s.Namespace + ".svc." + Zone
}

// ServiceName is the service's own name.
func (s Service) ServiceName() string { return s.Name + "." + s.Namespace + ".svc." + Zone }

// Queries makes the two query files for a set of services, n lines each,
// deterministically from seed: the mixed file (exactly the Mix shares of
// n, rounded down, the remainder per-pod A, in a seeded random order) and
// the per-pod-A file. Names are drawn uniformly: a random service, then a
// random pod of it. Names that do not exist are, alternately, a pod that
// a service does not have (<svc>-nx<k>.<svc>...) and a service that its
// namespace does not have (nx-<k>.<ns>.svc...). Both plugins answer
// NXDOMAIN for both kinds; headless answers the second for the kubernetes
// plugin behind it, with that plugin's SOA (see kubenx.go in
// plugin/headless), as it does for a pod's search-path expansions.
func Queries(svcs []Service, n int, seed uint64) (mixed, podA []Query, err error) {
	if len(svcs) == 0 || n <= 0 {
		return nil, nil, fmt.Errorf("queries: need services and a positive count (have %d services, n=%d)", len(svcs), n)
	}
	for _, s := range svcs {
		if len(s.Hosts) == 0 {
			return nil, nil, fmt.Errorf("queries: service %s/%s has no pods", s.Namespace, s.Name)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	pod := func() Query {
		s := svcs[rng.IntN(len(svcs))]
		return Query{Name: s.PodName(rng.IntN(len(s.Hosts))), Type: "A", Kind: KindPodA}
	}
	nx := 0
	mixed = make([]Query, 0, n)
	for _, m := range Mix[1:] {
		for range n * m.Percent / 100 {
			s := svcs[rng.IntN(len(svcs))]
			var q Query
			switch m.Kind {
			case KindServiceA:
				q = Query{Name: s.ServiceName(), Type: "A", Kind: m.Kind}
			case KindSRV:
				q = Query{Name: "_" + s.PortName + "._tcp." + s.ServiceName(), Type: "SRV", Kind: m.Kind}
			case KindNXDomain:
				if nx%2 == 0 {
					q = Query{Name: fmt.Sprintf("%s-nx%d.%s", s.Name, nx, s.ServiceName()), Type: "A", Kind: m.Kind}
				} else {
					q = Query{Name: fmt.Sprintf("nx-%d.%s.svc.%s", nx, s.Namespace, Zone), Type: "A", Kind: m.Kind}
				}
				nx++
			}
			mixed = append(mixed, q)
		}
	}
	for len(mixed) < n {
		mixed = append(mixed, pod())
	}
	rng.Shuffle(len(mixed), func(i, j int) { mixed[i], mixed[j] = mixed[j], mixed[i] })
	podA = make([]Query, n)
	for i := range podA {
		podA[i] = pod()
	}
	return mixed, podA, nil
}

// WriteQueries writes queries in dnsperf's data file format: one
// "NAME TYPE" per line.
func WriteQueries(w io.Writer, qs []Query) error {
	bw := bufio.NewWriter(w)
	for _, q := range qs {
		bw.WriteString(q.Name)
		bw.WriteByte(' ')
		bw.WriteString(q.Type)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// WriteQueryFile writes queries to path.
func WriteQueryFile(path string, qs []Query) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteQueries(f, qs); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
