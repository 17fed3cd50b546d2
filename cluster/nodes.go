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

	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeState is what a registered node says about itself.
type NodeState string

const (
	// NodeUp serves reads and writes.
	NodeUp NodeState = "up"
	// NodeLeaving is shutting down cleanly; clients should stop sending to it.
	NodeLeaving NodeState = "leaving"
	// NodeDown is never registered: listings (Members) use it for epoch
	// members that are not running.
	NodeDown NodeState = "down"
	// NodeSpare is never registered: listings (Members) use it for live
	// nodes that are not epoch members, so no data is placed on them.
	NodeSpare NodeState = "spare"
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

	mu     sync.Mutex
	node   Node
	lease  clientv3.LeaseID
	member bool
}

// Member reports whether the node was a placement member when it
// registered; false means a spare: a new node in a cluster that already
// held data, given none until an operator runs `dog node join`.
func (r *Registration) Member() bool { return r.member }

// Register adds n to the node list under a lease kept alive in the
// background, and makes it a member of the placement epoch if it is not one
// yet and the cluster has no VDI yet; otherwise the node is a spare that
// gets no data (see Registration.Member and `dog node join`). It fails with ErrNodeExists if a live node holds n.ID, unless
// opts.Replace.
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
	// A node is placed on from its first registration on (see Epoch),
	// unless the cluster already holds data (see joinIfNoData). Joined
	// before it is listed: whoever sees the node live sees the membership
	// decided (a VDI created right after cannot make a listed node spare).
	member, err := c.joinIfNoData(ctx, Member{ID: n.ID, Zone: n.Zone, Capacity: n.Capacity})
	if err != nil {
		return nil, fmt.Errorf("register node %s: %w", n.ID, err)
	}
	bg, cancel := context.WithCancel(context.Background())
	r := &Registration{c: c, opts: opts, node: n, done: make(chan struct{}), cancel: cancel, member: member}
	keepAlive, err := r.register(ctx, bg, opts.Replace)
	if err != nil {
		cancel()
		return nil, err
	}
	go r.run(bg, keepAlive)
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
	return ka, nil
}

func (r *Registration) run(ctx context.Context, ka <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(r.done)
	for {
		for range ka {
			// Drain renewals; the channel closes when the lease is lost.
		}
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

// Members lists every member of the placement epoch plus any live node not
// a member, sorted by ID: live members as registered, live non-members with
// State NodeSpare, members not running with State NodeDown and only their
// placement fields set.
func (c *Client) Members(ctx context.Context) ([]Node, error) {
	live, err := c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	e, err := c.Epoch(ctx)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(live))
	for i, n := range live {
		seen[n.ID] = true
		if !e.Has(n.ID) {
			live[i].State = NodeSpare
		}
	}
	for _, m := range e.Members {
		if !seen[m.ID] {
			live = append(live, Node{ID: m.ID, Zone: m.Zone, Capacity: m.Capacity, State: NodeDown})
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].ID < live[j].ID })
	return live, nil
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
	nodes := make([]Node, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		n, err := decodeNode(kv.Value)
		if err != nil {
			return nil, 0, fmt.Errorf("decode node at %s: %w", kv.Key, err)
		}
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return nodes, resp.Header.Revision, nil
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
