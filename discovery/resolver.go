package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/miekg/dns"
)

// Resolver sends one DNS question and returns the reply. DNSResolver is the
// real one; tests use fakes.
type Resolver interface {
	Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)
}

// DNSResolver asks its servers in turn over UDP with an EDNS0 buffer of
// EDNSBufferSize bytes, and again over TCP when a UDP reply comes back
// truncated all the same. A server that fails, or answers SERVFAIL or
// REFUSED, hands the question to the next one.
type DNSResolver struct {
	Servers []string      // host:port
	Timeout time.Duration // per exchange; 0 means 2s
	Log     logr.Logger
	// Truncated, if set, is called each time a UDP reply was truncated and
	// the question is asked again over TCP.
	Truncated func()
}

// EDNSBufferSize is the UDP payload size peer-finder advertises: DNS flag
// day 2020's default, which common paths carry unfragmented. It holds the
// answer for nine members with two ports each, where 512 bytes hold three.
const EDNSBufferSize = 1232

// Exchange implements Resolver.
func (r *DNSResolver) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if len(r.Servers) == 0 {
		return nil, errors.New("no DNS server configured")
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(EDNSBufferSize, false)
	var errs []error
	for _, server := range r.Servers {
		in, err := exchangeUDP(ctx, q, server, timeout)
		if err == nil && in.Truncated {
			r.Log.V(1).Info("UDP reply truncated, asking again over TCP", "name", q.Question[0].Name, "server", server, "answers", len(in.Answer))
			if r.Truncated != nil {
				r.Truncated()
			}
			tcp := &dns.Client{Net: "tcp", Timeout: timeout}
			in, _, err = tcp.ExchangeContext(ctx, q, server)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", server, err))
		case in.Rcode == dns.RcodeServerFailure || in.Rcode == dns.RcodeRefused:
			errs = append(errs, fmt.Errorf("%s: %s", server, rcodeName(in.Rcode)))
		default:
			return in, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("lookup %s %s: %w", strings.TrimSuffix(q.Question[0].Name, "."), dns.TypeToString[qtype], errors.Join(errs...))
}

// exchangeUDP asks q of server over UDP. Servers keep their replies to the
// EDNS0 buffer size q advertises and set TC beyond it; the read buffer is
// larger all the same, for a server that sends more anyway (dns.Client
// would read no more than the advertised size).
func exchangeUDP(ctx context.Context, q *dns.Msg, server string, timeout time.Duration) (*dns.Msg, error) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	co, err := (&dns.Client{Net: "udp", Timeout: timeout}).DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	defer context.AfterFunc(ctx, func() { co.Close() })()
	co.SetDeadline(deadline)
	co.UDPSize = dns.MaxMsgSize
	if err := co.WriteMsg(q); err != nil {
		return nil, err
	}
	for {
		// A reply with another ID answers an earlier question.
		r, err := co.ReadMsg()
		if err != nil || r.Id == q.Id {
			return r, err
		}
	}
}

// withPort adds DNS's port 53 to a server address without one.
func withPort(server string) string {
	if _, _, err := net.SplitHostPort(server); err == nil {
		return server
	}
	if strings.HasPrefix(server, "[") && strings.HasSuffix(server, "]") {
		server = server[1 : len(server)-1]
	}
	return net.JoinHostPort(server, "53")
}
