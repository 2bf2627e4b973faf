//go:build e2e

// Package e2e tests petset on a real control plane started by test/cluster
// (kwok in place of kubelets): mostly the PetSet controller, often beside
// the StatefulSet controller it follows; also the headless plugin (answers
// read with dig, and compared with the kubernetes plugin's), peer-finder,
// and the manifests in deploy/. Every wait polls a condition through poll.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"petset.dev/petset/test/cluster"
)

var (
	tb      *cluster.Cluster
	dnsAddr string // 127.0.0.1:port of CoreDNS, UDP and TCP
	dnsPort string

	latencyMu sync.Mutex
	latencies []string
)

// corefile is what the suite runs: headless with fallthrough in front of
// kubernetes, both on the testbed. No cache, so answers follow changes as
// soon as the plugins see them.
const corefile = `.:%s {
    bind 127.0.0.1
    errors
    ready 127.0.0.1:%s
    headless cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s
        negative_ttl 1
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
}
`

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...) }
	var err error
	tb, err = cluster.Start(ctx, cluster.Options{Log: logf})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: testbed:", err)
		return 1
	}
	code := 1
	defer func() {
		tb.Stop()
		if code == 0 {
			os.RemoveAll(tb.Dir)
		} else {
			logf("failed; logs kept in %s/logs", tb.Dir)
		}
	}()

	coredns, stop, err := startCoreDNS(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: coredns:", err)
		return 1
	}
	defer stop()
	logf("CoreDNS %s on %s", coredns, dnsAddr)

	code = m.Run()

	latencyMu.Lock()
	sort.Strings(latencies)
	fmt.Println("\nTime from an API change to its DNS answer (dig, polled every 20ms):")
	for _, l := range latencies {
		fmt.Println("  " + l)
	}
	latencyMu.Unlock()
	return code
}

// startCoreDNS builds cmd/coredns, starts it on free loopback ports, and
// waits until the ready plugin reports both plugins synced.
func startCoreDNS(ctx context.Context) (string, func(), error) {
	bin := filepath.Join(tb.Dir, "coredns")
	build := exec.Command("go", "build", "-o", bin, "petset.dev/petset/cmd/coredns")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return "", nil, err
	}
	port, err := freeUDPTCPPort()
	if err != nil {
		return "", nil, err
	}
	readyPort, err := freeUDPTCPPort()
	if err != nil {
		return "", nil, err
	}
	dnsPort = port
	dnsAddr = "127.0.0.1:" + port
	conf := filepath.Join(tb.Dir, "Corefile")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(corefile, port, readyPort, tb.Kubeconfig, tb.Kubeconfig)), 0o644); err != nil {
		return "", nil, err
	}
	logf, err := os.Create(filepath.Join(tb.Dir, "logs", "coredns.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-conf", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() }
	// Ready can answer before the DNS listener is up: the server is
	// started once it also answers a query.
	err = poll(pollInterval, 60*time.Second, "ready, and answering "+dnsAddr, func() (bool, string) {
		resp, err := http.Get("http://127.0.0.1:" + readyPort + "/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, "ready says " + resp.Status
		}
		return answers(dnsAddr), "ready, but no answer to a query"
	})
	if err != nil {
		stop()
		b, _ := os.ReadFile(logf.Name())
		return "", nil, fmt.Errorf("%w\n%s", err, b)
	}
	return bin, stop, nil
}

// answers reports whether a DNS server at addr replies, with any rcode,
// to a query over UDP.
func answers(addr string) bool {
	m := new(dns.Msg)
	m.SetQuestion("cluster.local.", dns.TypeSOA)
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	_, _, err := c.Exchange(m, addr)
	return err == nil
}

func recordLatency(what string, d time.Duration) {
	latencyMu.Lock()
	defer latencyMu.Unlock()
	latencies = append(latencies, fmt.Sprintf("%-55s %8.0f ms", what, float64(d.Microseconds())/1000))
}

// freeUDPTCPPort finds a loopback port free for both UDP and TCP.
func freeUDPTCPPort() (string, error) {
	for range 20 {
		p, err := freeTCP()
		if err != nil {
			return "", err
		}
		if udpFree(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no free port")
}
