package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/miekg/dns"
)

// syncBuffer is a bytes.Buffer that hooks and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, ctx context.Context, c *Config, res Resolver) (string, error) {
	t.Helper()
	var out syncBuffer
	err := Run(ctx, c, Options{Resolver: res, Stdout: &out, Stderr: io.Discard, Jitter: func() float64 { return 0.5 }})
	return out.String(), err
}

// script writes an executable shell script into dir.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// eventually polls cond until it holds or 10 seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunPrintsPeersInOrdinalOrder(t *testing.T) {
	hosts := webs(12)
	rev := append([]string{}, hosts...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	res := newFake().on(svcName, dns.TypeSRV, srvReply(5, rev...))
	out, err := run(t, context.Background(), testConfig(t), res)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(fqdns(hosts...), "\n") + "\n"; out != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", out, want)
	}
}

func TestRunFormatJSON(t *testing.T) {
	res := newFake().on(svcName, dns.TypeSRV, srvReply(5, "web-1", "web-0"))
	out, err := run(t, context.Background(), testConfig(t, "-format", "json", "-hostname", "web-1"), res)
	if err != nil {
		t.Fatal(err)
	}
	var d Data
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if d.Self != "web-1.web.demo.svc.cluster.local" || d.Ordinal != 1 || d.Host != "web-1" || len(d.Peers) != 2 ||
		d.Peers[0].Host != "web-0" || !reflect.DeepEqual(d.Peers[1].Ports, []int{7946, 8080}) || d.Peers[1].Addresses[0] != "10.244.0.2" {
		t.Fatalf("json: %+v", d)
	}
}

// The original's contract: nothing happens until this pod's own name is
// among the peers, and -min-peers waits for a quorum.
func TestRunWaitsForSelfAndMinPeers(t *testing.T) {
	res := newFake().on(svcName, dns.TypeSRV,
		rcodeReply(svcName, dns.TypeSRV, dns.RcodeNameError, 0),
		reply{err: errors.New("connection refused")},
		srvReply(0, "web-1"),
		srvReply(0, "web-0", "web-1"),
		srvReply(0, "web-0", "web-1", "web-2"))
	out, err := run(t, context.Background(), testConfig(t, "-min-peers", "3"), res)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(fqdns("web-0", "web-1", "web-2"), "\n") + "\n"; out != want {
		t.Fatalf("stdout %q, want %q", out, want)
	}
	if n := res.count(svcName, dns.TypeSRV); n != 5 {
		t.Fatalf("%d lookups, want 5", n)
	}
}

// While its own name or -min-peers is missing, peer-finder asks again
// every -interval, whatever the answer's TTL (or the SOA's negative TTL);
// once it has acted on a complete set, it waits the TTL between lookups.
func TestRunPollsAtIntervalUntilComplete(t *testing.T) {
	res := newFake().on(svcName, dns.TypeSRV,
		rcodeReply(svcName, dns.TypeSRV, dns.RcodeNameError, 30),
		srvReply(30, "web-1"),
		srvReply(30, "web-0", "web-1"),
		srvReply(30, "web-0", "web-1", "web-2"))
	c := testConfig(t, "-watch", "-min-peers", "3", "-interval", "1s", "-max-interval", "60s")
	var pauses []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{Resolver: res, Stdout: io.Discard, Stderr: io.Discard, Jitter: func() float64 { return 0 },
		sleep: func(_ context.Context, d time.Duration) error {
			pauses = append(pauses, d)
			if len(pauses) == 5 {
				cancel()
				return context.Canceled
			}
			return nil
		}}
	if err := Run(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	s := time.Second
	if want := []time.Duration{s, s, s, 30 * s, 30 * s}; !reflect.DeepEqual(pauses, want) {
		t.Fatalf("pauses %v, want %v", pauses, want)
	}
}

func TestRunTimeoutNamesWhatIsMissing(t *testing.T) {
	tests := []struct {
		name  string
		reply reply
		extra []string
		want  []string
	}{
		{"no such service", rcodeReply(svcName, dns.TypeSRV, dns.RcodeNameError, 1), nil,
			[]string{"no such service web.demo.svc.cluster.local (NXDOMAIN)", "check -service, -ns and -domain", "publishNotReadyAddresses looks unset"}},
		{"own name not published", srvReply(1, "web-1", "web-2"), nil,
			[]string{"own name web-0.web.demo.svc.cluster.local is not published yet", "lists 2 peers", "publishNotReadyAddresses looks unset"}},
		{"too few peers", srvReply(1, "web-0", "web-1"), []string{"-min-peers", "3"},
			[]string{"fewer than -min-peers 3: found 2 (web-0.web.demo.svc.cluster.local, web-1.web.demo.svc.cluster.local)"}},
		{"no SRV records", rcodeReply(svcName, dns.TypeSRV, dns.RcodeSuccess, 1), nil,
			[]string{"answers no SRV records", "at least one port"}},
		{"DNS failing", reply{err: errors.New("i/o timeout")}, nil,
			[]string{"DNS lookups of web.demo.svc.cluster.local failing: i/o timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := newFake().on(svcName, dns.TypeSRV, tc.reply)
			_, err := run(t, context.Background(), testConfig(t, append([]string{"-timeout", "50ms"}, tc.extra...)...), res)
			var te *TimeoutError
			if !errors.As(err, &te) || ExitCode(err) != ExitTimeout {
				t.Fatalf("err = %v (exit %d), want a timeout", err, ExitCode(err))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q\nlacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "timed out after 50ms: ") {
				t.Errorf("message %q", err)
			}
		})
	}
}

func TestRunWaitsForDependencies(t *testing.T) {
	// A socket bound to a loopback port but not listening: dials are
	// refused, and the port stays ours until the test listens on it.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	sock := os.NewFile(uintptr(fd), "bound")
	defer sock.Close()

	res := newFake().
		on("db.example.", dns.TypeA, rcodeReply("db.example.", dns.TypeA, dns.RcodeNameError, 0), rcodeReply("db.example.", dns.TypeA, dns.RcodeNameError, 0), aReply("db.example.", "10.0.0.5")).
		on(svcName, dns.TypeSRV, srvReply(0, "web-0"))
	c := testConfig(t, "-wait-dns", "db.example", "-wait-tcp", addr)

	// Without the listener: a timeout naming the TCP dependency.
	c.Timeout = 100 * time.Millisecond
	_, err = run(t, context.Background(), c, res)
	if err == nil || !strings.Contains(err.Error(), "-wait-tcp "+addr+": dial tcp") {
		t.Fatalf("err = %v, want a timeout naming -wait-tcp %s", err, addr)
	}
	if res.count(svcName, dns.TypeSRV) != 0 {
		t.Fatal("looked up peers before the dependencies were there")
	}

	// With it: the peers.
	if err := syscall.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c.Timeout = 0
	out, err := run(t, context.Background(), c, res)
	if err != nil || out != "web-0.web.demo.svc.cluster.local\n" {
		t.Fatalf("%q, %v", out, err)
	}
}

func TestRunWaitDNSTimeout(t *testing.T) {
	res := newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-0"))
	_, err := run(t, context.Background(), testConfig(t, "-wait-dns", "zk.demo.svc.cluster.local", "-timeout", "30ms"), res)
	if err == nil || !strings.Contains(err.Error(), "-wait-dns zk.demo.svc.cluster.local: no A or AAAA record (NXDOMAIN)") {
		t.Fatalf("err = %v", err)
	}
}

// An -on-start hook gets the peers on stdin, one a line, and PEERS,
// PEER_COUNT, SELF and ORDINAL; its arguments are passed as they are, no
// shell in between; peer-finder exits with its status.
func TestRunOnStart(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	hook := script(t, dir, "on-start", `
cat > "$1.stdin"
{ echo "PEERS=$PEERS"; echo "PEER_COUNT=$PEER_COUNT"; echo "SELF=$SELF"; echo "ORDINAL=$ORDINAL"; echo "ARG2=$2"; echo "FROM_PARENT=$FROM_PARENT"; } > "$1.env"
exit "$EXIT"
`)
	res := newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-10", "web-2", "web-0"))
	for _, code := range []int{0, 7} {
		c := testConfig(t, "-on-start", hook+" "+record+" $(touch${IFS}pwned);x", "-hostname", "web-2")
		var out syncBuffer
		err := Run(context.Background(), c, Options{Resolver: res, Stdout: &out, Stderr: io.Discard,
			Environ: []string{"FROM_PARENT=yes", "EXIT=" + string(rune('0'+code))}})
		if got := ExitCode(err); got != code {
			t.Fatalf("exit %d (%v), want the hook's %d", got, err, code)
		}
		stdin, _ := os.ReadFile(record + ".stdin")
		if want := strings.Join(fqdns("web-0", "web-2", "web-10"), "\n") + "\n"; string(stdin) != want {
			t.Fatalf("stdin %q, want %q", stdin, want)
		}
		env, _ := os.ReadFile(record + ".env")
		want := "PEERS=" + strings.Join(fqdns("web-0", "web-2", "web-10"), ",") + "\nPEER_COUNT=3\nSELF=web-2.web.demo.svc.cluster.local\nORDINAL=2\nARG2=$(touch${IFS}pwned);x\nFROM_PARENT=yes\n"
		if string(env) != want {
			t.Fatalf("env:\n%s\nwant:\n%s", env, want)
		}
		if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
			t.Fatal("a hook argument went through a shell")
		}
		if out.String() != "" {
			t.Fatalf("peer list printed besides the hook: %q", out.String())
		}
	}
}

// -on-change keeps watching: the hook runs on start and on every change of
// the peer set, not when only the order of records or the TTL changes, and
// not for sets without this pod; -on-start, if given, takes the first run.
func TestRunOnChange(t *testing.T) {
	for _, withStart := range []bool{false, true} {
		t.Run(map[bool]string{false: "on-change only", true: "on-start and on-change"}[withStart], func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "log")
			change := script(t, dir, "on-change", `{ echo "change $PEER_COUNT"; cat; } >> `+log+"\n")
			start := script(t, dir, "on-start", `{ echo "start $PEER_COUNT"; cat; } >> `+log+"\n")
			res := newFake().on(svcName, dns.TypeSRV,
				srvReply(0, "web-0"),
				srvReply(0, "web-0"),
				srvReply(3, "web-0"),
				srvReply(0, "web-0", "web-1"),
				srvReply(0, "web-1", "web-0"),
				srvReply(0, "web-1", "web-2"),                               // without this pod: ignored
				reply{err: errors.New("i/o timeout")},                       // keeps the last peers
				rcodeReply(svcName, dns.TypeSRV, dns.RcodeNameError, 0),     // so does NXDOMAIN
				rcodeReply(svcName, dns.TypeSRV, dns.RcodeServerFailure, 0), // and SERVFAIL
				srvReply(0, "web-0", "web-1", "web-2"),
				srvReply(0, "web-0"))
			args := []string{"-on-change", change}
			if withStart {
				args = append(args, "-on-start", start)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := run(t, ctx, testConfig(t, args...), res)
				done <- err
			}()
			// Lookups and hook runs take turns: once the lookup after the
			// last scripted reply has started, every change was acted on.
			eventually(t, "every change", func() bool { return res.count(svcName, dns.TypeSRV) > 13 })
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run after cancel: %v, want nil (a clean stop)", err)
			}
			first := "change"
			if withStart {
				first = "start"
			}
			b, _ := os.ReadFile(log)
			want := first + " 1\nweb-0.web.demo.svc.cluster.local\n" +
				"change 2\nweb-0.web.demo.svc.cluster.local\nweb-1.web.demo.svc.cluster.local\n" +
				"change 3\nweb-0.web.demo.svc.cluster.local\nweb-1.web.demo.svc.cluster.local\nweb-2.web.demo.svc.cluster.local\n" +
				"change 1\nweb-0.web.demo.svc.cluster.local\n"
			if string(b) != want {
				t.Fatalf("invocations:\n%s\nwant:\n%s", b, want)
			}
		})
	}
}

// A failed -on-change is run again (its peer set was not acted on); a
// failed -on-start ends a watching peer-finder with its status.
func TestRunOnChangeRetriesAfterFailure(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	flaky := script(t, dir, "flaky", `echo x >> `+count+`
[ "$(wc -l < `+count+`)" -ge 3 ]
`)
	res := newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-0"))
	ready := filepath.Join(dir, "ready")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := run(t, ctx, testConfig(t, "-on-change", flaky, "-ready-file", ready), res)
		done <- err
	}()
	eventually(t, "ready after the third try", func() bool { _, err := os.Stat(ready); return err == nil })
	b, _ := os.ReadFile(count)
	if n := strings.Count(string(b), "x"); n != 3 {
		t.Fatalf("hook ran %d times before ready, want 3", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	failing := script(t, dir, "failing", "exit 4\n")
	_, err := run(t, context.Background(), testConfig(t, "-on-start", failing, "-on-change", flaky), res)
	if ExitCode(err) != 4 {
		t.Fatalf("failed -on-start with -on-change: %v (exit %d), want exit 4", err, ExitCode(err))
	}
}

// SIGTERM (the context's end) is passed on to a running hook, which may
// finish its work; a watching peer-finder then stops cleanly, a run-once
// one exits with the hook's status.
func TestRunForwardsSIGTERMToHook(t *testing.T) {
	for _, watching := range []bool{true, false} {
		dir := t.TempDir()
		started, termed := filepath.Join(dir, "started"), filepath.Join(dir, "termed")
		hook := script(t, dir, "hook", `trap 'echo term > `+termed+`; exit 9' TERM
touch `+started+`
while :; do sleep 0.05; done
`)
		flagName := "-on-start"
		if watching {
			flagName = "-on-change"
		}
		res := newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-0"))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := run(t, ctx, testConfig(t, flagName, hook), res)
			done <- err
		}()
		eventually(t, "the hook to start", func() bool { _, err := os.Stat(started); return err == nil })
		cancel()
		select {
		case err := <-done:
			if watching && err != nil {
				t.Fatalf("watching: %v, want a clean stop", err)
			}
			if !watching && ExitCode(err) != 9 {
				t.Fatalf("run once: %v (exit %d), want the hook's 9", err, ExitCode(err))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after the hook got SIGTERM")
		}
		if b, _ := os.ReadFile(termed); string(b) != "term\n" {
			t.Fatalf("hook did not get SIGTERM (%q)", b)
		}
	}
}

func TestRunInterruptedBeforeFirstRun(t *testing.T) {
	res := newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-1"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := run(t, ctx, testConfig(t), res)
	if !errors.Is(err, ErrInterrupted) || ExitCode(err) != ExitSignal {
		t.Fatalf("run once: %v, want interrupted", err)
	}
	// The signal that ended the context sets the status: 128+N.
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(30*time.Millisecond, func() { cancel(&SignalError{Signal: tc.sig}) })
		_, err := run(t, ctx, testConfig(t), res)
		if !errors.Is(err, ErrInterrupted) || ExitCode(err) != tc.code {
			t.Fatalf("%v: %v, exit %d; want interrupted, exit %d", tc.sig, err, ExitCode(err), tc.code)
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := run(t, ctx, testConfig(t, "-watch"), res); err != nil {
		t.Fatalf("watching: %v, want a clean stop", err)
	}
}

// -ready-file and -health-addr turn ready after the first successful run,
// not before; /metrics counts lookups.
func TestRunReadiness(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	os.WriteFile(ready, []byte("stale"), 0o644)
	gate := make(chan struct{})
	res := &gatedResolver{fakeResolver: newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-1")), gate: gate}
	c := testConfig(t, "-watch", "-ready-file", ready, "-health-addr", "127.0.0.1:0")
	addrs := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, c, Options{Resolver: res, Stdout: io.Discard, Listening: func(a net.Addr) { addrs <- a }})
	}()
	base := "http://" + (<-addrs).String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	eventually(t, "lookups without this pod", func() bool { return res.count(svcName, dns.TypeSRV) >= 3 })
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d before the first run", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	if _, err := os.Stat(ready); err == nil {
		t.Fatal("stale ready file kept")
	}
	res.on(svcName, dns.TypeSRV, srvReply(0, "web-0", "web-1"))
	close(gate)
	eventually(t, "/readyz", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	if b, _ := os.ReadFile(ready); string(b) != strings.Join(fqdns("web-0", "web-1"), "\n")+"\n" {
		t.Fatalf("ready file %q", b)
	}
	_, metrics := get("/metrics")
	for _, m := range []string{`petset_peer_finder_lookups_total{result="ok"}`, "petset_peer_finder_peers 2", "petset_peer_finder_ready 1"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// gatedResolver answers from its first reply until gate is closed.
type gatedResolver struct {
	*fakeResolver
	gate chan struct{}
}

func (g *gatedResolver) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	select {
	case <-g.gate:
		g.mu.Lock()
		rs := g.replies[fakeKey(name, qtype)]
		g.calls[fakeKey(name, qtype)]++
		g.mu.Unlock()
		return rs[len(rs)-1].msg, nil
	default:
		return g.fakeResolver.Exchange(ctx, name, qtype)
	}
}

// -template with -out and -watch rewrites the file on every change,
// atomically, leaving no temporary files.
func TestRunTemplateOut(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "peers.txt")
	tmpl := filepath.Join(dir, "t.tmpl")
	os.WriteFile(tmpl, []byte(`{{.Host}}/{{.Ordinal}}:{{range .Peers}} {{.Host}}={{join .Addresses ","}}{{end}}`+"\n"), 0o644)
	res := newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-0"), srvReply(0, "web-0"), srvReply(0, "web-0", "web-1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stdout string
	go func() {
		var err error
		stdout, err = run(t, ctx, testConfig(t, "-template", tmpl, "-out", out, "-watch"), res)
		done <- err
	}()
	eventually(t, "the second rendering", func() bool {
		b, _ := os.ReadFile(out)
		return string(b) == "web-0/0: web-0=10.244.0.1 web-1=10.244.0.2\n"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if stdout != "" {
		t.Fatalf("stdout %q with -out", stdout)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("directory holds %d files, want t.tmpl and peers.txt", len(entries))
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := writeAtomic(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "two" || st.Mode().Perm() != 0o644 {
		t.Fatalf("%q %v", b, st.Mode())
	}
	// A directory in the way: an error, the temporary file removed.
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	if err := writeAtomic(filepath.Join(dir, "d"), []byte("x"), 0o644); err == nil {
		t.Fatal("renamed over a directory")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("%d entries left, want f and d", len(entries))
	}
}

func TestDelay(t *testing.T) {
	c := &Config{Interval: time.Second, MaxInterval: 30 * time.Second}
	for _, tc := range []struct {
		ttl      uint32
		failures int
		jitter   float64
		want     time.Duration
	}{
		{0, 0, 0, time.Second},                     // at least -interval
		{5, 0, 0, 5 * time.Second},                 // the TTL
		{300, 0, 0, 30 * time.Second},              // at most -max-interval
		{5, 1, 0, time.Second},                     // failures back off from -interval
		{5, 3, 0, 4 * time.Second},                 // doubling
		{0, 60, 0, 30 * time.Second},               // capped, no overflow
		{5, 0, 0.5, 5*time.Second + time.Second/2}, // jitter adds up to a fifth, never less than the TTL
		{0, 0, 0.999, time.Second + time.Second/5 - time.Second/5000},
	} {
		f := &finder{cfg: c, o: Options{Jitter: func() float64 { return tc.jitter }}}
		if got := f.delay(tc.ttl, tc.failures); got != tc.want {
			t.Errorf("delay(ttl %d, failures %d, jitter %v) = %v, want %v", tc.ttl, tc.failures, tc.jitter, got, tc.want)
		}
	}
}

// A -timeout shorter than one unanswered DNS exchange still says what was
// missing.
func TestRunTimeoutBeforeFirstAnswer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := testConfig(t, "-dns-server", pc.LocalAddr().String(), "-timeout", "100ms")
	err = Run(context.Background(), c, Options{Stdout: io.Discard})
	// Which of the two ends first, the read or the context, is a race;
	// either way the message names the DNS lookup of the service.
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if ExitCode(err) != ExitTimeout || !strings.Contains(msg, "no answer from DNS for web.demo.svc.cluster.local yet") &&
		!strings.Contains(msg, "DNS lookups of web.demo.svc.cluster.local failing") {
		t.Fatalf("%v", err)
	}
}

// A hook of a pod whose hostname has no ordinal gets ORDINAL empty.
func TestHookEnvWithoutOrdinal(t *testing.T) {
	env := hookEnv([]string{"A=1"}, Data{Self: "db.web.demo.svc.cluster.local", Ordinal: -1, Peers: []Peer{{Name: "db.web.demo.svc.cluster.local"}}})
	want := []string{"A=1", "PEERS=db.web.demo.svc.cluster.local", "PEER_COUNT=1", "SELF=db.web.demo.svc.cluster.local", "ORDINAL="}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("%q", env)
	}
}

// A hook that does not read its standard input, with more peers than a
// pipe holds, is not a failure.
func TestRunHookIgnoringStdin(t *testing.T) {
	dir := t.TempDir()
	hook := script(t, dir, "hook", "exit 0\n")
	res := newFake().on(svcName, dns.TypeSRV, srvReply(0, webs(3000)...))
	if _, err := run(t, context.Background(), testConfig(t, "-on-start", hook), res); err != nil {
		t.Fatal(err)
	}
}

// A change that cannot be acted on (its hook keeps failing) is tried
// again after pauses that double from -interval up to -max-interval, even
// though every lookup succeeds; one that works resets them to the TTL.
func TestRunFailingHookBacksOff(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	hook := script(t, dir, "hook", `echo x >> `+count+`
[ "$(wc -l < `+count+`)" -ge 7 ]
`)
	res := newFake().on(svcName, dns.TypeSRV, srvReply(3, "web-0"))
	c := testConfig(t, "-on-change", hook, "-interval", "1s", "-max-interval", "20s")
	var pauses []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{Resolver: res, Stdout: io.Discard, Stderr: io.Discard, Jitter: func() float64 { return 0 },
		sleep: func(_ context.Context, d time.Duration) error {
			pauses = append(pauses, d)
			if len(pauses) == 8 {
				cancel()
				return context.Canceled
			}
			return nil
		}}
	if err := Run(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	s := time.Second
	want := []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 20 * s, 3 * s, 3 * s}
	if !reflect.DeepEqual(pauses, want) {
		t.Fatalf("pauses %v, want %v", pauses, want)
	}
}

// A hook that ignores SIGTERM is killed once the grace period is over; a
// run-once peer-finder then exits 128+9.
func TestRunKillsHookAfterGrace(t *testing.T) {
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	hook := script(t, dir, "hook", `trap '' TERM
touch `+started+`
while :; do sleep 0.05; done
`)
	res := newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-0"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, testConfig(t, "-on-start", hook), Options{Resolver: res, Stdout: io.Discard, Stderr: io.Discard, HookGrace: 100 * time.Millisecond})
	}()
	eventually(t, "the hook to start", func() bool { _, err := os.Stat(started); return err == nil })
	cancel()
	select {
	case err := <-done:
		if ExitCode(err) != 137 {
			t.Fatalf("%v (exit %d), want 137", err, ExitCode(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hook not killed after its grace period")
	}
}

// A template that fails to render leaves -out as it was: exit status 1,
// the old contents, no temporary file.
func TestRunRenderErrorKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "t.tmpl")
	os.WriteFile(tmpl, []byte("{{range .Peers}}{{.Name}}\n{{end}}{{.NoSuchField}}\n"), 0o644)
	out := filepath.Join(dir, "out")
	os.WriteFile(out, []byte("old\n"), 0o644)
	res := newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-0"))
	_, err := run(t, context.Background(), testConfig(t, "-template", tmpl, "-out", out), res)
	if ExitCode(err) != ExitFailure || !strings.Contains(err.Error(), "NoSuchField") {
		t.Fatalf("%v (exit %d)", err, ExitCode(err))
	}
	if b, _ := os.ReadFile(out); string(b) != "old\n" {
		t.Fatalf("-out now %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("%d files, want t.tmpl and out", len(entries))
	}
}

// A hook script without a #! line cannot be exec'ed (ENOEXEC); like
// execvp, peer-finder runs it with /bin/sh, its arguments, stdin and
// environment as they were, and exits with its status.
func TestRunHookWithoutShebang(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	hook := filepath.Join(dir, "on-start")
	if err := os.WriteFile(hook, []byte("cat > \"$1\"; echo \"$2 $PEER_COUNT\" >> \"$1\"; exit 4\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	res := newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-0", "web-1"))
	_, err := run(t, context.Background(), testConfig(t, "-on-start", hook+" "+record+" 'a b'"), res)
	if got := ExitCode(err); got != 4 {
		t.Fatalf("exit %d (%v), want the script's 4", got, err)
	}
	want := strings.Join(fqdns("web-0", "web-1"), "\n") + "\na b 2\n"
	if b, _ := os.ReadFile(record); string(b) != want {
		t.Fatalf("record %q, want %q", b, want)
	}
}

// Run never removes a directory given as -ready-file, even when the
// Config did not come from ParseFlags (which refuses it).
func TestRunReadyFileDirectoryKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ready")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t)
	c.ReadyFile = dir
	_, err := run(t, context.Background(), c, newFake().on(svcName, dns.TypeSRV, srvReply(0, "web-0")))
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("err = %v, want a directory error", err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("the directory is gone: %v", err)
	}
}

// A target outside the service is no peer; it is logged once, however
// often it is answered.
func TestRunDropsTargetsOutsideTheService(t *testing.T) {
	r := srvReply(0, "web-0", "web-1")
	r.msg.Answer = append(r.msg.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: svcName, Rrtype: dns.TypeSRV, Class: dns.ClassINET}, Port: 80, Target: "evil.example.com."})
	res := newFake().on(svcName, dns.TypeSRV, r)
	var logs syncBuffer
	log := funcr.New(func(prefix, args string) { logs.Write([]byte(args + "\n")) }, funcr.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, testConfig(t, "-watch"), Options{Resolver: res, Stdout: &out, Stderr: io.Discard, Log: log})
	}()
	eventually(t, "five lookups", func() bool { return res.count(svcName, dns.TypeSRV) >= 5 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(fqdns("web-0", "web-1"), "\n") + "\n"; out.String() != want {
		t.Fatalf("peers %q, want %q", out.String(), want)
	}
	if n := strings.Count(logs.String(), "evil.example.com"); n != 1 {
		t.Fatalf("evil.example.com logged %d times, want once:\n%s", n, logs.String())
	}
}
