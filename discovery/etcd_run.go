package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// etcdLeaveTimeout bounds GET /etcd/leave, within a pod's default
// 30-second grace period.
const etcdLeaveTimeout = 20 * time.Second

// etcdJoin decides and acts until this pod's etcd member can start, and
// returns the cluster to render. wctx bounds it (-timeout); when it ends,
// the error says what was awaited.
func (f *finder) etcdJoin(ctx, wctx context.Context, peers []Peer) (*EtcdCluster, error) {
	failures := 0
	logged := ""
	for {
		plan, err := f.joinStep(wctx, peers)
		if plan.Cluster != nil && err == nil {
			plan.Cluster.DataDir = f.cfg.EtcdDataDir
			f.log.Info("etcd member ready to start", "action", plan.Action.String(), "why", plan.Why,
				"state", plan.Cluster.State, "initialCluster", plan.Cluster.InitialCluster())
			return plan.Cluster, nil
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return nil, fatal.err
		}
		if plan.Action == joinReplace && err == nil {
			continue // the member is gone: add this pod again at once
		}
		missing := "etcd: " + plan.Why
		if err != nil {
			missing += ": " + err.Error()
		}
		if k := fmt.Sprint(plan.Action, err); k != logged {
			f.log.Info("etcd: waiting", "action", plan.Action.String(), "why", plan.Why, "err", err)
			logged = k
		} else {
			f.log.V(1).Info("etcd: waiting", "action", plan.Action.String(), "why", plan.Why, "err", err)
		}
		// Waiting on a cluster to run, or on etcd to accept a change,
		// is polling; anything else backs off.
		if err == nil || errors.Is(err, errNotNow) || errors.Is(err, errNoEtcd) {
			failures = 0
		} else {
			failures++
		}
		if f.sleep(wctx, f.delay(0, failures)) != nil {
			return nil, f.stopped(ctx, missing)
		}
	}
}

// fatalError is an error that trying again does not mend.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// joinStep looks at the cluster, decides, and acts on the decision once.
// A plan with a Cluster and no error is done.
func (f *finder) joinStep(ctx context.Context, peers []Peer) (joinPlan, error) {
	cfg := f.cfg
	hasData, err := etcdHasData(cfg.EtcdDataDir)
	if err != nil {
		return joinPlan{}, &fatalError{err}
	}
	in := joinInput{Host: cfg.Hostname, PeerURL: etcdPeerURL(cfg.SelfName()), HasData: hasData, Peers: peers, MinPeers: cfg.MinPeers}
	cl, listErr := f.o.etcd(ctx, etcdEndpoints(peers, cfg.SelfName()))
	if listErr == nil {
		defer cl.Close()
		in.Members, listErr = cl.Members(ctx)
		in.Answered = listErr == nil
	}
	plan := decideJoin(in)
	switch plan.Action {
	case joinWait:
		return plan, listErr
	case joinReplace:
		err := cl.Remove(ctx, plan.Member.ID)
		f.count("remove", err)
		if err != nil && !errors.Is(err, errMemberNotFound) {
			return plan, err
		}
		f.log.Info("etcd: removed this pod's member, whose data is gone; adding it again", "member", fmt.Sprintf("%x", plan.Member.ID))
		return plan, nil
	case joinAdd:
		if plan.Wipe {
			dir := filepath.Join(cfg.EtcdDataDir, "member")
			f.log.Info("etcd: removing the data of a member that left the cluster", "dir", dir)
			if err := os.RemoveAll(dir); err != nil {
				return plan, &fatalError{fmt.Errorf("remove a removed member's data: %w", err)}
			}
		}
		members, err := cl.AddLearner(ctx, in.PeerURL)
		f.count("add", err)
		if err != nil {
			return plan, err
		}
		plan.Cluster = existingEtcdCluster(members, in.Host, in.PeerURL)
	}
	return plan, nil
}

// etcdPromote makes this pod's member a voting member once it has caught
// up with the leader, and returns; a member that is one already needs
// nothing.
func (f *finder) etcdPromote(ctx context.Context) {
	failures := 0
	for {
		done, err := f.promoteStep(ctx)
		if done || ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNotNow) || errors.Is(err, errNoEtcd) {
			failures = 0
			f.log.V(1).Info("etcd: not promoted yet", "err", err)
		} else {
			failures++
			f.log.Info("etcd: not promoted yet", "err", err)
		}
		if f.sleep(ctx, f.delay(0, failures)) != nil {
			return
		}
	}
}

func (f *finder) promoteStep(ctx context.Context) (bool, error) {
	self := f.cfg.SelfName()
	cl, err := f.o.etcd(ctx, etcdEndpoints(f.peers(), self))
	if err != nil {
		return false, err
	}
	defer cl.Close()
	members, err := cl.Members(ctx)
	if err != nil {
		return false, err
	}
	m, ok := findMember(members, f.cfg.Hostname, etcdPeerURL(self))
	switch {
	case !ok:
		return false, errors.New("this pod is not an etcd member")
	case !m.Learner:
		f.log.Info("etcd: a voting member", "member", fmt.Sprintf("%x", m.ID))
		return true, nil
	}
	err = cl.Promote(ctx, m.ID)
	f.count("promote", err)
	if err != nil {
		return false, err
	}
	f.log.Info("etcd: promoted from learner to voting member", "member", fmt.Sprintf("%x", m.ID))
	return true, nil
}

// etcdLeave removes this pod's member from the etcd cluster when the set
// no longer counts its ordinal (decideLeave), through the other peers'
// client ports, and says what it did.
func (f *finder) etcdLeave(ctx context.Context, peers []Peer) (string, error) {
	s, err := f.o.set.Scale(ctx)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", f.cfg.EtcdLeave, err)
	}
	leave, why := decideLeave(ordinalOf(f.cfg.Hostname), s)
	f.log.Info("etcd: scale-down check", "set", f.cfg.EtcdLeave, "leave", leave, "why", why)
	if !leave {
		return why, nil
	}
	failures := 0
	for {
		done, err := f.leaveStep(ctx, peers)
		if err == nil {
			return why + ": " + done, nil
		}
		if !errors.Is(err, errNotNow) {
			failures++
		}
		f.log.Info("etcd: not removed yet", "err", err)
		if f.sleep(ctx, f.delay(0, failures)) != nil {
			return "", fmt.Errorf("remove this pod's etcd member: %w", err)
		}
	}
}

func (f *finder) leaveStep(ctx context.Context, peers []Peer) (string, error) {
	self := f.cfg.SelfName()
	cl, err := f.o.etcd(ctx, etcdEndpoints(peers, self))
	if err != nil {
		return "", err
	}
	defer cl.Close()
	members, err := cl.Members(ctx)
	if err != nil {
		return "", err
	}
	m, ok := findMember(members, f.cfg.Hostname, etcdPeerURL(self))
	if !ok {
		return "not a member", nil
	}
	err = cl.Remove(ctx, m.ID)
	f.count("remove", err)
	if err != nil && !errors.Is(err, errMemberNotFound) {
		return "", err
	}
	f.log.Info("etcd: removed this pod's member", "member", fmt.Sprintf("%x", m.ID))
	return fmt.Sprintf("removed member %x", m.ID), nil
}

// serveLeave is GET /etcd/leave, for the etcd container's preStop hook: it
// answers once the member is removed, or staying, so etcd is stopped only
// then; two scaled-down members stop no sooner than both have left.
func (f *finder) serveLeave(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), etcdLeaveTimeout)
	defer cancel()
	f.leaveMu.Lock()
	defer f.leaveMu.Unlock()
	msg, err := f.etcdLeave(ctx, f.peers())
	if err != nil {
		f.log.Error(err, "etcd: leaving")
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	io.WriteString(w, msg+"\n")
}

// leaveOnce is a run-once -etcd-leave: one lookup of the peers, then
// etcdLeave, whose message goes to standard output.
func (f *finder) leaveOnce(ctx, wctx context.Context) error {
	failures := 0
	for {
		a, err := f.lookup(wctx)
		if err == nil || errors.Is(err, ErrNoSuchService) {
			msg, err := f.etcdLeave(wctx, a.peers)
			if err != nil {
				if ctx.Err() != nil {
					return f.stopped(ctx, "")
				}
				return err
			}
			_, err = fmt.Fprintln(f.o.Stdout, msg)
			return err
		}
		failures++
		if f.sleep(wctx, f.delay(0, failures)) != nil {
			return f.stopped(ctx, "DNS lookups of "+f.cfg.ServiceName()+" failing: "+err.Error())
		}
	}
}

// count counts a membership change in petset_peer_finder_etcd_changes_total.
func (f *finder) count(change string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	f.m.etcdChanges.WithLabelValues(change, result).Inc()
}
