package discovery

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
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

// serveAnswer answers every question with the peers that hosts returns, as
// a server that honours EDNS0 does: over UDP it keeps the reply to the
// client's advertised buffer, or to 512 bytes without EDNS0, and sets TC
// beyond. It counts the queries by transport and records the buffer sizes
// asked with (0 without EDNS0).
type answerServer struct {
	udp, tcp atomic.Int32
	sizes    chan uint16
}

func serveAnswer(t *testing.T, hosts func() []string) (string, *answerServer) {
	t.Helper()
	s := &answerServer{sizes: make(chan uint16, 100)}
	addr := serve(t, func(w dns.ResponseWriter, r *dns.Msg) {
		full := srvReply(5, hosts()...).msg
		m := full.Copy()
		m.SetReply(r)
		m.Answer, m.Extra = full.Answer, full.Extra
		size := uint16(0)
		if o := r.IsEdns0(); o != nil {
			size = o.UDPSize()
			m.SetEdns0(size, false)
		}
		select {
		case s.sizes <- size:
		default:
		}
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			s.udp.Add(1)
			m.Truncate(max(int(size), dns.MinMsgSize))
		} else {
			s.tcp.Add(1)
		}
		w.WriteMsg(m)
	})
	return addr, s
}

// Four members with two ports take 535 bytes: with EDNS0 they come in one
// UDP reply, where a question without it would be truncated at 512 bytes
// and asked again over TCP.
func TestDNSResolverAsksWithEDNS0(t *testing.T) {
	addr, srv := serveAnswer(t, func() []string { return webs(4) })
	if n := srvReply(5, webs(4)...).msg.Len(); n <= dns.MinMsgSize || n > EDNSBufferSize {
		t.Fatalf("the reply takes %d bytes; the test needs more than 512 and at most %d", n, EDNSBufferSize)
	}
	r := &DNSResolver{Servers: []string{addr}, Truncated: func() { t.Error("truncated") }}
	m, err := r.Exchange(context.Background(), svcName, dns.TypeSRV)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := parseSRV(m, svcName); err != nil || len(a.peers) != 4 {
		t.Fatalf("%d peers, %v; want 4", len(a.peers), err)
	}
	if size := <-srv.sizes; size != EDNSBufferSize {
		t.Fatalf("asked with an EDNS0 buffer of %d bytes, want %d", size, EDNSBufferSize)
	}
	if srv.udp.Load() != 1 || srv.tcp.Load() != 0 {
		t.Fatalf("udp %d, tcp %d queries; want one over UDP", srv.udp.Load(), srv.tcp.Load())
	}
}

// A reply too large for the EDNS0 buffer comes back truncated over UDP;
// the resolver asks again over TCP and gets all of it.
func TestDNSResolverRetriesTruncatedOverTCP(t *testing.T) {
	addr, srv := serveAnswer(t, func() []string { return webs(40) })
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
	if srv.udp.Load() != 1 || srv.tcp.Load() != 1 || truncated.Load() != 1 {
		t.Fatalf("udp %d, tcp %d, truncated %d: want one each", srv.udp.Load(), srv.tcp.Load(), truncated.Load())
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

// petset_peer_finder_tcp_retries_total counts the lookups whose UDP reply
// was truncated: none while the set fits the EDNS0 buffer, one per lookup
// once it does not.
func TestRunCountsTCPRetries(t *testing.T) {
	var n atomic.Int32
	n.Store(4)
	addr, srv := serveAnswer(t, func() []string { return webs(int(n.Load())) })
	c := testConfig(t, "-watch", "-dns-server", addr, "-health-addr", "127.0.0.1:0", "-interval", "5ms")
	addrs := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, c, Options{Stdout: io.Discard, Listening: func(a net.Addr) { addrs <- a }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	metrics := "http://" + (<-addrs).String() + "/metrics"
	sample := func(name string) float64 {
		resp, err := http.Get(metrics)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return -1
	}
	eventually(t, "three lookups of four peers", func() bool { return sample(`petset_peer_finder_lookups_total{result="ok"}`) >= 3 })
	if r := sample("petset_peer_finder_tcp_retries_total"); r != 0 || srv.tcp.Load() != 0 {
		t.Fatalf("tcp retries %v, TCP queries %d, for four peers; want none", r, srv.tcp.Load())
	}
	n.Store(12)
	eventually(t, "twelve peers", func() bool { return sample("petset_peer_finder_peers") == 12 })
	eventually(t, "a second TCP retry", func() bool { return srv.tcp.Load() >= 2 })
	if r := sample("petset_peer_finder_tcp_retries_total"); r < 2 {
		t.Fatalf("tcp retries %v after %d TCP queries, want at least 2", r, srv.tcp.Load())
	}
}
