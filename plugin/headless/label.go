package headless

import (
	"net/netip"
	"strings"

	discovery "k8s.io/api/discovery/v1"
)

// endpointLabel is the first label of one address of ep inside its
// service, the rule of CoreDNS's kubernetes plugin (endpointHostname), in
// this order:
//
//  1. the endpoint's hostname;
//  2. with podNames (endpoint_pod_names), the name of the object its
//     targetRef names (the pod), when it is shorter than 64 characters,
//     the kubernetes plugin's only test; a pod name with dots ("a.b") is
//     then several labels, as in the kubernetes plugin's names;
//  3. the address as the slice writes it, with dots turned into dashes
//     (10.244.1.5 -> 10-244-1-5), or else colons turned into dashes and
//     a "0" after a trailing dash (fd00::5 -> fd00--5, fd00:: -> fd00--0;
//     a leading dash stays: ::1 -> --1).
//
// fromHost reports case 1: only such names get PTR records. text is the
// address as the slice holds it and a its parsed form; a text that the
// rule does not turn into a label (an IPv4-mapped IPv6 address) is named
// after a instead. Labels are lowercased.
func endpointLabel(ep *discovery.Endpoint, text string, a netip.Addr, podNames bool) (label string, fromHost bool) {
	if ep.Hostname != nil && validLabel(*ep.Hostname) {
		return strings.ToLower(*ep.Hostname), true
	}
	if podNames && ep.TargetRef != nil && podLabel(ep.TargetRef.Name) {
		return strings.ToLower(ep.TargetRef.Name), false
	}
	if l := addressLabel(text); validLabel(l) {
		return strings.ToLower(l), false
	}
	return strings.ToLower(addressLabel(a.String())), false
}

// addressLabel turns an address in text form into a label the way the
// kubernetes plugin does: dots become dashes; failing that, colons become
// dashes and a trailing dash gets a "0", since a label may not end in one.
//
//	addressLabel("10.244.1.5") // "10-244-1-5"
//	addressLabel("fd00::")     // "fd00--0"
func addressLabel(addr string) string {
	if strings.Contains(addr, ".") {
		return strings.ReplaceAll(addr, ".", "-")
	}
	if strings.Contains(addr, ":") {
		l := strings.ReplaceAll(addr, ":", "-")
		if strings.HasSuffix(l, "-") {
			l += "0"
		}
		return l
	}
	return ""
}

// podLabel reports whether a targetRef name names an endpoint: shorter than
// 64 characters, as the kubernetes plugin requires, and made of valid
// labels (a pod name is a DNS subdomain, so it always is).
func podLabel(name string) bool {
	if len(name) >= 64 {
		return false
	}
	for {
		l, rest, more := strings.Cut(name, ".")
		if !validLabel(l) {
			return false
		}
		if !more {
			return true
		}
		name = rest
	}
}

// validLabel reports whether s can be one label of the names the plugin
// serves: 1 to 63 letters, digits and hyphens. Unlike an RFC 1123 label it
// may begin or end with a hyphen, as the kubernetes plugin's names may
// (::1 is --1); the API server lets only RFC 1123 labels into hostnames.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
