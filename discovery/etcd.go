package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// etcd's ports, as builtin:etcd advertises them.
const (
	etcdPeerPort   = "2380"
	etcdClientPort = "2379"
)

// EtcdCluster is the etcd cluster this pod's member starts into, as
// -etcd-join found it; builtin:etcd renders it.
type EtcdCluster struct {
	// State is etcd's initial-cluster-state: new to bootstrap a cluster,
	// existing to join a running one.
	State string `json:"state"`
	// Members are etcd's initial-cluster: every member, this one included.
	Members []EtcdMember `json:"members"`
	// DataDir is -etcd-data-dir.
	DataDir string `json:"dataDir"`
}

// EtcdMember is one member of an initial cluster.
type EtcdMember struct {
	Name     string   `json:"name"`
	PeerURLs []string `json:"peerURLs"`
}

// InitialCluster is etcd's initial-cluster setting: name=peerURL for every
// peer URL of every member, comma-separated.
func (c EtcdCluster) InitialCluster() string {
	var b strings.Builder
	for _, m := range c.Members {
		for _, u := range m.PeerURLs {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(m.Name + "=" + u)
		}
	}
	return b.String()
}

// etcdMember is a member as the cluster lists it.
type etcdMember struct {
	ID         uint64
	Name       string // empty until the member has started
	PeerURLs   []string
	ClientURLs []string // empty until the member has started
	Learner    bool
}

// started reports whether the member's etcd has ever run: a member added
// to a running cluster has no name and no client URLs until then, and a
// member of a new cluster's initial-cluster has a name but no client URLs.
func (m etcdMember) started() bool { return len(m.ClientURLs) > 0 }

// etcdCluster is the part of etcd's cluster API peer-finder uses; dialEtcd
// makes the real one.
type etcdCluster interface {
	// Members lists the members; it fails when no member answers, or
	// none that has a leader.
	Members(ctx context.Context) ([]etcdMember, error)
	// AddLearner adds a learner with peerURL and returns the members
	// after the change.
	AddLearner(ctx context.Context, peerURL string) ([]etcdMember, error)
	Remove(ctx context.Context, id uint64) error
	Promote(ctx context.Context, id uint64) error
	Close() error
}

// Errors an etcdCluster wraps etcd's own in, for the callers to test.
var (
	// errMemberNotFound: the member to remove or promote is not there.
	errMemberNotFound = errors.New("etcd member not found")
	// errNotNow: etcd refused a membership change that may succeed
	// later: too many learners, a learner not caught up yet, members
	// down or not started, no leader.
	errNotNow = errors.New("etcd refuses the change for now")
	// errNoEtcd: no peer's client port accepts connections.
	errNoEtcd = errors.New("no etcd member reachable")
)

// etcdPeerURL is the peer URL builtin:etcd advertises for a pod.
func etcdPeerURL(fqdn string) string {
	return "http://" + net.JoinHostPort(fqdn, etcdPeerPort)
}

// etcdEndpoints are the client URLs of the peers other than self: their
// first address from the SRV answer's glue, else their name.
func etcdEndpoints(peers []Peer, self string) []string {
	var out []string
	for _, p := range peers {
		if p.Name == self {
			continue
		}
		host := p.Name
		if len(p.Addresses) > 0 {
			host = p.Addresses[0]
		}
		out = append(out, "http://"+net.JoinHostPort(host, etcdClientPort))
	}
	return out
}

// findMember returns this pod's member: the one with its peer URL, or its
// name.
func findMember(members []etcdMember, name, peerURL string) (etcdMember, bool) {
	for _, m := range members {
		if slices.Contains(m.PeerURLs, peerURL) || m.Name != "" && m.Name == name {
			return m, true
		}
	}
	return etcdMember{}, false
}

// etcdHasData reports whether dir holds a member's write-ahead log, which
// is what etcd itself looks for: with one it restarts from its data and
// ignores every initial-* setting; without, it starts afresh.
func etcdHasData(dir string) (bool, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "member", "wal"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("-etcd-data-dir: %w (does peer-finder run as etcd's user?)", err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".wal") {
			return true, nil
		}
	}
	return false, nil
}

// joinAction is what the init container does about this pod's member.
type joinAction int

const (
	// joinBootstrap: no cluster runs and this pod is one of the first
	// -min-peers: start a new cluster of those.
	joinBootstrap joinAction = iota
	// joinRestart: etcd restarts from this member's data.
	joinRestart
	// joinStart: the cluster already has a member for this pod that
	// never started (added before a crash, or an initial member the
	// others went ahead without): start it.
	joinStart
	// joinAdd: add this pod as a learner, then start it.
	joinAdd
	// joinReplace: this pod's member has run but its data is gone:
	// remove it, then add it again (a member that lost its data must
	// not rejoin under its old ID).
	joinReplace
	// joinWait: a cluster must be joined, but no member with a leader
	// answers yet.
	joinWait
)

var joinActions = [...]string{"bootstrap", "restart", "start", "add", "replace", "wait"}

func (a joinAction) String() string { return joinActions[a] }

// joinInput is what the init container knows when it decides.
type joinInput struct {
	Host     string // this pod's hostname, its member name
	PeerURL  string // this pod's peer URL
	HasData  bool   // etcdHasData
	Peers    []Peer // the service's peers, in ordinal order
	MinPeers int    // -min-peers: the first that many peers start a new cluster
	Answered bool   // a member with a leader listed the members
	Members  []etcdMember
}

// joinPlan is what decideJoin says to do.
type joinPlan struct {
	Action joinAction
	// Wipe: the data directory holds a member that is no longer in the
	// cluster (removed by a scale-down whose claim was kept): remove it
	// before adding this pod again.
	Wipe bool
	// Member is the member joinReplace removes.
	Member etcdMember
	// Cluster is what to render for joinBootstrap, joinRestart and
	// joinStart.
	Cluster *EtcdCluster
	Why     string // for the log and the timeout message
}

// decideJoin is the init container's decision. A cluster is running when a
// member with a leader lists the members. When none does, a pod with data
// restarts from it (all members restarting at once wait on nobody), one of
// the first -min-peers bootstraps a new cluster with the others of them,
// and any other pod waits for the cluster to run. When one does, this pod
// restarts, starts or is added, by whether it is a member and has data.
func decideJoin(in joinInput) joinPlan {
	if !in.Answered {
		if in.HasData {
			return joinPlan{Action: joinRestart, Cluster: newEtcdCluster(in.Peers), Why: "no member with a leader answers; restarting from this member's data"}
		}
		initial := in.Peers[:min(max(in.MinPeers, 1), len(in.Peers))]
		if slices.ContainsFunc(initial, func(p Peer) bool { return p.Host == in.Host }) {
			return joinPlan{Action: joinBootstrap, Cluster: newEtcdCluster(initial), Why: "no member with a leader answers; bootstrapping a new cluster of the first " + strconv.Itoa(len(initial)) + " peers"}
		}
		return joinPlan{Action: joinWait, Why: "no member with a leader answers, and this pod is not among the first -min-peers " + strconv.Itoa(in.MinPeers) + " that bootstrap a cluster: waiting to join one"}
	}
	self, member := findMember(in.Members, in.Host, in.PeerURL)
	switch {
	case member && in.HasData:
		return joinPlan{Action: joinRestart, Cluster: existingEtcdCluster(in.Members, in.Host, in.PeerURL), Why: "a member with data: restarting from it"}
	case member && !self.started():
		return joinPlan{Action: joinStart, Cluster: existingEtcdCluster(in.Members, in.Host, in.PeerURL), Why: fmt.Sprintf("member %x was added for this pod and never started: starting it", self.ID)}
	case member:
		return joinPlan{Action: joinReplace, Member: self, Why: fmt.Sprintf("member %x has run but its data is gone: removing it to add this pod again", self.ID)}
	case in.HasData:
		return joinPlan{Action: joinAdd, Wipe: true, Why: "the data is a removed member's: removing it and adding this pod as a learner"}
	}
	return joinPlan{Action: joinAdd, Why: "not a member: adding this pod as a learner"}
}

// newEtcdCluster is a new cluster of peers, as builtin:etcd names them.
func newEtcdCluster(peers []Peer) *EtcdCluster {
	c := &EtcdCluster{State: "new"}
	for _, p := range peers {
		c.Members = append(c.Members, EtcdMember{Name: p.Host, PeerURLs: []string{etcdPeerURL(p.Name)}})
	}
	return c
}

// existingEtcdCluster is the running cluster's members, this pod named
// host. A member that has not started has no name yet; etcd matches the
// initial cluster with its members by peer URL only, so it gets the first
// label of its peer URL's host (another pod's hostname), or its ID.
func existingEtcdCluster(members []etcdMember, host, peerURL string) *EtcdCluster {
	c := &EtcdCluster{State: "existing"}
	for _, m := range members {
		name := m.Name
		switch {
		case slices.Contains(m.PeerURLs, peerURL) || name == host:
			name = host
		case name == "":
			name = fmt.Sprintf("%x", m.ID)
			if len(m.PeerURLs) > 0 {
				if u, err := url.Parse(m.PeerURLs[0]); err == nil && net.ParseIP(u.Hostname()) == nil && u.Hostname() != "" {
					name, _, _ = strings.Cut(u.Hostname(), ".")
				}
			}
		}
		c.Members = append(c.Members, EtcdMember{Name: name, PeerURLs: slices.Clone(m.PeerURLs)})
	}
	// In ordinal order, as the peers; etcd does not mind the order.
	slices.SortStableFunc(c.Members, func(a, b EtcdMember) int {
		pa := Peer{Name: a.Name, Host: a.Name, Ordinal: ordinalOf(a.Name)}
		pb := Peer{Name: b.Name, Host: b.Name, Ordinal: ordinalOf(b.Name)}
		switch {
		case peerLess(pa, pb):
			return -1
		case peerLess(pb, pa):
			return 1
		}
		return 0
	})
	return c
}

// setScale is what a set's object says about which ordinals it keeps.
type setScale struct {
	Found    bool // the set exists
	Deleting bool // it has a deletion timestamp
	Replicas int  // spec.replicas
	Start    int  // spec.ordinals.start
}

// decideLeave says whether the pet with ordinal leaves the etcd cluster:
// only when a scale-down took its ordinal out of the set. A restart, a
// replacement or a rolling update keeps the ordinal; deleting the set, or
// scaling it to zero, keeps every member, so that the claims bring the
// cluster back.
func decideLeave(ordinal int, s setScale) (bool, string) {
	switch {
	case !s.Found:
		return false, "the set is gone: members stay, for the set made again with the same claims"
	case s.Deleting:
		return false, "the set is being deleted: members stay, for the set made again with the same claims"
	case s.Replicas == 0:
		return false, "the set is scaled to zero: members stay, for a scale back up"
	case ordinal >= s.Start && ordinal < s.Start+s.Replicas:
		return false, fmt.Sprintf("ordinal %d is within the set's [%d, %d): staying", ordinal, s.Start, s.Start+s.Replicas)
	}
	return true, fmt.Sprintf("ordinal %d is outside the set's [%d, %d): leaving", ordinal, s.Start, s.Start+s.Replicas)
}
