package headless

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// svcKey names a Service.
type svcKey = types.NamespacedName

// draft is one name inside a service as collect finds it: the ready
// endpoints that share a hostname (or, without one, an address).
type draft struct {
	label    string
	hostname bool // label came from the endpoint's hostname
	v4, v6   []netip.Addr
	ports    []port
	slice    int  // the last slice whose ports were added, plus one
	shared   bool // ports is one slice's list, not the draft's own copy

	one [1]netip.Addr // room for the usual single address
}

type port struct {
	name  string // lowercased; empty for an unnamed port
	proto string // lowercased: tcp, udp, sctp
	num   uint16
}

// IsHeadless reports whether svc is served by this plugin: a Service with
// clusterIP None. ExternalName services are never headless.
func IsHeadless(svc *corev1.Service) bool {
	return svc != nil && svc.Spec.ClusterIP == corev1.ClusterIPNone && svc.Spec.Type != corev1.ServiceTypeExternalName
}

// collector groups the ready endpoints of a service's slices into members
// (see collect), with buffers that one build after another reuses.
type collector struct {
	sum     []byte // for config.sum
	raw     []draft
	byLabel []*draft
	keys    []uint64
	sorted  []*draft
}

// keepDrafts is how many drafts a collector keeps room for between builds.
const keepDrafts = 4096

// release drops the collector's hold on the objects the last collect read,
// and its buffers when they grew beyond keepDrafts.
func (c *collector) release() {
	clear(c.raw)
	clear(c.byLabel)
	clear(c.sorted)
	if cap(c.raw) > keepDrafts || cap(c.sum) > 64*keepDrafts {
		*c = collector{}
	}
}

// collect returns the members of a service's slices, sorted by name (see
// compareLabels), each with sorted distinct addresses and ports. With
// podNames, endpoints without a hostname are named after their pods (see
// endpointLabel). Each address gets a draft of its own; sorting them by
// label brings those that share a name together, and where several do,
// the first in slice order gives the member its kind. What it returns
// lives in c's buffers: it is good until the next collect or release.
func (c *collector) collect(sl []*discovery.EndpointSlice, podNames bool) []*draft {
	n := 0
	for _, s := range sl {
		if s != nil {
			for i := range s.Endpoints {
				n += len(s.Endpoints[i].Addresses)
			}
		}
	}
	raw := c.raw[:0]
	if cap(raw) < n {
		raw = make([]draft, 0, n)
	}
	for si, s := range sl {
		if s == nil || (s.AddressType != discovery.AddressTypeIPv4 && s.AddressType != discovery.AddressTypeIPv6) {
			continue
		}
		ports := slicePorts(s.Ports) // sorted and distinct already
		for i := range s.Endpoints {
			ep := &s.Endpoints[i]
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, text := range ep.Addresses {
				a, err := netip.ParseAddr(text)
				if err != nil || a.Zone() != "" {
					continue
				}
				a = a.Unmap()
				// Each address is named on its own, as the kubernetes
				// plugin names them: an endpoint with two addresses and
				// no hostname has two names.
				label, fromHost := endpointLabel(ep, text, a, podNames)
				raw = append(raw, draft{label: label, hostname: fromHost, ports: ports, shared: true, slice: si + 1, one: [1]netip.Addr{a}})
			}
		}
	}
	c.raw = raw
	byLabel := resize(c.byLabel, len(raw))
	c.byLabel = byLabel
	for i := range raw {
		byLabel[i] = &raw[i]
	}
	c.sortDrafts(byLabel)

	out := byLabel[:0]
	for i := 0; i < len(byLabel); {
		m := byLabel[i]
		j := i + 1
		for j < len(byLabel) && byLabel[j].label == m.label {
			j++
		}
		if j == i+1 {
			if m.one[0].Is4() {
				m.v4 = m.one[:1:1]
			} else {
				m.v6 = m.one[:1:1]
			}
		} else {
			for _, o := range byLabel[i:j] {
				if a := o.one[0]; a.Is4() {
					m.v4 = append(m.v4, a)
				} else {
					m.v6 = append(m.v6, a)
				}
				if o.slice != m.slice {
					m.ports, m.shared = append(slices.Clip(m.ports), o.ports...), false
					m.slice = o.slice
				}
			}
			slices.SortFunc(m.v4, netip.Addr.Compare)
			m.v4 = slices.Clip(slices.Compact(m.v4))
			slices.SortFunc(m.v6, netip.Addr.Compare)
			m.v6 = slices.Clip(slices.Compact(m.v6))
			if !m.shared {
				slices.SortFunc(m.ports, comparePort)
				m.ports = slices.Clip(slices.Compact(m.ports))
			}
		}
		out = append(out, m)
		i = j
	}
	return slices.Clip(out)
}

// sortDrafts sorts drafts by label (see compareLabels), and those with
// one label in the order they have. Labels of one service mostly share a
// prefix ("web-"); it sorts numbers made of the 6 bytes after that prefix
// and each draft's position, and compares whole labels only where those 6
// bytes are the same.
func (c *collector) sortDrafts(ds []*draft) {
	if len(ds) < 2 {
		return
	}
	p := len(ds[0].label)
	for _, d := range ds[1:] {
		p = min(p, len(d.label))
		for i := 0; i < p; i++ {
			if d.label[i] != ds[0].label[i] {
				p = i
				break
			}
		}
	}
	byLabel := func(a, b *draft) int { return labelOrder(a.label, b.label) }
	if len(ds) > 1<<16 {
		slices.SortStableFunc(ds, byLabel)
		return
	}
	keys := resize(c.keys, len(ds))
	c.keys = keys
	for i, d := range ds {
		keys[i] = labelKey(d.label[p:])&^0xffff | uint64(i)
	}
	slices.Sort(keys)
	sorted := resize(c.sorted, len(ds))
	c.sorted = sorted
	for i, k := range keys {
		sorted[i] = ds[uint16(k)]
	}
	// Labels that the key does not tell apart, in the order they had.
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j]>>16 == keys[i]>>16 {
			j++
		}
		if j > i+1 {
			slices.SortStableFunc(sorted[i:j], byLabel)
		}
		i = j
	}
	copy(ds, sorted)
}

// resize returns s with length n, reusing its array when it has room.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// labelKey is the first 8 bytes of s+".", padded with zeros, as a big
// endian number: keys that differ order as compareLabels orders the labels.
func labelKey(s string) uint64 {
	var k uint64
	for i := range 8 {
		var c byte
		switch {
		case i < len(s):
			c = s[i]
		case i == len(s):
			c = '.'
		}
		k = k<<8 | uint64(c)
	}
	return k
}

func slicePorts(in []discovery.EndpointPort) []port {
	out := make([]port, 0, len(in))
	for _, p := range in {
		if p.Port == nil || *p.Port < 0 || *p.Port > 65535 {
			continue // a nil port means "all ports": nothing to put in an SRV record
		}
		q := port{num: uint16(*p.Port), proto: "tcp"}
		if p.Protocol != nil {
			q.proto = strings.ToLower(string(*p.Protocol))
		}
		if p.Name != nil && *p.Name != "" {
			if !validLabel(*p.Name) {
				continue
			}
			q.name = strings.ToLower(*p.Name)
		}
		out = append(out, q)
	}
	slices.SortFunc(out, comparePort)
	return slices.Clip(slices.Compact(out))
}

func comparePort(a, b port) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	if c := strings.Compare(a.proto, b.proto); c != 0 {
		return c
	}
	return int(a.num) - int(b.num)
}

// portsOrNone returns ps, or a single port 0 when a service has no ports,
// so that its members are still found through the port-less SRV query.
func portsOrNone(ps []port) []port {
	if len(ps) == 0 {
		return []port{{}}
	}
	return ps
}

// sum is a digest of everything build reads: the service's name and its
// members. Two equal sums give the same fragment, so a rebuild whose sum
// did not change can keep what it served.
// buf is room to reuse; it returns it, grown, for the next call.
func (c *config) sum(svc *corev1.Service, members []*draft, buf []byte) ([32]byte, []byte) {
	buf = buf[:0]
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	str(strings.ToLower(svc.Namespace))
	str(strings.ToLower(svc.Name))
	for _, m := range members {
		str(m.label)
		buf = append(buf, boolByte(m.hostname))
		buf = binary.AppendUvarint(buf, uint64(len(m.v4)))
		for _, a := range m.v4 {
			b := a.As4()
			buf = append(buf, b[:]...)
		}
		buf = binary.AppendUvarint(buf, uint64(len(m.v6)))
		for _, a := range m.v6 {
			b := a.As16()
			buf = append(buf, b[:]...)
		}
		buf = binary.AppendUvarint(buf, uint64(len(m.ports)))
		for _, p := range m.ports {
			str(p.name)
			str(p.proto)
			buf = binary.BigEndian.AppendUint16(buf, p.num)
		}
	}
	return sha256.Sum256(buf), buf
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
