package headless

import (
	"fmt"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// Rebuilding only the services that changed gives the same table as
// building everything from scratch, through any sequence of changes.
func TestIncrementalEqualsFull(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	zones := names{forward: []string{"cluster.local."}, reverse: []string{"in-addr.arpa.", "ip6.arpa."}, ttl: 5}
	inc := newBuilder(zones)
	l := newStatic()
	var (
		old     *table
		oldDump string
	)
	for step := 0; step < 400; step++ {
		k := svcKey{Namespace: fmt.Sprintf("ns%d", r.IntN(3)), Name: fmt.Sprintf("s%d", r.IntN(6))}
		switch r.IntN(5) {
		case 0:
			delete(l.svcs, k)
		case 1:
			s := svc(k.Namespace, k.Name, r.IntN(4) > 0)
			l.svcs[k] = s
		default:
			if l.svcs[k] == nil {
				l.svcs[k] = svc(k.Namespace, k.Name, true)
			}
			var eps []ep
			for i := range r.IntN(5) {
				e := ep{addr: fmt.Sprintf("10.244.%d.%d", r.IntN(2), r.IntN(8))}
				if r.IntN(3) > 0 {
					e.hostname = fmt.Sprintf("h%d", i)
				}
				if r.IntN(5) == 0 {
					e.ready = notReady
				}
				eps = append(eps, e)
			}
			ports := []discovery.EndpointPort{epPort(fmt.Sprintf("p%d", r.IntN(2)), corev1.ProtocolTCP, int32(r.IntN(3)+80))}
			l.sl[k] = []*discovery.EndpointSlice{slice(k.Namespace, k.Name, "s", discovery.AddressTypeIPv4, ports, eps...)}
			if r.IntN(3) == 0 {
				l.sl[k] = append(l.sl[k], slice(k.Namespace, k.Name, "v6", discovery.AddressTypeIPv6, ports, ep{addr: fmt.Sprintf("fd00::%d", r.IntN(4)), hostname: "h0"}))
			}
		}
		snap := inc.apply(l, []svcKey{k})
		full := newBuilder(zones).apply(l, l.keys())
		if got, want := dump(snap.names), dump(full.names); got != want {
			t.Fatalf("step %d (%s): incremental build differs from a full one:\n%s\nwant:\n%s", step, k, got, want)
		}
		// The previous table must be untouched by the new build.
		if old != nil && (old == snap.names || dump(old) != oldDump) {
			t.Fatalf("step %d: the build changed a published table", step)
		}
		old, oldDump = snap.names, dump(snap.names)
	}
}
