package discovery

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// DefaultDomain is the cluster domain when neither -domain nor the search
// list in resolv.conf names one.
const DefaultDomain = "cluster.local"

// ResolvConf is what peer-finder takes from /etc/resolv.conf.
type ResolvConf struct {
	Servers []string // host:port, in file order
	Search  []string // search domains, without the final dot
}

// ParseResolvConf reads a resolv.conf file.
func ParseResolvConf(r io.Reader) (ResolvConf, error) {
	c, err := dns.ClientConfigFromReader(r)
	if err != nil {
		return ResolvConf{}, fmt.Errorf("parse resolv.conf: %w", err)
	}
	var out ResolvConf
	for _, s := range c.Servers {
		out.Servers = append(out.Servers, net.JoinHostPort(s, c.Port))
	}
	for _, s := range c.Search {
		out.Search = append(out.Search, strings.TrimSuffix(s, "."))
	}
	return out, nil
}

// Domain is the cluster domain that the search list implies: a pod's list
// reads "<ns>.svc.<domain> svc.<domain> <domain>", so the first entry of
// the form svc.<domain> gives it, else the part after ".svc." of an entry
// such as <ns>.svc.<domain>. It is "" when no entry has that form.
func (c ResolvConf) Domain() string {
	for _, s := range c.Search {
		if d, ok := strings.CutPrefix(strings.ToLower(s), "svc."); ok && d != "" {
			return d
		}
	}
	for _, s := range c.Search {
		if _, d, ok := strings.Cut(strings.ToLower(s), ".svc."); ok && d != "" {
			return d
		}
	}
	return ""
}
