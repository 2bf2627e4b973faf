package headless

import (
	"net/netip"
	"strconv"
)

// parseReverse reads the address of a reverse name in the form
// appendReverse writes: four decimal labels without leading zeros under
// in-addr.arpa., or 32 lowercase hex nibbles under ip6.arpa. Any other
// name, such as a partial one or 010.0.0.10.in-addr.arpa., reports false:
// it is no record's owner. key is folded; it never allocates.
//
//	parseReverse("5.1.244.10.in-addr.arpa.") // 10.244.1.5
func parseReverse(key []byte) (x hit, ok bool) {
	const v4Suffix, v6Suffix = "in-addr.arpa.", "ip6.arpa."
	switch {
	case len(key) > len(v4Suffix) && string(key[len(key)-len(v4Suffix):]) == v4Suffix:
		b := key[:len(key)-len(v4Suffix)]
		for i := 3; i >= 0; i-- {
			n, v := 0, 0
			for n < len(b) && b[n] != '.' {
				c := b[n]
				if c < '0' || c > '9' || n == 3 || n == 1 && b[0] == '0' {
					return hit{}, false
				}
				v = v*10 + int(c-'0')
				n++
			}
			if n == 0 || n == len(b) || v > 255 {
				return hit{}, false
			}
			x.addr[i] = byte(v)
			b = b[n+1:]
		}
		if len(b) != 0 {
			return hit{}, false
		}
		x.v4 = true
		return x, true
	case len(key) == 64+len(v6Suffix) && string(key[64:]) == v6Suffix:
		for i := 0; i < 32; i++ {
			c, dot := key[2*i], key[2*i+1]
			var v byte
			switch {
			case '0' <= c && c <= '9':
				v = c - '0'
			case 'a' <= c && c <= 'f':
				v = c - 'a' + 10
			default:
				return hit{}, false
			}
			if dot != '.' {
				return hit{}, false
			}
			// Nibble i counts from the end of the address, low half first.
			j := 15 - i/2
			if i%2 == 0 {
				x.addr[j] |= v
			} else {
				x.addr[j] |= v << 4
			}
		}
		return x, true
	}
	return hit{}, false
}

// maxReverse is the length of the longest reverse name, an IPv6 one.
const maxReverse = 64 + len("ip6.arpa.")

// addrInZones reports whether the reverse name of a is in the reverse
// zones.
func (c *config) addrInZones(a netip.Addr) bool {
	for _, r := range c.reverse {
		// The usual zones hold every address of a family.
		if r == "arpa." || a.Is4() && r == "in-addr.arpa." || a.Is6() && r == "ip6.arpa." {
			return true
		}
	}
	var buf [maxReverse]byte
	return inZones(appendReverse(buf[:0], a), c.reverse)
}

// appendReverse appends the reverse name of a to b.
func appendReverse(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		for i := 3; i >= 0; i-- {
			b = strconv.AppendUint(b, uint64(v[i]), 10)
			b = append(b, '.')
		}
		return append(b, "in-addr.arpa."...)
	}
	const hex = "0123456789abcdef"
	v := a.As16()
	for i := 15; i >= 0; i-- {
		b = append(b, hex[v[i]&0xf], '.', hex[v[i]>>4], '.')
	}
	return append(b, "ip6.arpa."...)
}
