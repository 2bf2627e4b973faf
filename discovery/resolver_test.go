package discovery

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// serve starts a DNS server on 127.0.0.1 over UDP and TCP, on one port.
func serve(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		udp := &dns.Server{PacketConn: pc, Handler: h}
		tcp := &dns.Server{Listener: ln, Handler: h}
		go udp.ActivateAndServe()
		go tcp.ActivateAndServe()
		t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
		return pc.LocalAddr().String()
	}
	t.Fatal("no port free for UDP and TCP")
	return ""
}

// A reply too large for 512 bytes comes back truncated over UDP; the
// resolver asks again over TCP and gets all of it.
func TestDNSResolverRetriesTruncatedOverTCP(t *testing.T) {
	var udpQueries, tcpQueries atomic.Int32
	full := srvReply(5, webs(40)...).msg
	addr := serve(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := full.Copy()
		m.SetReply(r)
		m.Answer, m.Extra = full.Answer, full.Extra
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			udpQueries.Add(1)
			m.Truncate(dns.MinMsgSize)
		} else {
			tcpQueries.Add(1)
		}
		w.WriteMsg(m)
	})
	var truncated atomic.Int32
	r := &DNSResolver{Servers: []string{addr}, Timeout: 2 * time.Second, Truncated: func() { truncated.Add(1) }}
	m, err := r.Exchange(context.Background(), svcName, dns.TypeSRV)
	if err != nil {
		t.Fatal(err)
	}
	a, err := parseSRV(m, svcName)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.peers) != 40 || m.Truncated {
		t.Fatalf("%d peers (truncated %v), want 40", len(a.peers), m.Truncated)
	}
	if udpQueries.Load() != 1 || tcpQueries.Load() != 1 || truncated.Load() != 1 {
		t.Fatalf("udp %d, tcp %d, truncated %d: want one each", udpQueries.Load(), tcpQueries.Load(), truncated.Load())
	}
}

// A small reply is used as it comes over UDP.
func TestDNSResolverSmallReplyStaysOnUDP(t *testing.T) {
	var tcpQueries atomic.Int32
	addr := serve(t, func(w dns.ResponseWriter, r *dns.Msg) {
		if _, udp := w.RemoteAddr().(*net.UDPAddr); !udp {
			tcpQueries.Add(1)
		}
		m := srvReply(5, "web-0").msg.Copy()
		m.SetReply(r)
		w.WriteMsg(m)
	})
	r := &DNSResolver{Servers: []string{addr}, Truncated: func() { t.Error("truncated") }}
	if _, err := r.Exchange(context.Background(), svcName, dns.TypeSRV); err != nil {
		t.Fatal(err)
	}
	if tcpQueries.Load() != 0 {
		t.Fatal("asked over TCP")
	}
}

// A server that fails or answers SERVFAIL hands the question to the next;
// NXDOMAIN is an answer and stops there.
func TestDNSResolverFallsBackToNextServer(t *testing.T) {
	servfail := serve(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		w.WriteMsg(m)
	})
	nx := serve(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		w.WriteMsg(m)
	})
	good := serve(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := srvReply(5, "web-0").msg.Copy()
		m.SetReply(r)
		w.WriteMsg(m)
	})
	r := &DNSResolver{Servers: []string{servfail, good}, Timeout: time.Second}
	m, err := r.Exchange(context.Background(), svcName, dns.TypeSRV)
	if err != nil || len(m.Answer) != 2 {
		t.Fatalf("%v, %v", m, err)
	}
	r = &DNSResolver{Servers: []string{nx, good}, Timeout: time.Second}
	if m, err = r.Exchange(context.Background(), svcName, dns.TypeSRV); err != nil || m.Rcode != dns.RcodeNameError {
		t.Fatalf("NXDOMAIN not taken as the answer: %v, %v", m, err)
	}
	r = &DNSResolver{Servers: []string{servfail}, Timeout: time.Second}
	if _, err = r.Exchange(context.Background(), svcName, dns.TypeSRV); err == nil || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Fatalf("err = %v, want SERVFAIL named", err)
	}
	if _, err = (&DNSResolver{}).Exchange(context.Background(), svcName, dns.TypeSRV); err == nil {
		t.Fatal("no servers, no error")
	}
}

// A server that ignores the 512-byte limit and sends a large reply over UDP
// without TC is read whole, not taken for a failure.
func TestDNSResolverReadsOversizedUDP(t *testing.T) {
	full := srvReply(5, webs(40)...).msg
	addr := serve(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := full.Copy()
		m.SetReply(r)
		m.Answer, m.Extra = full.Answer, full.Extra
		w.WriteMsg(m)
	})
	r := &DNSResolver{Servers: []string{addr}, Truncated: func() { t.Error("truncated") }}
	m, err := r.Exchange(context.Background(), svcName, dns.TypeSRV)
	if err != nil || len(m.Answer) != 80 {
		t.Fatalf("%v answers, %v", len(m.Answer), err)
	}
	if m.IsEdns0() != nil {
		t.Fatal("reply has EDNS0")
	}
}
