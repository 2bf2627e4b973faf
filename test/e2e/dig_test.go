//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

func freeTCP() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

func udpFree(port string) bool {
	c, err := net.ListenPacket("udp", "127.0.0.1:"+port)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// dig asks CoreDNS with the real dig and parses what it prints back into
// a dns.Msg: header (rcode and flags) and the three sections. opts are
// dig options such as +tcp, +noedns or +bufsize=4096.
func dig(name string, qtype uint16, opts ...string) (*dns.Msg, error) {
	args := []string{"@127.0.0.1", "-p", dnsPort, "+tries=1", "+time=3", "+noall", "+comments", "+answer", "+authority", "+additional", "+ignore"}
	args = append(args, opts...)
	args = append(args, name, dns.TypeToString[qtype])
	out, err := exec.Command("dig", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return parseDig(string(out))
}

func parseDig(out string) (*dns.Msg, error) {
	m := new(dns.Msg)
	var section *[]dns.RR
	header := false
	s := bufio.NewScanner(strings.NewReader(out))
	for s.Scan() {
		line := s.Text()
		switch {
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			header = true
			status := between(line, "status: ", ",")
			rc, ok := dns.StringToRcode[status]
			if !ok {
				return nil, fmt.Errorf("unknown status %q", status)
			}
			m.Rcode = rc
		case strings.HasPrefix(line, ";; flags:"):
			flags := strings.Fields(between(line, ";; flags:", ";"))
			for _, f := range flags {
				switch f {
				case "qr":
					m.Response = true
				case "aa":
					m.Authoritative = true
				case "tc":
					m.Truncated = true
				case "rd":
					m.RecursionDesired = true
				case "ra":
					m.RecursionAvailable = true
				}
			}
		case line == ";; ANSWER SECTION:":
			section = &m.Answer
		case line == ";; AUTHORITY SECTION:":
			section = &m.Ns
		case line == ";; ADDITIONAL SECTION:":
			section = &m.Extra
		case strings.TrimSpace(line) == "":
			section = nil
		case strings.HasPrefix(line, ";"):
		case section != nil:
			rr, err := dns.NewRR(line)
			if err != nil {
				return nil, fmt.Errorf("parse %q: %v", line, err)
			}
			*section = append(*section, rr)
		}
	}
	if !header {
		return nil, fmt.Errorf("no answer in dig's output:\n%s", out)
	}
	return m, nil
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if j := strings.Index(s, to); j >= 0 {
		s = s[:j]
	}
	return strings.TrimSpace(s)
}

// check digs tc's question and compares the answer like the unit tables.
func check(t *testing.T, tc test.Case, opts ...string) *dns.Msg {
	t.Helper()
	m, err := dig(tc.Qname, tc.Qtype, opts...)
	if err != nil {
		t.Fatal(err)
	}
	// SortAndCheck sorts the answer; sort the expectation the same way.
	for _, s := range [][]dns.RR{tc.Answer, tc.Ns, tc.Extra} {
		sort.Sort(test.RRSet(s))
	}
	if err := test.SortAndCheck(m, tc); err != nil {
		t.Errorf("dig %s %s: %v\n%s", tc.Qname, dns.TypeToString[tc.Qtype], err, m)
	}
	return m
}

// eventually polls dig every 20ms until cond accepts the answer, and
// returns how long that took. It fails the test after the timeout with the
// last answer.
func eventually(t *testing.T, timeout time.Duration, name string, qtype uint16, cond func(*dns.Msg) bool, opts ...string) time.Duration {
	t.Helper()
	start := time.Now()
	pollEvery(t, 20*time.Millisecond, timeout, name+" "+dns.TypeToString[qtype]+": the expected answer", func() (bool, string) {
		m, err := dig(name, qtype, opts...)
		if err != nil {
			return false, err.Error()
		}
		return cond(m), "\n" + m.String()
	})
	return time.Since(start)
}
