package headless

import "github.com/miekg/dns"

// appendCopies appends copies of the records in src to dst, renamed to owner
// unless owner is empty. It allocates once for the copies however many
// there are, and never lets the caller touch the published records.
func appendCopies[T any, P interface {
	*T
	dns.RR
}](dst []dns.RR, src []T, owner string) []dns.RR {
	if len(src) == 0 {
		return dst
	}
	vals := make([]T, len(src))
	copy(vals, src)
	if dst == nil {
		dst = make([]dns.RR, 0, len(src))
	}
	for i := range vals {
		rr := P(&vals[i])
		if owner != "" {
			rr.Header().Name = owner
		}
		dst = append(dst, rr)
	}
	return dst
}
