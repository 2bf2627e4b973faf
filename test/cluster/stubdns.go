package cluster

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// stubDNS is the upstream resolver of the real node (the kubelet's
// resolvConf, so pods with dnsPolicy Default and CoreDNS's forward ask
// it): it answers every question itself, NXDOMAIN under the root's SOA,
// so nothing a pod or CoreDNS forwards leaves the machine. It listens on
// the node's address, not 127.0.0.1: inside a pod, that is the pod.
type stubDNS struct {
	udp, tcp *dns.Server
	queries  atomic.Int64
}

// startStubDNS serves on addr (host:port), UDP and TCP. Its sockets may
// share the port with a server bound to all addresses (a CoreDNS of
// another test on :53), which then no longer gets addr's packets.
func startStubDNS(addr string) (*stubDNS, error) {
	s := &stubDNS{}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) {
			err = errors.Join(syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1),
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1))
		})
		return err
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		pc.Close()
		return nil, err
	}
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: l, Handler: s}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	return s, nil
}

// ServeDNS answers NXDOMAIN, or NODATA for the root itself (what a
// forwarder's health check asks).
func (s *stubDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if len(r.Question) == 1 && r.Question[0].Name != "." {
		m.Rcode = dns.RcodeNameError
	}
	m.Ns = []dns.RR{&dns.SOA{
		Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 5},
		Ns:  "stub.testbed.", Mbox: "hostmaster.stub.testbed.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 5,
	}}
	w.WriteMsg(m)
}

// Queries is how many questions the stub answered.
func (s *stubDNS) Queries() int64 { return s.queries.Load() }

func (s *stubDNS) stop() error {
	return errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
}
