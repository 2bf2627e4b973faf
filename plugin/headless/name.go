package headless

// maxName bounds the names fold takes. RFC 1035's 255 octets on the wire
// are 254 characters in presentation form, root dot included; only escapes
// make a name longer, and the plugin owns no name with one.
const maxName = 255

// fold writes the ASCII-lowercased form of name into buf and returns the
// used part together with its FNV-1a hash. It never allocates; names longer
// than buf report ok=false. Only A-Z are folded: DNS compares case
// insensitively in ASCII alone (RFC 4343).
//
//	fold(&buf, "Web-0.WEB.default.svc.cluster.local.") // "web-0.web.default.svc.cluster.local."
func fold(buf *[maxName]byte, name string) (key []byte, hash uint32, ok bool) {
	if len(name) > maxName {
		return nil, 0, false
	}
	hash = fnvOffset
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
		hash = (hash ^ uint32(c)) * fnvPrime
	}
	return buf[:len(name)], hash, true
}

const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

// hash is the FNV-1a hash that fold computes, for a name already folded.
func hash[T ~string | ~[]byte](s T) uint32 {
	h := uint32(fnvOffset)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * fnvPrime
	}
	return h
}

// inZone reports whether the folded name key is zone or a name below it.
// zone is lowercased and fully qualified. As with dns.IsSubDomain, which
// CoreDNS's zone matching uses, the labels must match: in
// `foo\.cluster.local.` the dot before "cluster" is part of the label
// `foo\.cluster`, so that name is not in cluster.local.
func inZone(key []byte, zone string) bool {
	if zone == "." {
		return true
	}
	n := len(key) - len(zone)
	if n < 0 || string(key[n:]) != zone {
		return false
	}
	return n == 0 || key[n-1] == '.' && !escaped(key, n-1)
}

// escaped reports whether key[i] is escaped: preceded by an odd number of
// backslashes.
func escaped(key []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && key[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// hasEscape reports whether prefix holds a backslash escape. The names the
// plugin owns are made of letters, digits, hyphens and underscores only, so
// a name with an escape below the zone is never one of them.
func hasEscape(prefix []byte) bool {
	for _, c := range prefix {
		if c == '\\' {
			return true
		}
	}
	return false
}

// apexStart finds the service name in prefix, the part of a folded name
// before its zone ("web-0.web.ns.svc."), and returns the offset of the
// service's label ("web"), or -1 when prefix is not at or below
// <svc>.<ns>.svc.
func apexStart(prefix []byte) int {
	end := len(prefix) - 1 // the dot that ends the "svc" label
	if end < 0 || prefix[end] != '.' {
		return -1
	}
	s := prevDot(prefix, end)
	if string(prefix[s+1:end]) != "svc" || s < 0 {
		return -1
	}
	n := prevDot(prefix, s) // prefix[n+1:s] is the namespace
	if n < 0 || n+1 == s {
		return -1
	}
	a := prevDot(prefix, n) // prefix[a+1:n] is the service
	if a+1 == n {
		return -1
	}
	return a + 1
}

// prevDot returns the index of the last '.' before i, or -1.
func prevDot(b []byte, i int) int {
	for j := i - 1; j >= 0; j-- {
		if b[j] == '.' {
			return j
		}
	}
	return -1
}

// inZones reports whether name, lowercased and without escapes, is one of
// zones or below one.
func inZones[T ~string | ~[]byte](name T, zones []string) bool {
	for _, z := range zones {
		if z == "." || string(name) == z || len(name) > len(z) && name[len(name)-len(z)-1] == '.' && string(name[len(name)-len(z):]) == z {
			return true
		}
	}
	return false
}
