package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
)

// RealNodeName is the node the kubelet registers.
const RealNodeName = "real-node-0"

// ClusterDNS is the kubelet's clusterDNS: the kube-dns Service's address.
const ClusterDNS = "10.96.0.10"

// nodeLock is held while a real node runs: there can be one on a machine
// (the kubelet and the CNI plugins use host paths whatever their
// configuration says). nodeState records, while it runs, what to undo if
// the process dies before it stops the node.
const (
	nodeLock  = "/run/lock/petset-testbed-node.lock"
	nodeState = "/run/lock/petset-testbed-node.json"
)

// realNode is the kubelet node: containerd, the kubelet, kube-proxy, the
// registry their images come from and the stub resolver, all under
// Dir/node, and what they changed on the host.
type realNode struct {
	lock     *os.File
	net      *hostNet
	stub     *stubDNS
	registry string // host:port of the registry
}

// savedNode is nodeState's content.
type savedNode struct {
	Dir string   `json:"dir"`
	Net *hostNet `json:"net"`
}

// prepareRealNode takes the machine's node lock, undoes what a run that
// died left, and sets up the host network, before the API server starts
// on NodeIP.
func (c *Cluster) prepareRealNode() error {
	if os.Geteuid() != 0 {
		return errors.New("the real node needs root: containerd, the kubelet and kube-proxy change the host's mounts, cgroups and network")
	}
	lock, err := os.OpenFile(nodeLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return fmt.Errorf("another real node runs on this machine (%s is locked): %w", nodeLock, err)
	}
	c.node = &realNode{lock: lock}
	if b, err := os.ReadFile(nodeState); err == nil {
		var old savedNode
		if json.Unmarshal(b, &old) == nil && old.Net != nil {
			c.opts.Log("cleaning up the real node a dead run left in %s", old.Dir)
			if err := tearDownNode(old.Dir, old.Net); err != nil {
				c.opts.Log("cleanup of %s: %v", old.Dir, err)
			}
		}
		os.Remove(nodeState)
	}
	c.node.net, err = setUpHostNet()
	if saveErr := c.saveNode(); err == nil {
		err = saveErr
	}
	return err
}

func (c *Cluster) saveNode() error {
	b, err := json.Marshal(savedNode{Dir: c.Dir, Net: c.node.net})
	if err != nil {
		return err
	}
	return os.WriteFile(nodeState, b, 0o644)
}

// startRealNode starts the registry and pushes the test images to it,
// then containerd, the kubelet and kube-proxy, and waits until the node is
// Ready.
func (c *Cluster) startRealNode(ctx context.Context) error {
	dir := c.path("node")
	for _, d := range []string{"containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "volume-plugins", "registry", "volumes"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	stub, err := startStubDNS(NodeIP + ":53")
	if err != nil {
		return fmt.Errorf("stub resolver: %w", err)
	}
	c.node.stub = stub
	if err := c.startRegistry(ctx); err != nil {
		return err
	}
	c.opts.Log("building the test images and pushing them to %s", c.node.registry)
	if err := c.pushTestImages(ctx); err != nil {
		return err
	}
	if err := c.writeNodeConfigs(); err != nil {
		return err
	}
	if err := c.run("containerd", "containerd", "--config", c.path("node", "containerd.toml")); err != nil {
		return err
	}
	if err := waitFile(ctx, c.path("node", "containerd", "containerd.sock"), 60*time.Second); err != nil {
		return fmt.Errorf("containerd: %w (log: %s)", err, c.logPath("containerd"))
	}
	for _, p := range []string{"kubelet", "kubelet-healthz", "kube-proxy-healthz", "kube-proxy-metrics"} {
		if c.ports[p], err = freePort(); err != nil {
			return err
		}
	}
	if err := c.writeNodeConfigs(); err != nil { // with the ports
		return err
	}
	if err := c.run("kubelet", c.bin("kubelet"),
		"--config="+c.path("node", "kubelet.yaml"), "--kubeconfig="+c.Kubeconfig,
		"--root-dir="+c.path("node", "kubelet"), "--node-ip="+NodeIP,
		"--hostname-override="+RealNodeName, "-v=2"); err != nil {
		return err
	}
	if err := c.run("kube-proxy", c.bin("kube-proxy"), "--config="+c.path("node", "kube-proxy.yaml"), "-v=2"); err != nil {
		return err
	}
	if err := waitFor(ctx, 120*time.Second, func() (bool, error) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, RealNodeName, metav1.GetOptions{})
		return err == nil && nodeReady(n) && len(n.Spec.Taints) == 0, nil
	}); err != nil {
		return fmt.Errorf("real node not Ready: %w (logs: %s, %s)", err, c.logPath("kubelet"), c.logPath("kube-controller-manager"))
	}
	return c.addNodeVolumes(ctx, c.opts.Volumes)
}

// Registry is the address (host:port) of the registry the real node pulls
// from; empty without one.
func (c *Cluster) Registry() string {
	if c.node == nil {
		return ""
	}
	return c.node.registry
}

// StubQueries is how many questions the real node's stub resolver (the
// upstream of pods and CoreDNS) answered.
func (c *Cluster) StubQueries() int64 {
	if c.node == nil || c.node.stub == nil {
		return 0
	}
	return c.node.stub.Queries()
}

// repoRoot is the root of petset's main module.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// startRegistry builds and starts the registry (build/cmd/registry) on
// 127.0.0.1.
func (c *Cluster) startRegistry(ctx context.Context) error {
	bin := c.path("node", "registry", "registry")
	cmd := exec.CommandContext(ctx, "go", "-C", filepath.Join(repoRoot(), "build"), "build", "-o", bin, "./cmd/registry")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the registry: %w: %s", err, out)
	}
	addrFile := c.path("node", "registry", "addr")
	if err := c.run("registry", bin, "-addr=127.0.0.1:0", "-addr-file="+addrFile); err != nil {
		return err
	}
	if err := waitFile(ctx, addrFile, 30*time.Second); err != nil {
		return fmt.Errorf("registry: %w (log: %s)", err, c.logPath("registry"))
	}
	b, err := os.ReadFile(addrFile)
	c.node.registry = strings.TrimSpace(string(b))
	return err
}

// TestImage is the reference of a test image in the registry: "pause",
// "resolver", "coredns" (stock CoreDNS v1.15.0) or "etcd" (v3.6.5).
func (c *Cluster) TestImage(name string) string {
	switch name {
	case "coredns":
		return c.node.registry + "/coredns/coredns:v1.15.0"
	case "etcd":
		return c.node.registry + "/etcd:v3.6.5"
	}
	return c.node.registry + "/" + name + ":" + testImageTag
}

// testImageTag tags the images built from this repository's test
// programs: always the same, so containerd's config names the pause image
// before it is built.
const testImageTag = "testbed"

func (c *Cluster) pushTestImages(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "go", "-C", filepath.Join(repoRoot(), "build"), "run", "./cmd/testimages",
		"-root", repoRoot(), "-registry", c.node.registry, "-etcd", c.bin("etcd"), "-tag", testImageTag)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("test images: %w: %s", err, out)
	}
	return os.WriteFile(c.logPath("testimages"), out, 0o644)
}

// writeNodeConfigs writes the configuration of containerd, the CNI
// plugins, the kubelet and kube-proxy, and the node's resolv.conf.
func (c *Cluster) writeNodeConfigs() error {
	n := func(parts ...string) string { return c.path(append([]string{"node"}, parts...)...) }
	files := map[string]string{
		n("containerd.toml"): fmt.Sprintf(containerdConfig, n("containerd", "root"), n("containerd", "state"),
			n("containerd", "containerd.sock"), n("containerd", "opt"), c.TestImage("pause"), n("cni", "net.d"), n("containerd", "certs.d")),
		n("containerd", "certs.d", c.node.registry, "hosts.toml"): fmt.Sprintf(registryHosts, c.node.registry, c.node.registry),
		n("cni", "net.d", "10-petset.conflist"):                   fmt.Sprintf(cniConfig, PodBridge, PodCIDR, n("cni", "ipam")),
		n("resolv.conf"):                                          "nameserver " + NodeIP + "\n",
		n("kubelet.yaml"): fmt.Sprintf(kubeletConfig, NodeIP, c.ports["kubelet"], c.ports["kubelet-healthz"],
			n("containerd", "containerd.sock"), ClusterDNS, n("resolv.conf"), n("pod-logs"), n("volume-plugins")),
		n("kube-proxy.yaml"): fmt.Sprintf(kubeProxyConfig, c.Kubeconfig, RealNodeName, NodeIP, c.ports["kube-proxy-healthz"],
			c.ports["kube-proxy-metrics"], PodCIDR, NodeIP),
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// containerd 1.6: its own root, state and socket; the CRI plugin with runc
// and cgroupfs, CNI from Debian's plugins, images from the testbed's
// registry, and oom_score_adj clamped to its own (root here lacks
// CAP_SYS_RESOURCE, and runc fails every sandbox asking for -998).
const containerdConfig = `version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = %q

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`

// registryHosts makes containerd pull from the testbed's registry over
// plain HTTP.
const registryHosts = `server = "http://%s"

[host."http://%s"]
  capabilities = ["pull", "resolve"]
`

// cniConfig: a bridge on a pod range of its own, no masquerade (pod
// traffic is not rewritten to leave the machine; the guard rules drop what
// would), and host-local IPAM keeping its state under the scratch dir.
const cniConfig = `{
  "cniVersion": "1.0.0",
  "name": "petset-testbed",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "hairpinMode": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

// kubeletConfig: cgroupfs on this machine's cgroup v1, no swap check, the
// testbed's containerd, DNS and resolv.conf, paths under the scratch dir,
// anonymous AlwaysAllow on the node's address only (the API server's logs
// and exec), and eviction and image GC that never take imported images.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: %s
podLogsDir: %s
volumePluginDir: %s
serializeImagePulls: false
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", nodefs.inodesFree: "1%%", imagefs.available: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 2s
`

// kubeProxyConfig: iptables mode; oomScoreAdj 0 and no conntrack tuning,
// neither of which root may change here.
const kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: %s}
hostnameOverride: %s
bindAddress: %s
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
clusterCIDR: %s
nodePortAddresses: [%s/32]
oomScoreAdj: 0
conntrack: {maxPerCore: 0}
`

// addNodeVolumes creates n PersistentVolumes of the real node: hostPath
// directories under the scratch dir, owned by the images' user.
func (c *Cluster) addNodeVolumes(ctx context.Context, n int) error {
	for i := range n {
		path := c.path("node", "volumes", fmt.Sprintf("pv-%03d", i))
		if err := os.MkdirAll(path, 0o700); err != nil {
			return err
		}
		if err := os.Chown(path, 65532, 65532); err != nil {
			return err
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pv-%03d", i), Labels: map[string]string{"petset.dev/pool": "testbed"}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: path},
				},
			},
		}
		if _, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("persistent volume %s: %w", pv.Name, err)
		}
	}
	return nil
}

// stopRealNode deletes the node's pods while the kubelet runs (so the
// CNI plugins and volume unmounts run), stops its processes, and removes
// what they left on the host.
func (c *Cluster) stopRealNode() {
	if c.node == nil {
		return
	}
	if c.Client != nil && c.procs["kubelet"] != nil {
		if err := c.drainRealNode(); err != nil {
			c.opts.Log("drain the real node: %v", err)
		}
	}
	for _, name := range []string{"kube-proxy", "kubelet", "containerd", "registry"} {
		c.kill(name)
	}
	if c.node.stub != nil {
		c.node.stub.stop()
	}
	if err := tearDownNode(c.Dir, c.node.net); err != nil {
		c.opts.Log("real node cleanup: %v", err)
	}
	os.Remove(nodeState)
	c.node.lock.Close()
	c.node = nil
}

// drainRealNode cordons the real node (so controllers' replacements
// stay pending), deletes every pod on it, and waits until the kubelet has
// ended them.
func (c *Cluster) drainRealNode() error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cordon := []byte(`{"spec":{"unschedulable":true}}`)
	if _, err := c.Client.CoreV1().Nodes().Patch(ctx, RealNodeName, types.MergePatchType, cordon, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("cordon: %w", err)
	}
	pods := c.Client.CoreV1().Pods(metav1.NamespaceAll)
	sel := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", RealNodeName).String()}
	one := int64(1)
	return waitFor(ctx, 90*time.Second, func() (bool, error) {
		list, err := pods.List(ctx, sel)
		if err != nil {
			return false, nil
		}
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				c.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &one})
			}
		}
		return len(list.Items) == 0, nil
	})
}

// tearDownNode stops what is left of the real node under dir (containerd,
// its shims and their containers), unmounts, removes its cgroups and
// kube-proxy's rules, and undoes h.
func tearDownNode(dir string, h *hostNet) error {
	var errs []error
	sock := filepath.Join(dir, "node", "containerd", "containerd.sock")
	for _, name := range []string{"kube-proxy", "kubelet", "containerd", "registry"} {
		if b, err := os.ReadFile(filepath.Join(dir, name+".pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				stopPID(pid)
			}
			os.Remove(filepath.Join(dir, name+".pid"))
		}
	}
	killShims(sock)
	killCgroup("kubepods")
	errs = append(errs, unmountUnder(dir))
	errs = append(errs, removeCgroups("kubepods"))
	if h != nil {
		errs = append(errs, h.tearDown())
	}
	return errors.Join(errs...)
}

// killShims kills the containerd shims serving the containerd at sock
// (they outlive it), and the containers under them.
func killShims(sock string) {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if !strings.HasSuffix(args[0], "containerd-shim-runc-v2") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == sock {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// cgroupRoots are the mount points of this machine's cgroup hierarchies.
func cgroupRoots() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return append(out, "/sys/fs/cgroup")
}

// killCgroup kills every process left in the cgroups called name (and
// below) of every hierarchy.
func killCgroup(name string) {
	for _, root := range cgroupRoots() {
		filepath.WalkDir(filepath.Join(root, name), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// removeCgroups removes the cgroups called name, deepest first, in every
// hierarchy.
func removeCgroups(name string) error {
	var errs []error
	for _, root := range cgroupRoots() {
		var dirs []string
		filepath.WalkDir(filepath.Join(root, name), func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for range 50 { // processes just killed take a moment to leave
				if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

func waitFile(ctx context.Context, path string, timeout time.Duration) error {
	return waitFor(ctx, timeout, func() (bool, error) {
		_, err := os.Stat(path)
		return err == nil, nil
	})
}
