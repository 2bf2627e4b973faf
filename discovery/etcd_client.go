package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdCallTimeout bounds each call to etcd.
const etcdCallTimeout = 5 * time.Second

// etcdClient is an etcdCluster through etcd's client.
type etcdClient struct{ c *clientv3.Client }

// dialEtcd connects to those of endpoints whose port accepts a connection
// (etcd's client would wait out its timeout on the others), and fails with
// errNoEtcd when none does: a set bootstrapping from scratch learns at
// once that no cluster runs.
func dialEtcd(ctx context.Context, endpoints []string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (etcdCluster, error) {
	var (
		mu        sync.Mutex
		reachable []string
		wg        sync.WaitGroup
	)
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil {
			continue
		}
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if c, err := dial(dctx, "tcp", u.Host); err == nil {
				c.Close()
				mu.Lock()
				reachable = append(reachable, ep)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(reachable) == 0 {
		return nil, fmt.Errorf("%w: %v", errNoEtcd, endpoints)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   reachable,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return &etcdClient{c: c}, nil
}

// call bounds a call, and has it fail at once without a leader rather than
// wait for one.
func call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(clientv3.WithRequireLeader(ctx), etcdCallTimeout)
}

func (e *etcdClient) Members(ctx context.Context) ([]etcdMember, error) {
	ctx, cancel := call(ctx)
	defer cancel()
	resp, err := e.c.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", etcdErr(err))
	}
	return members(resp.Members), nil
}

func (e *etcdClient) AddLearner(ctx context.Context, peerURL string) ([]etcdMember, error) {
	ctx, cancel := call(ctx)
	defer cancel()
	resp, err := e.c.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return nil, fmt.Errorf("add etcd learner %s: %w", peerURL, etcdErr(err))
	}
	return members(resp.Members), nil
}

func (e *etcdClient) Remove(ctx context.Context, id uint64) error {
	ctx, cancel := call(ctx)
	defer cancel()
	if _, err := e.c.MemberRemove(ctx, id); err != nil {
		return fmt.Errorf("remove etcd member %x: %w", id, etcdErr(err))
	}
	return nil
}

func (e *etcdClient) Promote(ctx context.Context, id uint64) error {
	ctx, cancel := call(ctx)
	defer cancel()
	if _, err := e.c.MemberPromote(ctx, id); err != nil {
		return fmt.Errorf("promote etcd member %x: %w", id, etcdErr(err))
	}
	return nil
}

func (e *etcdClient) Close() error { return e.c.Close() }

func members(in []*etcdserverpb.Member) []etcdMember {
	out := make([]etcdMember, 0, len(in))
	for _, m := range in {
		out = append(out, etcdMember{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	return out
}

// etcdErr wraps etcd's errors that callers act on in errMemberNotFound and
// errNotNow.
func etcdErr(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrMemberNotFound):
		return fmt.Errorf("%w: %w", errMemberNotFound, err)
	case errors.Is(err, rpctypes.ErrTooManyLearners), errors.Is(err, rpctypes.ErrMemberLearnerNotReady),
		errors.Is(err, rpctypes.ErrUnhealthy), errors.Is(err, rpctypes.ErrMemberNotEnoughStarted),
		errors.Is(err, rpctypes.ErrNoLeader):
		return fmt.Errorf("%w: %w", errNotNow, err)
	}
	return err
}
