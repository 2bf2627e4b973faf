package test

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"petset.dev/petset/test/cluster"
)

// netnsEnv marks the copy of the test binary that runs inside its own
// network and mount namespaces.
const netnsEnv = "PETSET_PEERFINDER_ETCD_NETNS"

// TestPeerFinderEtcd runs real etcd v3.6.5 members (the testbed's binary)
// the way deploy/examples/etcd.yaml does, one pet at a time: peer-finder
// -etcd-join as the init container, rendering builtin:etcd; peer-finder
// -etcd-promote -etcd-leave as the sidecar; etcd; and for a pod's
// deletion, the etcd container's preStop GET /etcd/leave before etcd gets
// SIGTERM. DNS comes from a small server that lists the pets, and the
// set's scale from a stand-in for the API server with the service
// account's token and CA. It bootstraps three members, deletes a pet (it
// comes back as the same member with its data), scales 3 -> 5 -> 3 while a
// key is read in a loop, scales to 4 again on a claim that holds a removed
// member's data, replaces a member whose data was lost, removes the member
// of a force-deleted pet with a run-once -etcd-leave, and scales 3 -> 1.
//
// Pods have their own network namespaces, where every etcd listens on
// etcd's ports, and names the cluster DNS resolves. The test gives the
// members one network namespace of their own, with an address each on its
// loopback (the listen lines of the rendered configuration are the one
// thing changed for it) and /etc/hosts naming the members, which etcd
// resolves peer URLs with; it runs a copy of itself there.
func TestPeerFinderEtcd(t *testing.T) {
	if os.Getenv(netnsEnv) == "" {
		if testing.Short() {
			t.Skip("builds peer-finder and runs five etcd members")
		}
		bins, err := cluster.Binaries()
		if err != nil {
			t.Fatal(err)
		}
		pf := pfBuild(t, t.TempDir(), "peer-finder")["peer-finder"]
		cmd := exec.Command(os.Args[0], "-test.run=^TestPeerFinderEtcd$", "-test.v", "-test.timeout=10m")
		cmd.Env = append(os.Environ(), netnsEnv+"=1", "PF_BIN="+pf, "ETCD_BIN="+filepath.Join(bins, "etcd"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
		if os.Getuid() != 0 {
			cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
			cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
			cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		}
		var out SyncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Skipf("cannot make network and mount namespaces (%v): this test needs root or user namespaces", err)
		}
		err = cmd.Wait()
		t.Log(out.String())
		if err != nil {
			t.Fatalf("in its namespaces: %v", err)
		}
		return
	}
	testEtcdInNamespace(t, os.Getenv("PF_BIN"), os.Getenv("ETCD_BIN"))
}

// etcdPets is a PetSet of etcd members in one network namespace.
type etcdPets struct {
	t        *testing.T
	dir      string
	pf, etcd string
	dnsAddr  string
	apiEnv   []string
	saDir    string

	mu       sync.Mutex
	replicas int
	listed   map[int]bool // the pets DNS lists
	pods     map[int]*etcdPod
}

// etcdPod is a running pet: its sidecar and etcd.
type etcdPod struct {
	sidecar, etcd *exec.Cmd
	logs          *SyncBuffer
	exited        chan struct{} // closed when etcd has exited
}

func petIP(i int) string   { return "127.0.0." + strconv.Itoa(10+i) }
func petName(i int) string { return "etcd-" + strconv.Itoa(i) }
func petFQDN(i int) string { return petName(i) + ".etcd.demo.svc.cluster.local" }
func petClient(i int) string {
	return "http://" + petIP(i) + ":2379"
}

func testEtcdInNamespace(t *testing.T, pf, etcdBin string) {
	if err := namespaceSetup(); err != nil {
		t.Fatal(err)
	}
	p := &etcdPets{t: t, dir: t.TempDir(), pf: pf, etcd: etcdBin, listed: map[int]bool{}, pods: map[int]*etcdPod{}}
	p.dnsAddr = p.serveDNS()
	p.serveAPI()
	t.Cleanup(p.stopAll)

	// Bootstrap: three pets at once (podManagementPolicy: Parallel).
	p.scale(3)
	p.startAll(0, 1, 2)
	ids := p.waitMembers(3)
	kv := p.client(0, 1, 2)
	if _, err := kv.Put(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	p.waitValue(2, "k", "v")

	// A pet's pod deleted and made again: the preStop hook keeps its
	// member, which comes back under the same ID with its data.
	if msg := p.delete(1); !strings.Contains(msg, "staying") {
		t.Fatalf("preStop of a deleted pet within the set: %q", msg)
	}
	p.startAll(1)
	if again := p.waitMembers(3); !maps.Equal(again, ids) {
		t.Fatalf("members after etcd-1 came back: %v, want %v", again, ids)
	}
	p.waitValue(1, "k", "v")

	// From here on a key is read through the first three members in a
	// loop: scaling must not interrupt it.
	health := p.watchHealth(kv)

	// Scale 3 -> 5, both new pets at once: one is added as a learner and
	// promoted, then the other.
	p.scale(5)
	p.startAll(3, 4)
	five := p.waitMembers(5)
	p.waitValue(4, "k", "v")

	// Scale 5 -> 3: both condemned pets at once; each one's preStop
	// removes its member before its etcd stops.
	p.scale(3)
	var wg sync.WaitGroup
	for _, i := range []int{3, 4} {
		wg.Go(func() {
			if msg := p.delete(i); !strings.Contains(msg, "removed member") {
				t.Errorf("preStop of scaled-down etcd-%d: %q", i, msg)
			}
		})
	}
	wg.Wait()
	if got := p.waitMembers(3); !maps.Equal(got, ids) {
		t.Fatalf("members after scaling down: %v, want %v", got, ids)
	}

	// Scale to 4 again: etcd-3's claim holds the data of the member
	// that was removed; it is dropped and etcd-3 joins as a new member.
	p.scale(4)
	p.startAll(3)
	four := p.waitMembers(4)
	if four["etcd-3"] == five["etcd-3"] {
		t.Fatalf("etcd-3 rejoined under its removed ID %x", five["etcd-3"])
	}
	p.waitValue(3, "k", "v")

	// etcd-3 loses its data (its claim replaced): it is removed and added
	// again under a new ID.
	p.delete(3)
	if err := os.RemoveAll(p.dataDir(3)); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(p.dataDir(3), 0o755)
	p.startAll(3)
	replaced := p.waitMembers(4)
	if replaced["etcd-3"] == four["etcd-3"] {
		t.Fatal("etcd-3 rejoined without data under its old ID")
	}
	p.waitValue(3, "k", "v")

	// Scale to 3 with etcd-3 force-deleted (no preStop): its member stays
	// until a run-once -etcd-leave for it, run from another pet's
	// sidecar, removes it.
	p.scale(3)
	p.kill(3)
	if got := p.members(); len(got) != 4 {
		t.Fatalf("members after a force-delete: %v", got)
	}
	leave := exec.Command(p.pf, append(p.common(3), "-etcd-leave", "petset/etcd", "-service-account-dir", p.saDir, "-timeout", "30s")...)
	leave.Env = append(os.Environ(), p.apiEnv...)
	out, err := leave.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed member") {
		t.Fatalf("run-once -etcd-leave: %v\n%s", err, out)
	}
	if got := p.waitMembers(3); !maps.Equal(got, ids) {
		t.Fatalf("members after the run-once leave: %v, want %v", got, ids)
	}

	if failures := health(); len(failures) > 0 {
		t.Fatalf("reads through the first three members failed while the set scaled: %q", failures)
	}

	// Scale 3 -> 1, both condemned pets at once: each member has left
	// before its etcd stops, so the last one has its quorum alone.
	p.scale(1)
	for _, i := range []int{1, 2} {
		wg.Go(func() {
			if msg := p.delete(i); !strings.Contains(msg, "removed member") {
				t.Errorf("preStop of scaled-down etcd-%d: %q", i, msg)
			}
		})
	}
	wg.Wait()
	if got := p.waitMembers(1); got["etcd-0"] != ids["etcd-0"] {
		t.Fatalf("members after scaling to one: %v", got)
	}
	p.waitValue(0, "k", "v")
}

// namespaceSetup brings up the loopback interface of a new network
// namespace and puts a hosts file naming the pets over /etc/hosts, in a
// mount namespace of this process that shares nothing with the host.
func namespaceSetup() error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for i := range 8 {
		fmt.Fprintf(&b, "%s %s\n", petIP(i), petFQDN(i))
	}
	hosts := filepath.Join(os.TempDir(), fmt.Sprintf("petset-etcd-hosts-%d", os.Getpid()))
	if err := os.WriteFile(hosts, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := syscall.Mount(hosts, "/etc/hosts", "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s over /etc/hosts: %w", hosts, err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr struct {
		name  [syscall.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(ifr.name[:], "lo")
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return fmt.Errorf("lo flags: %w", errno)
	}
	ifr.flags |= syscall.IFF_UP
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return fmt.Errorf("lo up: %w", errno)
	}
	return nil
}

// serveDNS answers SRV questions for the service etcd in demo with the
// pets listed, two ports each and their addresses as glue, TTL 1.
func (p *etcdPets) serveDNS() string {
	svc := "etcd.demo.svc.cluster.local."
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		p.mu.Lock()
		var pets []int
		for i, ok := range p.listed {
			if ok {
				pets = append(pets, i)
			}
		}
		p.mu.Unlock()
		slices.Sort(pets)
		if q := r.Question[0]; q.Qtype == dns.TypeSRV && strings.EqualFold(q.Name, svc) {
			for _, i := range pets {
				target := petFQDN(i) + "."
				for _, port := range []uint16{2379, 2380} {
					m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: svc, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1}, Weight: 50, Port: port, Target: target})
				}
				m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: target, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.ParseIP(petIP(i))})
			}
		}
		if len(m.Answer) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		p.t.Fatal(err)
	}
	udp, tcp := &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: ln, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	p.t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return pc.LocalAddr().String()
}

// serveAPI stands in for the API server: GET of the PetSet etcd in demo,
// with the service account's token, over TLS with its CA.
func (p *etcdPets) serveAPI() {
	const token = "sa-token"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.URL.Path != "/apis/petset.dev/v1alpha1/namespaces/demo/petsets/etcd" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		p.mu.Lock()
		n := p.replicas
		p.mu.Unlock()
		fmt.Fprintf(w, `{"kind":"PetSet","metadata":{"name":"etcd","namespace":"demo"},"spec":{"replicas":%d}}`, n)
	}))
	p.t.Cleanup(srv.Close)
	p.saDir = filepath.Join(p.dir, "serviceaccount")
	os.Mkdir(p.saDir, 0o755)
	os.WriteFile(filepath.Join(p.saDir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	os.WriteFile(filepath.Join(p.saDir, "token"), []byte(token), 0o600)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	p.apiEnv = []string{"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port}
}

// scale sets the set's replicas and lists the pets below them in DNS, as
// the pods of a scale-up are published; the pets of a scale-down stay
// listed until their pods are gone.
func (p *etcdPets) scale(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replicas = n
	for i := range n {
		p.listed[i] = true
	}
}

func (p *etcdPets) dataDir(i int) string { return filepath.Join(p.dir, petName(i), "data") }

// common are the flags every peer-finder of pet i's pod gets.
func (p *etcdPets) common(i int) []string {
	return []string{"-service", "etcd", "-ns", "demo", "-domain", "cluster.local", "-hostname", petName(i), "-dns-server", p.dnsAddr, "-interval", "200ms"}
}

// startAll starts pets as the kubelet starts a pod, all at once: the init
// container renders etcd's configuration, then the sidecar and etcd run.
func (p *etcdPets) startAll(pets ...int) {
	var wg sync.WaitGroup
	for _, i := range pets {
		wg.Go(func() { p.start(i) })
	}
	wg.Wait()
}

func (p *etcdPets) start(i int) {
	t := p.t
	dir := filepath.Join(p.dir, petName(i))
	os.MkdirAll(p.dataDir(i), 0o755)
	conf := filepath.Join(dir, "etcd.yaml")
	init := exec.Command(p.pf, append(p.common(i), "-min-peers", "3", "-timeout", "2m", "-etcd-join", "-etcd-data-dir", p.dataDir(i), "-template", "builtin:etcd", "-out", conf)...)
	init.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := init.CombinedOutput(); err != nil {
		t.Errorf("etcd-%d's init container: %v\n%s", i, err, out)
		return
	} else {
		t.Logf("etcd-%d's init container:\n%s", i, out)
	}
	// The one change for sharing a network namespace: listen on the
	// pet's own address instead of every address.
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Error(err)
		return
	}
	os.WriteFile(conf, []byte(strings.ReplaceAll(string(b), "http://0.0.0.0:", "http://"+petIP(i)+":")), 0o644)

	pod := &etcdPod{logs: &SyncBuffer{}, exited: make(chan struct{})}
	pod.sidecar = exec.Command(p.pf, append(p.common(i), "-watch", "-etcd-promote", "-etcd-leave", "petset/etcd",
		"-health-addr", petIP(i)+":8081", "-service-account-dir", p.saDir)...)
	pod.sidecar.Env = append(os.Environ(), p.apiEnv...)
	pod.etcd = exec.Command(p.etcd, "--config-file", conf)
	for _, c := range []*exec.Cmd{pod.sidecar, pod.etcd} {
		c.Stdout, c.Stderr = pod.logs, pod.logs
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			t.Error(err)
			return
		}
	}
	go func() { pod.etcd.Wait(); close(pod.exited) }()
	p.mu.Lock()
	p.pods[i] = pod
	p.mu.Unlock()
}

// delete deletes pet i's pod gracefully: the etcd container's preStop
// hook, then SIGTERM to etcd and, once it is gone, to the sidecar. It
// returns what the hook answered.
func (p *etcdPets) delete(i int) string {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + petIP(i) + ":8081/etcd/leave")
	msg := ""
	if err != nil {
		msg = err.Error()
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		msg = resp.Status + " " + string(b)
	}
	p.stop(i, syscall.SIGTERM)
	return msg
}

// kill ends pet i's pod without its preStop hook, as a force-delete does.
func (p *etcdPets) kill(i int) { p.stop(i, syscall.SIGKILL) }

func (p *etcdPets) stop(i int, sig syscall.Signal) {
	p.mu.Lock()
	pod := p.pods[i]
	delete(p.pods, i)
	if i >= p.replicas {
		p.listed[i] = false
	}
	p.mu.Unlock()
	if pod == nil {
		return
	}
	pod.etcd.Process.Signal(sig)
	select {
	case <-pod.exited:
	case <-time.After(20 * time.Second):
		pod.etcd.Process.Kill()
		<-pod.exited
	}
	pod.sidecar.Process.Signal(sig)
	pod.sidecar.Wait()
	p.t.Logf("etcd-%d's pod:\n%s", i, pod.logs.String())
}

func (p *etcdPets) stopAll() {
	p.mu.Lock()
	var pets []int
	for i := range p.pods {
		pets = append(pets, i)
	}
	p.mu.Unlock()
	for _, i := range pets {
		p.stop(i, syscall.SIGKILL)
	}
}

// client is a client of pets' etcd, closed when the test ends.
func (p *etcdPets) client(pets ...int) *clientv3.Client {
	c := p.newClient(pets...)
	p.t.Cleanup(func() { c.Close() })
	return c
}

func (p *etcdPets) newClient(pets ...int) *clientv3.Client {
	var eps []string
	for _, i := range pets {
		eps = append(eps, petClient(i))
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// members lists the members through the first three pets: name -> ID, for
// those that have started ("" for one that has not).
func (p *etcdPets) members() map[string]uint64 {
	c := p.newClient(0, 1, 2)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.MemberList(ctx)
	if err != nil {
		return nil
	}
	out := map[string]uint64{}
	for _, m := range resp.Members {
		name := m.Name
		if m.IsLearner {
			name += " (learner)"
		}
		out[name] = m.ID
	}
	return out
}

// waitMembers waits until the cluster has n started voting members,
// etcd-0 to etcd-(n-1), and every one's etcd answers as healthy.
func (p *etcdPets) waitMembers(n int) map[string]uint64 {
	p.t.Helper()
	var want []string
	for i := range n {
		want = append(want, petName(i))
	}
	deadline := time.Now().Add(2 * time.Minute)
	var got map[string]uint64
	for {
		got = p.members()
		var names []string
		for name := range got {
			names = append(names, name)
		}
		slices.Sort(names)
		if slices.Equal(names, want) && p.healthy(n) {
			return got
		}
		if time.Now().After(deadline) || p.t.Failed() {
			p.t.Fatalf("members %v, want started voting members %v", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// healthy reports whether the first n pets' etcd say they are ready:
// /readyz, which fails for a learner and without a leader.
func (p *etcdPets) healthy(n int) bool {
	for i := range n {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(petClient(i) + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}

// waitValue waits until key reads value through pet i alone.
func (p *etcdPets) waitValue(i int, key, value string) {
	p.t.Helper()
	c := p.newClient(i)
	defer c.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := c.Get(ctx, key)
		cancel()
		if err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == value {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s through etcd-%d: %v %v", key, i, resp, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// watchHealth reads a key through c every 100ms until the returned
// function is called, which returns the failed reads.
func (p *etcdPets) watchHealth(c *clientv3.Client) func() []string {
	var (
		stop     atomic.Bool
		mu       sync.Mutex
		failures []string
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		for !stop.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			start := time.Now()
			_, err := c.Get(ctx, "k")
			cancel()
			if err != nil {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s after %v: %v", start.Format("15:04:05.000"), time.Since(start), err))
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return func() []string {
		stop.Store(true)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return failures
	}
}
