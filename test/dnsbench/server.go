package dnsbench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Server is one contender's CoreDNS process, pinned to a CPU.
type Server struct {
	Contender string
	Ports     Ports
	Corefile  string
	Log       string
	cmd       *exec.Cmd
	logf      *os.File
}

// ServerOptions say how to start one contender.
type ServerOptions struct {
	Bin        string // the CoreDNS binary
	Shipped    string // the shipped Corefile the contender's is made from
	Dir        string // where its Corefile and log go
	Kubeconfig string
	Contender  string
	CPU        string // taskset -c CPU list, e.g. "0"; empty for no pinning
	// Nice, when above 0, starts it under nice -n Nice, so the control
	// plane (at the default priority) goes first when both want a core.
	Nice    int
	NoCache bool
	Timeout time.Duration // to become ready
}

// StartServer writes the contender's Corefile into o.Dir, starts o.Bin on
// it (pinned and niced as o says), and waits until the ready plugin
// reports ready and the server answers.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	var ports Ports
	var err error
	if ports.DNS, err = freeUDPTCPPort(); err != nil {
		return nil, err
	}
	for _, p := range []*int{&ports.Health, &ports.Ready, &ports.Metrics} {
		if *p, err = freeUDPTCPPort(); err != nil {
			return nil, err
		}
	}
	body, err := AdaptCorefile(o.Shipped, CorefileOptions{Contender: o.Contender, Ports: ports, Kubeconfig: o.Kubeconfig, NoCache: o.NoCache})
	if err != nil {
		return nil, err
	}
	s := &Server{Contender: o.Contender, Ports: ports, Corefile: filepath.Join(o.Dir, o.Contender+".Corefile"), Log: filepath.Join(o.Dir, o.Contender+".log")}
	if err := os.WriteFile(s.Corefile, []byte(body), 0o644); err != nil {
		return nil, err
	}
	if s.logf, err = os.Create(s.Log); err != nil {
		return nil, err
	}
	args := []string{o.Bin, "-conf", s.Corefile}
	args = wrap(args, o.CPU, o.Nice)
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = s.logf, s.logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.logf.Close()
		return nil, fmt.Errorf("start %s: %w", o.Contender, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(o.Timeout)
	hc := http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", ports.Ready))
		if err == nil {
			resp.Body.Close()
			// Ready can answer before the DNS listeners are up.
			if resp.StatusCode == http.StatusOK {
				if _, err := Ask(s.Addr(), "ready.check.invalid.", dns.TypeA); err == nil {
					go func() { <-exited }()
					return s, nil
				}
			}
		}
		select {
		case err := <-exited:
			s.logf.Close()
			b, _ := os.ReadFile(s.Log)
			return nil, fmt.Errorf("%s exited (%v):\n%s", o.Contender, err, b)
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			b, _ := os.ReadFile(s.Log)
			return nil, fmt.Errorf("%s not ready after %s:\n%s", o.Contender, o.Timeout, b)
		}
	}
}

// wrap puts taskset -c cpu and nice -n nice in front of args, for the
// ones asked for; both exec the command in place, so its PID is the
// command's.
func wrap(args []string, cpu string, nice int) []string {
	if cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	if nice > 0 {
		args = append([]string{"nice", "-n", strconv.Itoa(nice)}, args...)
	}
	return args
}

// PID is the CoreDNS process (taskset and nice exec it in place).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Addr is the DNS address, UDP and TCP.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Ports.DNS) }

// MetricsURL is the prometheus plugin's endpoint.
func (s *Server) MetricsURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d/metrics", s.Ports.Metrics)
}

// Stop kills the server (no lame duck: the benchmark is done with it).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		for range 100 {
			if syscall.Kill(s.cmd.Process.Pid, 0) != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if s.logf != nil {
		s.logf.Close()
	}
}

// Ask sends one query over UDP (retrying over TCP when truncated).
func Ask(addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.Exchange(m, addr)
	}
	return r, err
}

// DNSPerfOptions are dnsperf's knobs for one run.
type DNSPerfOptions struct {
	Addr        string // 127.0.0.1:port
	File        string
	Duration    time.Duration
	Clients     int
	Outstanding int
	MaxQPS      int // 0: as fast as the server answers
	Verbose     bool
	CPU         string // taskset -c CPU; empty for none
	Nice        int    // nice -n Nice when above 0
}

// Args is the command line of a run.
func (o DNSPerfOptions) Args() ([]string, error) {
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("dnsperf only on loopback addresses, not %q", host)
	}
	secs := max(1, int(o.Duration.Round(time.Second)/time.Second))
	args := []string{"dnsperf", "-s", host, "-p", port, "-d", o.File, "-l", strconv.Itoa(secs),
		"-c", strconv.Itoa(max(1, o.Clients)), "-q", strconv.Itoa(max(1, o.Outstanding))}
	if o.MaxQPS > 0 {
		args = append(args, "-Q", strconv.Itoa(o.MaxQPS))
	}
	if o.Verbose {
		args = append(args, "-v")
	}
	return wrap(args, o.CPU, o.Nice), nil
}

// RunDNSPerf runs dnsperf and parses its output as it streams (a verbose
// run prints a line per answer).
func RunDNSPerf(ctx context.Context, o DNSPerfOptions) (*DNSPerf, error) {
	args, err := o.Args()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dnsperf: %w", err)
	}
	d, perr := ParseDNSPerf(out)
	werr := cmd.Wait()
	if werr != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), werr, stderr.String())
	}
	if perr != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(args, " "), perr)
	}
	return d, nil
}

// freeUDPTCPPort is a loopback port free for both UDP and TCP.
func freeUDPTCPPort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free loopback port for UDP and TCP")
}
