// Package headless is a CoreDNS plugin that serves the DNS records of
// Kubernetes headless services, as the Kubernetes DNS specification
// (schema 1.1.0) describes them: per-endpoint A/AAAA, service A/AAAA, SRV
// for named ports and for the port-less form peer-finder asks, and PTR.
//
// Services and EndpointSlices come from the Kubernetes API through client-go
// informers, or from manifest files. Every change publishes an immutable
// snapshot that ServeDNS reads with one atomic load, one lookup in a
// copy-on-write map (the service's index) and a binary search among the
// service's sorted members; the records are made from the members' packed
// addresses when asked.
package headless

import (
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/miekg/dns"
)

const pluginName = "headless"

// Headless is the plugin. Build it with setup; its zero value serves
// nothing.
type Headless struct {
	Next plugin.Handler
	Fall fall.F

	// zones are all zones served, lowercased and fully qualified; reverse
	// tells which of them are reverse zones.
	zones   []string
	reverse []bool
	flat    []bool // per zone: its names are looked up without a service index (see flatZone)
	cfg     config
	negTTL  uint32
	soa     []dns.SOA // one template per zone; ServeDNS fills in the serial

	// kube answers, for the kubernetes plugin after this one, its
	// NXDOMAIN for services it does not have (see kubeNX); nil when the
	// next plugin is not the kubernetes plugin.
	kube *kubeNX

	src     source
	builder *builder
	snap    atomic.Pointer[snapshot]
}

// config is what one plugin instance serves and how: its zones by kind,
// lowercased and fully qualified, the TTL of its records and how it names
// endpoints. Records and service indexes are made with it.
type config struct {
	forward []string // the first is the primary zone: PTR targets live there
	reverse []string
	ttl     uint32
	// podNames names endpoints without a hostname after the pod their
	// targetRef names, as the kubernetes plugin's endpoint_pod_names does.
	podNames bool
}

// source feeds the plugin with Services and EndpointSlices. start calls
// publish (from one goroutine at a time) whenever services change;
// stop ends it.
type source interface {
	start(publish func(l lister, keys []svcKey)) error
	stop()
}

// publish rebuilds the named services and makes the result visible to
// ServeDNS.
// A build that changed nothing publishes nothing: the snapshot, and with it
// the SOA serial, stay as they are.
func (h *Headless) publish(l lister, keys []svcKey) {
	if next := h.builder.apply(l, keys); next != h.snap.Load() {
		h.snap.Store(next)
	}
}

// newSOA makes the SOA template of one zone. The negative TTL is both the
// record's TTL and its MINIMUM, so that resolvers cache an NXDOMAIN or
// NODATA for that long and no longer (RFC 2308).
func newSOA(zone, primary string, negTTL uint32) dns.SOA {
	return dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negTTL},
		Ns:      "ns.dns." + primary,
		Mbox:    "hostmaster." + primary,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  negTTL,
	}
}
