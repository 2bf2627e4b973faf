package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// peerURL is builtin:etcd's peer URL of a web pet.
func peerURL(host string) string { return "http://" + host + ".web.demo.svc.cluster.local:2380" }

// started is a member that has run: named, with a client URL.
func started(id uint64, host string) etcdMember {
	return etcdMember{ID: id, Name: host, PeerURLs: []string{peerURL(host)}, ClientURLs: []string{"http://" + host + ".web.demo.svc.cluster.local:2379"}}
}

func peersOf(t *testing.T, hosts ...string) []Peer {
	t.Helper()
	a, err := parseSRV(srvReply(5, hosts...).msg, svcName)
	if err != nil {
		t.Fatal(err)
	}
	return a.peers
}

// The init container's decision, for each state a pet can start in.
// etcd's rules the expected clusters follow: a new cluster's members all
// start with the same initial-cluster; a member joining a running one
// starts with initial-cluster-state existing and an initial-cluster that
// lists every member with its peer URLs (matched by URL, so names of other
// members do not matter), itself under its own name.
func TestDecideJoin(t *testing.T) {
	three := peersOf(t, "web-0", "web-1", "web-2")
	five := peersOf(t, "web-0", "web-1", "web-2", "web-3", "web-4")
	running := []etcdMember{started(0xa, "web-0"), started(0xb, "web-1"), started(0xc, "web-2")}
	newOf := func(hosts ...string) *EtcdCluster {
		c := &EtcdCluster{State: "new"}
		for _, h := range hosts {
			c.Members = append(c.Members, EtcdMember{Name: h, PeerURLs: []string{peerURL(h)}})
		}
		return c
	}
	existing := func(hosts ...string) *EtcdCluster {
		c := newOf(hosts...)
		c.State = "existing"
		return c
	}
	tests := []struct {
		name string
		in   joinInput
		want joinPlan // Why is not compared
	}{
		{"new: no cluster, one of the first -min-peers",
			joinInput{Host: "web-1", Peers: three, MinPeers: 3},
			joinPlan{Action: joinBootstrap, Cluster: newOf("web-0", "web-1", "web-2")}},
		{"new: only the first -min-peers bootstrap, whatever else is published",
			joinInput{Host: "web-0", Peers: five, MinPeers: 3},
			joinPlan{Action: joinBootstrap, Cluster: newOf("web-0", "web-1", "web-2")}},
		{"new: a later pet waits for the cluster to run",
			joinInput{Host: "web-3", Peers: five, MinPeers: 3},
			joinPlan{Action: joinWait}},
		{"new: -min-peers 1 bootstraps the first pet alone",
			joinInput{Host: "web-0", Peers: three, MinPeers: 1},
			joinPlan{Action: joinBootstrap, Cluster: newOf("web-0")}},
		{"restart with data while no member answers (all restarting): start from the data",
			joinInput{Host: "web-4", HasData: true, Peers: five, MinPeers: 3},
			joinPlan{Action: joinRestart, Cluster: newOf("web-0", "web-1", "web-2", "web-3", "web-4")}},
		{"restart with data: a member",
			joinInput{Host: "web-1", PeerURL: peerURL("web-1"), HasData: true, Peers: three, MinPeers: 3, Answered: true, Members: running},
			joinPlan{Action: joinRestart, Cluster: existing("web-0", "web-1", "web-2")}},
		{"re-add after a crash: added, never started, no data",
			joinInput{Host: "web-3", PeerURL: peerURL("web-3"), Peers: five, MinPeers: 3, Answered: true,
				Members: append(slices.Clone(running), etcdMember{ID: 0xd, PeerURLs: []string{peerURL("web-3")}, Learner: true})},
			joinPlan{Action: joinStart, Cluster: existing("web-0", "web-1", "web-2", "web-3")}},
		{"an initial member the others went ahead without",
			joinInput{Host: "web-2", PeerURL: peerURL("web-2"), Peers: three, MinPeers: 3, Answered: true,
				Members: []etcdMember{started(0xa, "web-0"), started(0xb, "web-1"), {ID: 0xc, Name: "web-2", PeerURLs: []string{peerURL("web-2")}}}},
			joinPlan{Action: joinStart, Cluster: existing("web-0", "web-1", "web-2")}},
		{"join: not a member",
			joinInput{Host: "web-3", PeerURL: peerURL("web-3"), Peers: five, MinPeers: 3, Answered: true, Members: running},
			joinPlan{Action: joinAdd}},
		{"join after a scale-down kept the claim: the removed member's data goes first",
			joinInput{Host: "web-3", PeerURL: peerURL("web-3"), HasData: true, Peers: five, MinPeers: 3, Answered: true, Members: running},
			joinPlan{Action: joinAdd, Wipe: true}},
		{"a member that has run lost its data: replaced",
			joinInput{Host: "web-2", PeerURL: peerURL("web-2"), Peers: three, MinPeers: 3, Answered: true, Members: running},
			joinPlan{Action: joinReplace, Member: running[2]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decideJoin(tc.in)
			if got.Why == "" {
				t.Error("no reason given")
			}
			got.Why = ""
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v (cluster %+v)\nwant %+v (cluster %+v)", got, got.Cluster, tc.want, tc.want.Cluster)
			}
		})
	}
}

// Members added but not started have no name; the initial cluster names
// them after their peer URL's host (or their ID), this pod after its
// hostname, and lists them in ordinal order.
func TestExistingEtcdClusterNamesUnstartedMembers(t *testing.T) {
	members := []etcdMember{
		started(0xa, "web-0"),
		{ID: 0xd, PeerURLs: []string{peerURL("web-3")}, Learner: true},
		{ID: 0xe, PeerURLs: []string{"http://10.0.0.5:2380", "http://10.0.0.6:2380"}},
		{ID: 0xf, PeerURLs: []string{peerURL("web-4")}},
	}
	c := existingEtcdCluster(members, "web-4", peerURL("web-4"))
	want := "e=http://10.0.0.5:2380,e=http://10.0.0.6:2380,web-0=" + peerURL("web-0") + ",web-3=" + peerURL("web-3") + ",web-4=" + peerURL("web-4")
	if got := c.InitialCluster(); got != want || c.State != "existing" {
		t.Fatalf("%s %s\nwant %s", c.State, got, want)
	}
}

// Only a scale-down that took the pet's ordinal out of the set removes its
// member.
func TestDecideLeave(t *testing.T) {
	tests := []struct {
		ordinal int
		set     setScale
		leave   bool
	}{
		{2, setScale{Found: true, Replicas: 3}, false},                 // the highest kept ordinal: a restart or an update
		{3, setScale{Found: true, Replicas: 3}, true},                  // the lowest removed one
		{4, setScale{Found: true, Replicas: 3}, true},                  // above
		{0, setScale{Found: true, Replicas: 1}, false},                 // the last pet
		{5, setScale{Found: true, Replicas: 3, Start: 3}, false},       // ordinals.start shifts the range: 3, 4, 5
		{6, setScale{Found: true, Replicas: 3, Start: 3}, true},        //
		{2, setScale{Found: true, Replicas: 3, Start: 3}, true},        // below the start
		{3, setScale{Found: true, Replicas: 0}, false},                 // scaled to zero: kept for a scale back up
		{3, setScale{}, false},                                         // the set is gone
		{3, setScale{Found: true, Deleting: true, Replicas: 3}, false}, // being deleted
	}
	for _, tc := range tests {
		leave, why := decideLeave(tc.ordinal, tc.set)
		if leave != tc.leave || why == "" {
			t.Errorf("ordinal %d, set %+v: leave %v (%s), want %v", tc.ordinal, tc.set, leave, why, tc.leave)
		}
	}
}

func TestEtcdHasData(t *testing.T) {
	dir := t.TempDir()
	if has, err := etcdHasData(dir); has || err != nil {
		t.Fatalf("empty: %v %v", has, err)
	}
	wal := filepath.Join(dir, "member", "wal")
	os.MkdirAll(wal, 0o755)
	os.MkdirAll(filepath.Join(dir, "member", "snap"), 0o755)
	os.WriteFile(filepath.Join(dir, "member", "snap", "db"), nil, 0o644)
	if has, _ := etcdHasData(dir); has {
		t.Fatal("a database without a write-ahead log is no data to etcd")
	}
	os.WriteFile(filepath.Join(wal, "0000000000000000-0000000000000000.wal"), nil, 0o644)
	if has, _ := etcdHasData(dir); !has {
		t.Fatal("write-ahead log not found")
	}
}

// fakeEtcd is an etcd cluster's membership: its errors are given out in
// turn before a call succeeds.
type fakeEtcd struct {
	mu          sync.Mutex
	members     []etcdMember
	unreachable bool
	listErrs    []error
	addErrs     []error
	removeErrs  []error
	promoteErrs []error
	calls       []string
	endpoints   [][]string
}

func (f *fakeEtcd) dial(_ context.Context, endpoints []string) (etcdCluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endpoints = append(f.endpoints, endpoints)
	if f.unreachable {
		return nil, errNoEtcd
	}
	return f, nil
}

func next(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func (f *fakeEtcd) Members(context.Context) ([]etcdMember, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := next(&f.listErrs); err != nil {
		return nil, err
	}
	return slices.Clone(f.members), nil
}

func (f *fakeEtcd) AddLearner(_ context.Context, u string) ([]etcdMember, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "add "+u)
	if err := next(&f.addErrs); err != nil {
		return nil, err
	}
	f.members = append(f.members, etcdMember{ID: 0x100 + uint64(len(f.members)), PeerURLs: []string{u}, Learner: true})
	return slices.Clone(f.members), nil
}

func (f *fakeEtcd) Remove(_ context.Context, id uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("remove %x", id))
	if err := next(&f.removeErrs); err != nil {
		return err
	}
	n := len(f.members)
	f.members = slices.DeleteFunc(f.members, func(m etcdMember) bool { return m.ID == id })
	if len(f.members) == n {
		return errMemberNotFound
	}
	return nil
}

func (f *fakeEtcd) Promote(_ context.Context, id uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("promote %x", id))
	if err := next(&f.promoteErrs); err != nil {
		return err
	}
	for i := range f.members {
		if f.members[i].ID == id {
			f.members[i].Learner = false
			return nil
		}
	}
	return errMemberNotFound
}

func (f *fakeEtcd) Close() error { return nil }

func (f *fakeEtcd) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// joinRun runs a -etcd-join init container for host with a data directory
// and returns the rendered builtin:etcd.
func joinRun(t *testing.T, fake *fakeEtcd, dataDir, host string, peers []string, extra ...string) (string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "etcd.yaml")
	c := testConfig(t, append([]string{"-hostname", host, "-etcd-join", "-etcd-data-dir", dataDir, "-template", "builtin:etcd", "-out", out}, extra...)...)
	res := newFake().on(svcName, dns.TypeSRV, srvReply(5, peers...))
	err := Run(context.Background(), c, Options{Resolver: res, Stdout: io.Discard, Stderr: io.Discard, etcd: fake.dial})
	b, _ := os.ReadFile(out)
	return string(b), err
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !slices.Contains(strings.Split(text, "\n"), l) {
			t.Errorf("no line %q in:\n%s", l, text)
		}
	}
}

// A pet not in the cluster is added as a learner, after etcd has refused
// it for now (another learner catching up), and renders the members the
// addition returned.
func TestRunEtcdJoinAdds(t *testing.T) {
	data := t.TempDir()
	fake := &fakeEtcd{members: []etcdMember{started(0xa, "web-0"), started(0xb, "web-1"), started(0xc, "web-2")},
		addErrs: []error{fmt.Errorf("%w: too many learners", errNotNow)}}
	out, err := joinRun(t, fake, data, "web-3", webs(4), "-min-peers", "3")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, out,
		"name: web-3",
		"initial-cluster: web-0="+peerURL("web-0")+",web-1="+peerURL("web-1")+",web-2="+peerURL("web-2")+",web-3="+peerURL("web-3"),
		"initial-cluster-state: existing",
		"initial-advertise-peer-urls: "+peerURL("web-3"),
		"data-dir: "+data)
	if want := []string{"add " + peerURL("web-3"), "add " + peerURL("web-3")}; !reflect.DeepEqual(fake.called(), want) {
		t.Fatalf("calls %q, want %q", fake.called(), want)
	}
	// Through the other peers' client ports, by the SRV answer's addresses.
	if want := []string{"http://10.244.0.1:2379", "http://10.244.0.2:2379", "http://10.244.0.3:2379"}; !reflect.DeepEqual(fake.endpoints[0], want) {
		t.Fatalf("endpoints %q, want %q", fake.endpoints[0], want)
	}
}

// A pet whose claim holds the data of a member a scale-down removed
// removes that data, then is added.
func TestRunEtcdJoinWipesARemovedMember(t *testing.T) {
	data := t.TempDir()
	wal := filepath.Join(data, "member", "wal")
	os.MkdirAll(wal, 0o755)
	os.WriteFile(filepath.Join(wal, "0.wal"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(data, "keep"), nil, 0o644)
	fake := &fakeEtcd{members: []etcdMember{started(0xa, "web-0")}}
	out, err := joinRun(t, fake, data, "web-1", webs(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "member")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the removed member's data is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "keep")); err != nil {
		t.Fatal("more than member/ removed")
	}
	wantLines(t, out, "initial-cluster-state: existing")
}

// A member with data restarts from it without a change, whether or not the
// cluster answers; its data stays.
func TestRunEtcdJoinRestarts(t *testing.T) {
	data := t.TempDir()
	wal := filepath.Join(data, "member", "wal")
	os.MkdirAll(wal, 0o755)
	os.WriteFile(filepath.Join(wal, "0.wal"), []byte("log"), 0o644)
	for _, fake := range []*fakeEtcd{
		{members: []etcdMember{started(0xa, "web-0"), started(0xb, "web-1")}},
		{unreachable: true},
	} {
		if _, err := joinRun(t, fake, data, "web-1", webs(2), "-min-peers", "2"); err != nil {
			t.Fatal(err)
		}
		if len(fake.called()) != 0 {
			t.Fatalf("changes %q for a restart", fake.called())
		}
		if b, _ := os.ReadFile(filepath.Join(wal, "0.wal")); string(b) != "log" {
			t.Fatal("data lost")
		}
	}
}

// A member that ran and lost its data is removed and added again.
func TestRunEtcdJoinReplaces(t *testing.T) {
	fake := &fakeEtcd{members: []etcdMember{started(0xa, "web-0"), started(0xb, "web-1"), started(0xc, "web-2")}}
	if _, err := joinRun(t, fake, t.TempDir(), "web-2", webs(3), "-min-peers", "3"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"remove c", "add " + peerURL("web-2")}; !reflect.DeepEqual(fake.called(), want) {
		t.Fatalf("calls %q, want %q", fake.called(), want)
	}
}

// With no cluster to answer, the first -min-peers bootstrap one; a later
// pet waits, and -timeout names what it waited for.
func TestRunEtcdJoinBootstrapsOrWaits(t *testing.T) {
	fake := &fakeEtcd{unreachable: true}
	out, err := joinRun(t, fake, t.TempDir(), "web-1", webs(4), "-min-peers", "3")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, out, "initial-cluster: web-0="+peerURL("web-0")+",web-1="+peerURL("web-1")+",web-2="+peerURL("web-2"), "initial-cluster-state: new")

	_, err = joinRun(t, fake, t.TempDir(), "web-3", webs(4), "-min-peers", "3", "-timeout", "50ms")
	if ExitCode(err) != ExitTimeout || !strings.Contains(err.Error(), "not among the first -min-peers 3") {
		t.Fatalf("%v", err)
	}
}

// The sidecar promotes its learner once etcd lets it, and then stops
// asking.
func TestRunEtcdPromote(t *testing.T) {
	fake := &fakeEtcd{
		members:     []etcdMember{started(0xa, "web-0"), {ID: 0xb, Name: "web-1", PeerURLs: []string{peerURL("web-1")}, ClientURLs: []string{"x"}, Learner: true}},
		promoteErrs: []error{fmt.Errorf("%w: learner not in sync", errNotNow), fmt.Errorf("%w: learner not in sync", errNotNow)},
	}
	c := testConfig(t, "-hostname", "web-1", "-watch", "-etcd-promote")
	res := newFake().on(svcName, dns.TypeSRV, srvReply(5, "web-0", "web-1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, Options{Resolver: res, Stdout: io.Discard, etcd: fake.dial}) }()
	eventually(t, "a voting member", func() bool {
		m, _ := fake.Members(ctx)
		return !m[1].Learner
	})
	n := len(fake.called())
	eventually(t, "more lookups", func() bool { return res.count(svcName, dns.TypeSRV) > 20 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := []string{"promote b", "promote b", "promote b"}; !reflect.DeepEqual(fake.called(), want) || n != 3 {
		t.Fatalf("calls %q, want %q", fake.called(), want)
	}
}

type fakeSet struct {
	mu    sync.Mutex
	scale setScale
	err   error
}

func (s *fakeSet) Scale(context.Context) (setScale, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scale, s.err
}

// GET /etcd/leave removes the member of a pet a scale-down took out, and
// only that.
func TestRunEtcdLeave(t *testing.T) {
	fake := &fakeEtcd{members: []etcdMember{started(0xa, "web-0"), started(0xb, "web-1"), started(0xc, "web-2")}}
	set := &fakeSet{scale: setScale{Found: true, Replicas: 3}}
	c := testConfig(t, "-hostname", "web-2", "-watch", "-etcd-leave", "petset/web", "-health-addr", "127.0.0.1:0")
	res := newFake().on(svcName, dns.TypeSRV, srvReply(5, webs(3)...))
	addrs := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, c, Options{Resolver: res, Stdout: io.Discard, etcd: fake.dial, set: set, Listening: func(a net.Addr) { addrs <- a }})
	}()
	leave := "http://" + (<-addrs).String() + "/etcd/leave"
	eventually(t, "a lookup", func() bool { return res.count(svcName, dns.TypeSRV) > 0 })
	get := func() (int, string) {
		resp, err := http.Get(leave)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusOK || !strings.Contains(body, "staying") || len(fake.called()) != 0 {
		t.Fatalf("within the set: %d %q, calls %q", code, body, fake.called())
	}
	set.mu.Lock()
	set.scale.Replicas = 2
	set.mu.Unlock()
	fake.mu.Lock()
	fake.removeErrs = []error{fmt.Errorf("%w: unhealthy cluster", errNotNow)}
	fake.mu.Unlock()
	if code, body := get(); code != http.StatusOK || !strings.Contains(body, "removed member c") {
		t.Fatalf("scaled down: %d %q, calls %q", code, body, fake.called())
	}
	if want := []string{"remove c", "remove c"}; !reflect.DeepEqual(fake.called(), want) {
		t.Fatalf("calls %q, want %q", fake.called(), want)
	}
	if code, body := get(); code != http.StatusOK || !strings.Contains(body, "not a member") {
		t.Fatalf("again: %d %q", code, body)
	}
	set.mu.Lock()
	set.err = errors.New("403 Forbidden")
	set.mu.Unlock()
	if code, body := get(); code != http.StatusInternalServerError || !strings.Contains(body, "403") {
		t.Fatalf("set unreadable: %d %q", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A run-once -etcd-leave, for a pet whose pod is gone, leaves and exits.
func TestRunEtcdLeaveOnce(t *testing.T) {
	fake := &fakeEtcd{members: []etcdMember{started(0xa, "web-0"), started(0xb, "web-1")}}
	c := testConfig(t, "-hostname", "web-1", "-etcd-leave", "statefulset/web")
	res := newFake().on(svcName, dns.TypeSRV, srvReply(5, "web-0"))
	var stdout syncBuffer
	err := Run(context.Background(), c, Options{Resolver: res, Stdout: &stdout, etcd: fake.dial, set: &fakeSet{scale: setScale{Found: true, Replicas: 1}}})
	if err != nil || !strings.Contains(stdout.String(), "removed member b") {
		t.Fatalf("%v, %q", err, stdout.String())
	}
	if want := []string{"http://10.244.0.1:2379"}; !reflect.DeepEqual(fake.endpoints[0], want) {
		t.Fatalf("endpoints %q", fake.endpoints[0])
	}
}
