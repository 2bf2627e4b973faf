// Package cluster runs a real Kubernetes control plane on 127.0.0.1 for
// petset's end-to-end tests: etcd, kube-apiserver, kube-controller-manager
// and kube-scheduler built from their Go modules, and kwok as the kubelet
// (it runs nothing; it moves pods through their phases, gives them IPs from
// 10.244.0.0/16 and marks them Ready). Pod IPs are only ever returned in
// answers; nothing here connects to them.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options tune Start.
type Options struct {
	// Dir holds data, logs, keys and the kubeconfig; a new temporary
	// directory when empty.
	Dir string
	// Detach leaves the processes running when the starting process exits
	// (make cluster-up); otherwise they die with it.
	Detach bool
	// Volumes is how many PersistentVolumes to create for claims to bind
	// to. Default 200: the end-to-end suite binds well over a hundred.
	Volumes int
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
	// ControllerManagerArgs are added to kube-controller-manager's
	// flags (the DNS benchmark lifts its API rate limit).
	ControllerManagerArgs []string
	// RealNode adds a node run by a real kubelet, with containerd and
	// kube-proxy (realnode.go); it needs root, and one runs on a machine
	// at a time. kwok's node is then tainted NoSchedule, so pods that do
	// not tolerate it run on the real node.
	RealNode bool
	// Reaper is the command that runs Reap in a process of its own when
	// Detach is set (`testbed reap DIR`); without Detach, Reap runs in
	// this process.
	Reaper []string
}

// Cluster is a running control plane.
type Cluster struct {
	Dir        string
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface

	opts  Options
	bins  string
	token string
	ports map[string]int

	mu    sync.Mutex
	procs map[string]*exec.Cmd

	stopReaper context.CancelFunc
	reaped     chan struct{}

	node *realNode // with Options.RealNode
}

// Binaries builds (or finds in the cache) the control-plane binaries and
// returns their directory.
func Binaries() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "tools", "build.sh")
	out, err := exec.Command("bash", script).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s: %w\n%s", script, err, ee.Stderr)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Start builds what is missing and starts the control plane, one node
// managed by kwok, and a pool of PersistentVolumes. On error everything it
// started is stopped.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Volumes == 0 {
		opts.Volumes = 200
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	bins, err := Binaries()
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "petset-cluster-"); err != nil {
			return nil, err
		}
	}
	c := &Cluster{Dir: opts.Dir, opts: opts, bins: bins, procs: map[string]*exec.Cmd{}, ports: map[string]int{}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if opts.RealNode && opts.Detach {
		return nil, errors.New("the real node does not run detached")
	}
	if opts.RealNode {
		opts.Log("preparing the host for the real node (address %s on lo, guard rules)", NodeIP)
		if err := c.prepareRealNode(); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"logs", "pki", "etcd"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := c.writeCredentials(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.path("audit-policy.yaml"), []byte(auditPolicy), 0o644); err != nil {
		return nil, err
	}
	for _, p := range []string{"etcd", "etcd-peer", "apiserver"} {
		if c.ports[p], err = freePort(); err != nil {
			return nil, err
		}
	}

	opts.Log("starting etcd on 127.0.0.1:%d", c.ports["etcd"])
	if err := c.startEtcd(); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/health", c.ports["etcd"]), "", 60*time.Second); err != nil {
		return nil, fmt.Errorf("etcd: %w (log: %s)", err, c.logPath("etcd"))
	}
	opts.Log("starting kube-apiserver on %s:%d", c.host(), c.ports["apiserver"])
	if err := c.StartAPIServer(ctx); err != nil {
		return nil, err
	}
	if err := c.writeKubeconfig(); err != nil {
		return nil, err
	}
	opts.Log("starting kube-controller-manager, kube-scheduler, kwok and the reaper")
	if err := c.startRest(); err != nil {
		return nil, err
	}
	if err := c.startReaper(); err != nil {
		return nil, err
	}
	if err := c.addNode(ctx); err != nil {
		return nil, fmt.Errorf("node: %w (kwok log: %s)", err, c.logPath("kwok"))
	}
	if opts.RealNode {
		opts.Log("starting the real node: registry, containerd, kubelet, kube-proxy")
		if err := c.startRealNode(ctx); err != nil {
			return nil, err
		}
	} else if err := c.addVolumes(ctx, opts.Volumes); err != nil {
		return nil, err
	}
	opts.Log("cluster ready; kubeconfig %s", c.Kubeconfig)
	return c, nil
}

// AuditLog is the API server's audit log: one JSON line per write
// (create, update, patch, delete), at Metadata level, with the user
// agent, object reference and response code of each.
func (c *Cluster) AuditLog() string { return c.path("logs", "audit.log") }

// auditPolicy logs writes only: reads would swamp the log.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`

// host is the address the API server listens on and advertises: the real
// node's, so that pods reach it through the kubernetes Service.
func (c *Cluster) host() string {
	if c.opts.RealNode {
		return NodeIP
	}
	return "127.0.0.1"
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.bins, name) }
func (c *Cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.Dir}, parts...)...)
}
func (c *Cluster) logPath(name string) string { return c.path("logs", name+".log") }

// writeCredentials makes the service-account key pair and a token for an
// administrator (system:masters).
func (c *Cluster) writeCredentials() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.path("pki", "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("pki", "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	b := make([]byte, 16)
	rand.Read(b)
	c.token = hex.EncodeToString(b)
	return os.WriteFile(c.path("pki", "tokens.csv"), []byte(c.token+`,admin,admin,"system:masters"`+"\n"), 0o600)
}

func (c *Cluster) writeKubeconfig() error {
	c.Kubeconfig = c.path("kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: petset
  cluster:
    server: https://%s:%d
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: petset
  context: {cluster: petset, user: admin}
current-context: petset
`, c.host(), c.ports["apiserver"], c.token)
	if err := os.WriteFile(c.Kubeconfig, []byte(cfg), 0o600); err != nil {
		return err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = 200, 400
	c.Config = rc
	c.Client, err = kubernetes.NewForConfig(rc)
	return err
}

func (c *Cluster) startEtcd() error {
	client := fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd"])
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd-peer"])
	return c.run("etcd", c.bin("etcd"),
		"--name=petset", "--data-dir="+c.path("etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=petset="+peer, "--unsafe-no-fsync", "--log-level=warn")
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer) on the
// same port and waits until it is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	args := []string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd"]),
		"--bind-address=" + c.host(), "--advertise-address=" + c.host(),
		"--secure-port=" + strconv.Itoa(c.ports["apiserver"]), "--cert-dir=" + c.path("pki"),
		"--service-account-key-file=" + c.path("pki", "sa.pub"),
		"--service-account-signing-key-file=" + c.path("pki", "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--token-auth-file=" + c.path("pki", "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--enable-priority-and-fairness=false",
		// Every write, with who made it, for tests that count writes.
		"--audit-policy-file=" + c.path("audit-policy.yaml"),
		// Never rotated: tests read it from an offset.
		"--audit-log-path=" + c.AuditLog(), "--audit-log-format=json", "--audit-log-maxsize=100000"}
	if c.opts.RealNode {
		// Pods that call the API get their service account's token,
		// and the API server reaches the kubelet (logs, exec) at its
		// node address.
		args = append(args, "--kubelet-preferred-address-types=InternalIP", "--allow-privileged=true")
	} else {
		// Namespaces are made and used at once in tests; the default
		// service account may not exist yet, and nothing here mounts it.
		args = append(args, "--disable-admission-plugins=ServiceAccount")
	}
	if err := c.run("kube-apiserver", c.bin("kube-apiserver"), args...); err != nil {
		return err
	}
	url := fmt.Sprintf("https://%s:%d/readyz", c.host(), c.ports["apiserver"])
	if err := waitHTTP(ctx, url, c.token, 120*time.Second); err != nil {
		return fmt.Errorf("kube-apiserver: %w (log: %s)", err, c.logPath("kube-apiserver"))
	}
	return nil
}

// StopAPIServer stops kube-apiserver alone, as an outage would.
func (c *Cluster) StopAPIServer() { c.kill("kube-apiserver") }

func (c *Cluster) startRest() error {
	controllers := "*,-nodeipam,-nodelifecycle,-ttl,-bootstrapsigner,-tokencleaner"
	if c.opts.RealNode {
		// The node lifecycle controller lifts the kubelet's node's
		// not-ready taint once it is Ready.
		controllers = "*,-nodeipam,-ttl,-bootstrapsigner,-tokencleaner"
	}
	kcm := append([]string{
		"--kubeconfig=" + c.Kubeconfig,
		"--controllers=" + controllers,
		"--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file=" + c.path("pki", "sa.key"),
		"--root-ca-file=" + c.path("pki", "apiserver.crt"),
		// Not /usr/libexec/kubernetes/kubelet-plugins/volume/exec.
		"--flex-volume-plugin-dir=" + c.path("flexvolume"),
		"--concurrent-statefulset-syncs=10"}, c.opts.ControllerManagerArgs...)
	if err := c.run("kube-controller-manager", c.bin("kube-controller-manager"), kcm...); err != nil {
		return err
	}
	// A pod the scheduler found unschedulable (its claim not bound yet)
	// waits for an event that may make it fit, or else for this long in
	// the unschedulable queue (5 minutes by default); the queue is looked
	// at every 30 s. -v=2 logs why a pod did not fit.
	if err := c.run("kube-scheduler", c.bin("kube-scheduler"),
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--pod-max-in-unschedulable-pods-duration=1s", "-v=2"); err != nil {
		return err
	}
	// kwok manages only the nodes annotated as its own, never the real
	// node.
	return c.run("kwok", c.bin("kwok"),
		"--kubeconfig="+c.Kubeconfig, "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--cidr=10.244.0.0/16", "--node-ip=10.244.255.254",
		"--config="+c.bin("kwok-stages-without-delete.yaml"))
}

// run starts a process with its output in logs/NAME.log.
func (c *Cluster) run(name, bin string, args ...string) error {
	logf, err := os.OpenFile(c.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !c.opts.Detach {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL // no orphans if the test binary dies
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	c.mu.Lock()
	c.procs[name] = cmd
	c.mu.Unlock()
	if !c.opts.Detach {
		go cmd.Wait()
	}
	return os.WriteFile(c.path(name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

func (c *Cluster) kill(name string) {
	c.mu.Lock()
	cmd := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	stopPID(cmd.Process.Pid)
	os.Remove(c.path(name + ".pid"))
}

// processes are the control plane's processes, newest first: the order
// they are stopped in.
var processes = []string{"reaper", "kube-proxy", "kubelet", "containerd", "registry", "kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"}

// startReaper runs Reap for kwok's node: in this process, or, detached,
// as the Reaper command.
func (c *Cluster) startReaper() error {
	if c.opts.Detach {
		if len(c.opts.Reaper) == 0 {
			return errors.New("a detached cluster needs Options.Reaper")
		}
		return c.run("reaper", c.opts.Reaper[0], c.opts.Reaper[1:]...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stopReaper, c.reaped = cancel, make(chan struct{})
	go func() {
		defer close(c.reaped)
		if err := Reap(ctx, c.Config, NodeName, c.opts.Log); err != nil {
			c.opts.Log("reaper: %v", err)
		}
	}()
	return nil
}

// Stop ends every process, newest first; the real node's pods first.
func (c *Cluster) Stop() {
	c.stopRealNode()
	if c.stopReaper != nil {
		c.stopReaper()
		<-c.reaped
	}
	for _, name := range processes {
		c.kill(name)
	}
}

// StopDir stops a cluster started detached in dir (make cluster-down).
func StopDir(dir string) error {
	var errs []error
	for _, name := range processes {
		b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.pid: %w", name, err))
			continue
		}
		stopPID(pid)
		os.Remove(filepath.Join(dir, name+".pid"))
	}
	return errors.Join(errs...)
}

// stopPID sends SIGTERM to a process group, then SIGKILL if it lingers.
func stopPID(pid int) {
	syscall.Kill(-pid, syscall.SIGTERM)
	for i := 0; i < 50; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, url, token string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}
