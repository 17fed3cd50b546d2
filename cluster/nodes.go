package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeState is what a registered node says about itself.
type NodeState string

const (
	// NodeUp serves reads and writes.
	NodeUp NodeState = "up"
	// NodeLeaving is shutting down cleanly; clients should stop sending to it.
	NodeLeaving NodeState = "leaving"

	// The states below are never registered: listings (Members,
	// ListNodes) derive them from the registration, the epoch and the
	// recovery statuses.

	// NodeJoining is registered but not a member yet: the membership
	// controller adds it (a new epoch) shortly.
	NodeJoining NodeState = "joining"
	// NodeRecovering is a registered member that has not finished
	// recovering the current epoch's objects.
	NodeRecovering NodeState = "recovering"
	// NodeDown is a member that is not registered (dead, partitioned,
	// restarting); the membership controller removes it after the grace.
	NodeDown NodeState = "down"
	// NodeGone was a member in an earlier epoch, is not one now and is not
	// registered.
	NodeGone NodeState = "gone"
)

// Node is a storage node as registered in etcd.
type Node struct {
	// ID names the node; unique among live nodes, stable across restarts
	// (placement hashes it, so changing it moves data).
	ID string `json:"id"`
	// Addr is host:port of the node's RPC service.
	Addr string `json:"addr"`
	// Zone is the failure zone (rack, host, ...); replicas of one object go
	// to distinct zones when there are enough. Empty: its own zone.
	Zone string `json:"zone,omitempty"`
	// Capacity is the node's storage in bytes; placement weights by it.
	Capacity int64     `json:"capacity"`
	State    NodeState `json:"state"`
	// Started is when this registration was made.
	Started time.Time `json:"started"`
}

func validNodeID(id string) error {
	if id == "" || len(id) > 128 || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("node id %q must be 1..128 bytes without '/': %w", id, ErrInvalid)
	}
	return nil
}

// RegisterOptions tunes a node registration.
type RegisterOptions struct {
	// TTL is how long after the node stops renewing its lease (crash,
	// partition) it disappears from the node list. Default 10s, minimum 2s.
	TTL time.Duration
	// Replace takes over a registration of the same ID that is still live
	// (a node restarted after a crash, before its old lease expired). Off by
	// default: two nodes mistakenly given one ID must not silently share it.
	Replace bool
	// OnLost, if set, is called (from a background goroutine) when the
	// lease is lost and the registration is being re-established.
	OnLost func(err error)
}

// Registration is a node's live entry in the node list. It renews its lease
// in the background and re-registers if the lease is ever lost (etcd
// restarted, long partition) until Close.
type Registration struct {
	c      *Client
	opts   RegisterOptions
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	node      Node
	lease     clientv3.LeaseID
	liveUntil time.Time // when the lease may have expired, as far as we know
	// frozenUntil: etcd had no leader when last probed, so no lease can
	// expire and no membership change can happen until a leader is back
	// (and a new leader extends every lease by its TTL).
	frozenUntil time.Time
	closed      bool
}

// Live reports whether the registration's lease is held right now: it was
// renewed recently enough that etcd cannot have expired it yet. A node
// serves data only while Live: once its lease may have expired, the
// cluster may consider it gone and place its objects elsewhere.
//
// While etcd has lost its quorum, no lease can be renewed, but none can
// expire either (expiry needs a leader, and a new leader extends every
// lease by its TTL) and no membership change can happen: so when the
// renewals are late, the registration asks every etcd endpoint for its
// status, and stays Live as long as some endpoint answers and none that
// answers has a leader. The data path does not need etcd. The risk left:
// a partition that leaves this node (and a client) with an etcd minority
// while a majority elsewhere removes the node after the grace; a node that
// reaches no etcd member at all stops being Live after its TTL.
func (r *Registration) Live() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	return !r.closed && (now.Before(r.liveUntil) || now.Before(r.frozenUntil))
}

// quorumProbeEvery is how often a registration whose renewals are late
// probes etcd for a leader.
const quorumProbeEvery = 250 * time.Millisecond

// quorumProbeTimeout bounds each probe call: a probe must end well within
// the shortest TTL's margin.
const quorumProbeTimeout = 300 * time.Millisecond

// watchQuorum probes etcd's endpoints while the lease renewals are late,
// to tell "etcd has no quorum" (stay Live) from "this node is cut off or
// its lease is gone" (stop being Live).
func (r *Registration) watchQuorum(ctx context.Context) {
	tick := time.NewTicker(quorumProbeEvery)
	defer tick.Stop()
	ttl := r.opts.TTL
	margin := min(ttl/4, time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		late := time.Until(r.liveUntil) < ttl/4
		r.mu.Unlock()
		if !late {
			continue
		}
		// At once: renew through whichever endpoint answers (the
		// keep-alive stream may be stuck on a dead one), and ask every
		// endpoint whether it has a leader.
		r.mu.Lock()
		lease := r.lease
		r.mu.Unlock()
		start := time.Now()
		renewedTTL := make(chan int64, 1)
		go func() {
			kctx, cancel := context.WithTimeout(ctx, quorumProbeTimeout)
			defer cancel()
			resp, err := r.c.etcd.KeepAliveOnce(kctx, lease)
			if err != nil {
				renewedTTL <- 0
				return
			}
			renewedTTL <- resp.TTL
		}()
		reachable, leader := r.c.probeLeader(ctx)
		if t := <-renewedTTL; t > 0 {
			r.renewed(t)
			continue
		}
		r.mu.Lock()
		switch {
		case leader:
			r.frozenUntil = time.Time{}
		case reachable > 0 && !r.closed:
			r.frozenUntil = start.Add(ttl - margin)
		}
		r.mu.Unlock()
	}
}

// probeLeader asks every etcd endpoint for its status: how many answered,
// and whether any of them has a leader.
func (c *Client) probeLeader(ctx context.Context) (reachable int, leader bool) {
	eps := c.etcd.Endpoints()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ep := range eps {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, quorumProbeTimeout)
			defer cancel()
			st, err := c.etcd.Status(pctx, ep)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			reachable++
			if st.Leader != 0 {
				leader = true
			}
		})
	}
	wg.Wait()
	return reachable, leader
}

// renewed records that etcd granted or renewed the lease for ttlSec
// seconds as of about now. The margin covers the time the answer took to
// arrive: etcd counts from when it renewed.
func (r *Registration) renewed(ttlSec int64) {
	ttl := time.Duration(ttlSec) * time.Second
	until := time.Now().Add(ttl - min(ttl/4, time.Second))
	r.mu.Lock()
	if !r.closed && until.After(r.liveUntil) {
		r.liveUntil = until
	}
	r.mu.Unlock()
}

func (r *Registration) lost() {
	r.mu.Lock()
	r.liveUntil = time.Time{}
	r.mu.Unlock()
}

// Register adds n to the node list under a lease kept alive in the
// background. It does not make the node a member: the membership
// controller (RunMembership) adds registered up nodes. It fails with
// ErrNodeExists if a live node holds n.ID, unless opts.Replace.
func (c *Client) Register(ctx context.Context, n Node, opts RegisterOptions) (*Registration, error) {
	if err := validNodeID(n.ID); err != nil {
		return nil, fmt.Errorf("register node: %w", err)
	}
	if n.Addr == "" {
		return nil, fmt.Errorf("register node %s: no address: %w", n.ID, ErrInvalid)
	}
	if n.Capacity < 0 {
		return nil, fmt.Errorf("register node %s: negative capacity: %w", n.ID, ErrInvalid)
	}
	if n.State == "" {
		n.State = NodeUp
	}
	if n.Started.IsZero() {
		n.Started = time.Now().UTC().Truncate(time.Millisecond)
	}
	if opts.TTL == 0 {
		opts.TTL = 10 * time.Second
	}
	if opts.TTL < 2*time.Second {
		opts.TTL = 2 * time.Second
	}
	bg, cancel := context.WithCancel(context.Background())
	r := &Registration{c: c, opts: opts, node: n, done: make(chan struct{}), cancel: cancel}
	keepAlive, err := r.register(ctx, bg, opts.Replace)
	if err != nil {
		cancel()
		return nil, err
	}
	go r.run(bg, keepAlive)
	go r.watchQuorum(bg)
	return r, nil
}

// register grants a lease, puts the node under it and starts renewing it
// until bg is canceled.
func (r *Registration) register(ctx, bg context.Context, replace bool) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	c := r.c
	r.mu.Lock()
	n := r.node
	r.mu.Unlock()
	val, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("register node %s: %w", n.ID, err)
	}
	tctx, cancel := c.withTimeout(ctx)
	defer cancel()
	ttlSec := int64((r.opts.TTL + time.Second - 1) / time.Second)
	lease, err := c.etcd.Grant(tctx, ttlSec)
	if err != nil {
		return nil, fmt.Errorf("register node %s: grant lease: %w", n.ID, c.etcdErr(err))
	}
	key := c.nodeKey(n.ID)
	put := clientv3.OpPut(key, string(val), clientv3.WithLease(lease.ID))
	txn := c.etcd.Txn(tctx)
	if !replace {
		txn = txn.If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	}
	resp, err := txn.Then(put).Commit()
	if err == nil && !resp.Succeeded {
		err = fmt.Errorf("%w: %s (a live node holds it; its entry expires within %v of its death)", ErrNodeExists, n.ID, r.opts.TTL)
	}
	if err != nil {
		// Don't leave a granted lease behind; it would expire anyway.
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = c.etcd.Revoke(rctx, lease.ID)
		rcancel()
		return nil, fmt.Errorf("register node %s: %w", n.ID, c.etcdErr(err))
	}
	// The keep-alive stream lives as long as the registration, not ctx.
	ka, err := c.etcd.KeepAlive(bg, lease.ID)
	if err != nil {
		return nil, fmt.Errorf("register node %s: keep lease alive: %w", n.ID, c.etcdErr(err))
	}
	r.mu.Lock()
	r.lease = lease.ID
	r.mu.Unlock()
	r.renewed(lease.TTL)
	return ka, nil
}

func (r *Registration) run(ctx context.Context, ka <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(r.done)
	for {
		for resp := range ka {
			// The channel closes when the lease is lost.
			r.renewed(resp.TTL)
		}
		r.lost()
		if ctx.Err() != nil {
			return
		}
		if r.opts.OnLost != nil {
			r.opts.OnLost(errors.New("lease lost"))
		}
		// Re-register until it works or Close. Replace: the old entry
		// is ours, and with the lease gone it is gone or about to be.
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			var err error
			if ka, err = r.register(ctx, ctx, true); err == nil {
				break
			}
		}
	}
}

// Node is the node as currently registered.
func (r *Registration) Node() Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node
}

// Update rewrites the node's entry (e.g. its state), keeping its lease.
func (r *Registration) Update(ctx context.Context, n Node) error {
	r.mu.Lock()
	if n.ID != r.node.ID {
		r.mu.Unlock()
		return fmt.Errorf("update node %s: id cannot change to %q: %w", r.node.ID, n.ID, ErrInvalid)
	}
	r.node = n
	lease := r.lease
	r.mu.Unlock()
	val, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("update node %s: %w", n.ID, err)
	}
	ctx, cancel := r.c.withTimeout(ctx)
	defer cancel()
	if _, err := r.c.etcd.Put(ctx, r.c.nodeKey(n.ID), string(val), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("update node %s: %w", n.ID, r.c.etcdErr(err))
	}
	return nil
}

// Close removes the node from the node list at once (revoking its lease)
// and stops renewing it.
func (r *Registration) Close() error {
	r.cancel()
	r.mu.Lock()
	r.closed, r.liveUntil = true, time.Time{}
	r.mu.Unlock()
	r.mu.Lock()
	lease, id := r.lease, r.node.ID
	r.mu.Unlock()
	ctx, cancel := r.c.withTimeout(context.Background())
	defer cancel()
	_, err := r.c.etcd.Revoke(ctx, lease)
	// Stop the keep-alive stream, then wait for the renewal goroutine.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	select {
	case <-r.done:
	case <-ctx2.Done():
	}
	if err != nil {
		return fmt.Errorf("unregister node %s: %w", id, r.c.etcdErr(err))
	}
	return nil
}

// Nodes lists the live nodes, sorted by ID.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	nodes, _, err := c.nodesAt(ctx)
	return nodes, err
}

func (c *Client) nodesAt(ctx context.Context) ([]Node, int64, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.etcd.Get(ctx, c.nodesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list nodes: %w", c.etcdErr(err))
	}
	nodes, err := c.decodeNodes(resp.Kvs)
	return nodes, resp.Header.Revision, err
}

// decodeNodes decodes node records, sorted by ID.
func (c *Client) decodeNodes(kvs []*mvccpb.KeyValue) ([]Node, error) {
	nodes := make([]Node, 0, len(kvs))
	for _, kv := range kvs {
		n, err := decodeNode(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("decode node at %s: %w", kv.Key, err)
		}
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return nodes, nil
}

// WatchNodes sends the live node list (sorted by ID) now and again after
// every change, until ctx is done, then closes the channel. A slow reader
// only ever misses intermediate lists, never the latest one. Transient etcd
// errors are retried; the watch resumes with a fresh list.
func (c *Client) WatchNodes(ctx context.Context) <-chan []Node {
	out := make(chan []Node, 1)
	go func() {
		defer close(out)
		c.watchLatest(ctx, c.nodesPrefix(), true, func(ctx context.Context) (int64, error) {
			nodes, rev, err := c.nodesAt(ctx)
			if err == nil {
				sendLatest(out, nodes)
			}
			return rev, err
		})
	}()
	return out
}
