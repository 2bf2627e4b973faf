package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The peer-finder binary against the CoreDNS binary serving manifests on
// 127.0.0.1: the manifests are edited while peer-finder runs, and its hooks'
// invocations and standard input are checked. Twelve and more peers with two
// ports each do not fit in peer-finder's 1232-byte EDNS0 buffer, so every
// lookup is truncated and asked again over TCP; the peers come out in
// ordinal order.
func TestPeerFinderAgainstCoreDNS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs two binaries")
	}
	dir := t.TempDir()
	bins := pfBuild(t, dir, "coredns", "peer-finder")
	pf := bins["peer-finder"]

	manifests := filepath.Join(dir, "manifests")
	os.Mkdir(manifests, 0o755)
	writePets(t, manifests, 12)
	dnsAddr := startManifestCoreDNS(t, bins["coredns"], dir, manifests)
	svc := "web.demo.svc.cluster.local."

	// The reply really is too large for UDP: TC set at 1232 bytes, all of
	// it over TCP.
	q := new(dns.Msg)
	q.SetQuestion(svc, dns.TypeSRV)
	q.SetEdns0(1232, false)
	udp, _, err := (&dns.Client{Net: "udp"}).Exchange(q, dnsAddr)
	if err != nil || !udp.Truncated {
		t.Fatalf("UDP reply for 12 pets not truncated at 1232 bytes: %v %v", udp, err)
	}
	tcp, _, err := (&dns.Client{Net: "tcp"}).Exchange(q, dnsAddr)
	if err != nil || len(tcp.Answer) != 24 {
		t.Fatalf("TCP reply: %d answers, %v; want 24 (12 pets, 2 ports)", len(tcp.Answer), err)
	}

	hooks := filepath.Join(dir, "hooks")
	os.Mkdir(hooks, 0o755)
	record := filepath.Join(dir, "on-start.stdin")
	onStart := pfScript(t, hooks, "on-start", `cat > "$1"; echo "$PEER_COUNT $SELF $ORDINAL" >> "$1"; exit "$2"`)
	base := []string{"-dns-server", dnsAddr, "-ns", "demo", "-service", "web", "-domain", "cluster.local", "-interval", "200ms", "-max-interval", "2s"}

	t.Run("on-start runs once and exits with the hook's status", func(t *testing.T) {
		for _, code := range []int{0, 5} {
			res := runPeerFinder(t, pf, append(base, "-hostname", "web-3", "-timeout", "20s", "-on-start", onStart+" "+record+" "+strconv.Itoa(code))...)
			if res.code != code {
				t.Fatalf("exit %d, want the hook's %d\n%s", res.code, code, res.stderr)
			}
			b, _ := os.ReadFile(record)
			want := pets(0, 12) + "12 web-3.web.demo.svc.cluster.local 3\n"
			if string(b) != want {
				t.Fatalf("on-start stdin:\n%s\nwant:\n%s", b, want)
			}
			if !strings.Contains(res.stderr, "UDP reply truncated, asking over TCP") {
				t.Fatalf("no TCP retry logged:\n%s", res.stderr)
			}
		}
	})

	// Kubernetes' galera and redis StatefulSets write -on-start="/work-dir/on-start.sh" in a YAML
	// args list, so the quotes reach the program; they are removed as a shell would.
	t.Run("quoted -on-start as Kubernetes' own specs pass it", func(t *testing.T) {
		os.Remove(record)
		res := runPeerFinder(t, pf, append(base, "-hostname", "web-1", "-timeout", "20s", `-on-start="`+onStart+`" '`+record+`' 0`)...)
		if res.code != 0 {
			t.Fatalf("exit %d, want 0\n%s", res.code, res.stderr)
		}
		if b, _ := os.ReadFile(record); string(b) != pets(0, 12)+"12 web-1.web.demo.svc.cluster.local 1\n" {
			t.Fatalf("on-start stdin:\n%s", b)
		}
	})

	t.Run("no hook prints the peers", func(t *testing.T) {
		res := runPeerFinder(t, pf, append(base, "-hostname", "web-11", "-timeout", "20s")...)
		if res.code != 0 || res.stdout != pets(0, 12) {
			t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
		}
	})

	t.Run("waits for -wait-dns and -wait-tcp", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		cmd := exec.Command(pf, append(base, "-hostname", "web-3", "-timeout", "60s",
			"-wait-dns", "db-0.db.demo.svc.cluster.local", "-wait-tcp", ln.Addr().String())...)
		var stdout, stderr SyncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "-wait-dns db-0.db.demo.svc.cluster.local: no A or AAAA record (NXDOMAIN)"); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("not waiting for db-0:\n%s", stderr.String())
			}
		}
		if stdout.String() != "" {
			t.Fatalf("peers printed before the dependency was there: %q", stdout.String())
		}
		os.WriteFile(filepath.Join(manifests, "db.yaml"), []byte(`apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: sql, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: demo, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  containers: [{name: db, image: db}]
status:
  phase: Running
  podIP: 10.244.9.1
  conditions: [{type: Ready, status: "True"}]
`), 0o644)
		select {
		case err := <-exited:
			if err != nil || stdout.String() != pets(0, 12) {
				t.Fatalf("%v, stdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("still waiting after db-0 was published:\n%s", stderr.String())
		}
	})

	t.Run("timeout names the missing own name", func(t *testing.T) {
		res := runPeerFinder(t, pf, append(base, "-hostname", "web-20", "-timeout", "1s")...)
		if res.code != 3 || !strings.Contains(res.stderr, "own name web-20.web.demo.svc.cluster.local is not published yet") {
			t.Fatalf("exit %d, stderr:\n%s", res.code, res.stderr)
		}
	})

	t.Run("a signal before the first run exits 128+N", func(t *testing.T) {
		for _, tc := range []struct {
			sig  syscall.Signal
			code int
		}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
			cmd := exec.Command(pf, append(base, "-hostname", "web-20")...)
			var stderr SyncBuffer
			cmd.Stderr = &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stderr.String(), "is not published yet"); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("not waiting for its own name:\n%s", stderr.String())
				}
			}
			cmd.Process.Signal(tc.sig)
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != tc.code {
				t.Fatalf("%v: exit %d, want %d\n%s", tc.sig, code, tc.code, stderr.String())
			}
		}
	})

	t.Run("bad input exits 2", func(t *testing.T) {
		empty := filepath.Join(dir, "empty")
		os.Mkdir(empty, 0o755)
		defer func() {
			if _, err := os.Stat(empty); err != nil {
				t.Fatalf("the directory given as -ready-file is gone: %v", err)
			}
		}()
		for _, args := range [][]string{{"-health-addr", ":99999"}, {"-ready-file", empty}, {"-template", "builtin:json", "-out", empty}, {"-bogus"}, {"-service", "Web"}, {"-template", "/no/such/file"}, {"-template", "builtin:json", "-out", "/no/such/dir/x"}, {`-on-start="` + onStart}} {
			res := runPeerFinder(t, pf, append(append([]string{}, base...), args...)...)
			if res.code != 2 || !strings.HasPrefix(res.stderr, "peer-finder: ") {
				t.Fatalf("%v: exit %d, stderr:\n%s", args, res.code, res.stderr)
			}
		}
	})

	t.Run("on-change follows edits of the manifests", func(t *testing.T) {
		log := filepath.Join(dir, "on-change.log")
		onChange := pfScript(t, hooks, "on-change", `{ echo "--- $PEER_COUNT"; cat; } >> "$1"`)
		health := pfFreePort(t)
		ready := filepath.Join(dir, "ready")
		etcd := filepath.Join(dir, "etcd.yaml")
		cmd := exec.Command(pf, append(base, "-hostname", "web-0", "-on-change", onChange+" "+log,
			"-template", "builtin:etcd", "-out", etcd,
			"-health-addr", "127.0.0.1:"+health, "-ready-file", ready)...)
		var stderr SyncBuffer
		cmd.Stderr = &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				<-exited
			}
		}()

		want := "--- 12\n" + pets(0, 12)
		pfWaitFile(t, log, want, &stderr)
		// The ready file follows the hook's exit, a moment after its output.
		pfWaitFile(t, ready, pets(0, 12), &stderr)
		if b, _ := os.ReadFile(etcd); !strings.Contains(string(b), "web-2=http://web-2.web.demo.svc.cluster.local:2380,web-3=") ||
			!strings.Contains(string(b), "web-9.web.demo.svc.cluster.local:2380,web-10=") {
			t.Fatalf("etcd config:\n%s", b)
		}

		writePets(t, manifests, 14)
		want += "--- 14\n" + pets(0, 14)
		pfWaitFile(t, log, want, &stderr)

		writePets(t, manifests, 2)
		want += "--- 2\n" + pets(0, 2)
		pfWaitFile(t, log, want, &stderr)
		if b, _ := os.ReadFile(etcd); !strings.Contains(string(b), "initial-cluster: web-0=http://web-0.web.demo.svc.cluster.local:2380,web-1=http://web-1.web.demo.svc.cluster.local:2380\n") {
			t.Fatalf("etcd config after scaling to 2:\n%s", b)
		}

		metrics := pfHTTPGet(t, "http://127.0.0.1:"+health+"/metrics")
		retries := pfMetric(metrics, "petset_peer_finder_tcp_retries_total")
		if retries < 2 {
			t.Fatalf("petset_peer_finder_tcp_retries_total = %v, want the lookups of 12 and 14 pets retried over TCP\n%s", retries, metrics)
		}

		// Five pets overflow 512 bytes but fit the EDNS0 buffer: their
		// lookups stay on UDP.
		writePets(t, manifests, 5)
		want += "--- 5\n" + pets(0, 5)
		pfWaitFile(t, log, want, &stderr)
		if udp, _, err := (&dns.Client{Net: "udp"}).Exchange(q, dnsAddr); err != nil || udp.Truncated || udp.Len() <= dns.MinMsgSize {
			t.Fatalf("UDP reply for 5 pets with EDNS0: %v, %v; want more than 512 bytes, not truncated", udp, err)
		}
		retries = pfMetric(pfHTTPGet(t, "http://127.0.0.1:"+health+"/metrics"), "petset_peer_finder_tcp_retries_total")
		lookups := func() float64 {
			return pfMetric(pfHTTPGet(t, "http://127.0.0.1:"+health+"/metrics"), `petset_peer_finder_lookups_total{result="ok"}`)
		}
		for deadline, from := time.Now().Add(20*time.Second), lookups(); lookups() < from+3; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no three lookups of the 5 pets in 20s:\n%s", stderr.String())
			}
		}
		if now := pfMetric(pfHTTPGet(t, "http://127.0.0.1:"+health+"/metrics"), "petset_peer_finder_tcp_retries_total"); now != retries {
			t.Fatalf("petset_peer_finder_tcp_retries_total went from %v to %v over lookups of 5 pets, which fit in UDP", retries, now)
		}
		if code := pfHTTPStatus(t, "http://127.0.0.1:"+health+"/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz %d", code)
		}

		// SIGTERM stops the sidecar cleanly.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatal("still running 20s after SIGTERM")
		}
		if b, _ := os.ReadFile(log); string(b) != want {
			t.Fatalf("invocations:\n%s\nwant:\n%s", b, want)
		}
	})
}

// pets lists web-<from> ... web-<to-1> as peer-finder writes them.
func pets(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "web-%d.web.demo.svc.cluster.local\n", i)
	}
	return b.String()
}

// writePets writes the headless service web (publishNotReadyAddresses,
// two ports) and n ready pods web-0 ... web-(n-1), replacing the file
// atomically so CoreDNS never reads half of it.
func writePets(t *testing.T, dir string, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: web}
  ports:
  - {name: peer, port: 2380}
  - {name: client, port: 2379}
`)
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata: {name: web-%[1]d, namespace: demo, labels: {app: web}}
spec:
  hostname: web-%[1]d
  subdomain: web
  containers:
  - name: etcd
    image: etcd
    ports: [{name: peer, containerPort: 2380}, {name: client, containerPort: 2379}]
status:
  phase: Running
  podIP: 10.244.%[2]d.%[3]d
  conditions: [{type: Ready, status: "True"}]
`, i, 1+i/200, 10+i%200)
	}
	tmp := filepath.Join(dir, ".web.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
}

func pfBuild(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		bin := filepath.Join(dir, n)
		cmd := exec.Command("go", "build", "-o", bin, "petset.dev/petset/cmd/"+n)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", n, err, b)
		}
		out[n] = bin
	}
	return out
}

// startManifestCoreDNS runs CoreDNS with headless serving manifests on a
// free loopback port, reloading every 500ms, TTL 1, and waits until it
// answers.
func startManifestCoreDNS(t *testing.T, bin, dir, manifests string) string {
	t.Helper()
	port := pfFreeUDPTCPPort(t)
	conf := filepath.Join(dir, "Corefile")
	os.WriteFile(conf, []byte(fmt.Sprintf(`cluster.local:%s {
    bind 127.0.0.1
    headless {
        manifests %s
        reload 500ms
        ttl 1
        negative_ttl 1
    }
}
`, port, manifests)), 0o644)
	var logs SyncBuffer
	cmd := exec.Command(bin, "-conf", conf)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + port
	deadline := time.Now().Add(30 * time.Second)
	for {
		q := new(dns.Msg)
		q.SetQuestion("web-0.web.demo.svc.cluster.local.", dns.TypeA)
		r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(q, addr)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("CoreDNS not answering on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type pfResult struct {
	code           int
	stdout, stderr string
}

func runPeerFinder(t *testing.T, bin string, args ...string) pfResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("peer-finder %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return pfResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func pfScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// pfWaitFile waits until path holds exactly want.
func pfWaitFile(t *testing.T, path, want string, logs *SyncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s:\n%s\nwant:\n%s\npeer-finder's log:\n%s", path, b, want, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pfHTTPGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func pfHTTPStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pfMetric reads an unlabelled sample from Prometheus' text format; -1
// if it is not there.
func pfMetric(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func pfFreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func pfFreeUDPTCPPort(t *testing.T) string {
	t.Helper()
	for range 20 {
		p := pfFreePort(t)
		if c, err := net.ListenPacket("udp", "127.0.0.1:"+p); err == nil {
			c.Close()
			return p
		}
	}
	t.Fatal("no port free for UDP and TCP")
	return ""
}
