package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RecoveryStatus is what a node reports about its recovery of an epoch's
// objects. It is not bound to the node's lease: the last report of a node
// that died stays readable.
type RecoveryStatus struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch"`
	// Total and Done count objects: those the node must pull for Epoch,
	// and those pulled (or found absent) so far.
	Total int64 `json:"total"`
	Done  int64 `json:"done"`
	// Bytes is how much the node copied so far.
	Bytes    int64 `json:"bytes"`
	Complete bool  `json:"complete"`
	// Waiting says why the recovery is stuck ("" if it is not), e.g. which
	// nodes it cannot reach.
	Waiting string    `json:"waiting,omitempty"`
	Updated time.Time `json:"updated"`
}

// CompleteFor reports whether the status says the node finished
// recovering epoch e.
func (s RecoveryStatus) CompleteFor(e uint64) bool { return s.Complete && s.Epoch == e }

func (c *Client) recoveryPrefix() string         { return c.prefix + "recovery/" }
func (c *Client) recoveryKey(node string) string { return c.recoveryPrefix() + node }
func (c *Client) recoveryCompleteKey() string    { return c.prefix + "recovery-complete" }

// SetRecoveryStatus records s as node s.Node's recovery status (Updated is
// set to now if zero).
func (c *Client) SetRecoveryStatus(ctx context.Context, s RecoveryStatus) error {
	if err := validNodeID(s.Node); err != nil {
		return fmt.Errorf("set recovery status: %w", err)
	}
	if s.Total < 0 || s.Done < 0 || s.Bytes < 0 || len(s.Waiting) > maxReason {
		return fmt.Errorf("set recovery status of %s: negative counts or a %d-byte waiting reason: %w", s.Node, len(s.Waiting), ErrInvalid)
	}
	if s.Updated.IsZero() {
		s.Updated = time.Now().UTC().Truncate(time.Millisecond)
	}
	val, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("set recovery status of %s: %w", s.Node, err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	if _, err := c.etcd.Put(ctx, c.recoveryKey(s.Node), string(val)); err != nil {
		return fmt.Errorf("set recovery status of %s: %w", s.Node, c.etcdErr(err))
	}
	return nil
}

// RecoveryStatuses reads every node's last recovery status, by node ID.
func (c *Client) RecoveryStatuses(ctx context.Context) (map[string]RecoveryStatus, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	m, _, err := c.recoveryStatusesAt(ctx)
	return m, err
}

func (c *Client) recoveryStatusesAt(ctx context.Context) (map[string]RecoveryStatus, int64, error) {
	resp, err := c.etcd.Get(ctx, c.recoveryPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("read recovery statuses: %w", c.etcdErr(err))
	}
	m, err := c.decodeRecoveryStatuses(resp.Kvs)
	return m, resp.Header.Revision, err
}

func (c *Client) decodeRecoveryStatuses(kvs []*mvccpb.KeyValue) (map[string]RecoveryStatus, error) {
	m := make(map[string]RecoveryStatus, len(kvs))
	for _, kv := range kvs {
		s, err := decodeRecoveryStatus(kv.Value)
		if err == nil && c.recoveryKey(s.Node) != string(kv.Key) {
			err = fmt.Errorf("%w: status of node %q", errCorrupt, s.Node)
		}
		if err != nil {
			return nil, fmt.Errorf("decode recovery status at %s: %w", kv.Key, err)
		}
		m[s.Node] = s
	}
	return m, nil
}

// WatchRecovery sends every node's recovery status now and again after
// every change, until ctx is done, then closes the channel. A slow reader
// only misses intermediate states.
func (c *Client) WatchRecovery(ctx context.Context) <-chan map[string]RecoveryStatus {
	out := make(chan map[string]RecoveryStatus, 1)
	go func() {
		defer close(out)
		c.watchLatest(ctx, c.recoveryPrefix(), true, func(ctx context.Context) (int64, error) {
			m, rev, err := c.recoveryStatusesAt(ctx)
			if err == nil {
				sendLatest(out, m)
			}
			return rev, err
		})
	}()
	return out
}

// decodeLastComplete reads the recovery-complete value (0 if absent).
func (c *Client) decodeLastComplete(kvs []*mvccpb.KeyValue) (uint64, error) {
	if len(kvs) == 0 {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(kvs[0].Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("decode %s: %w: %q", c.recoveryCompleteKey(), errCorrupt, truncate(kvs[0].Value, 64))
	}
	return n, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// LastComplete is the greatest epoch the whole cluster finished recovering
// (0: none yet).
func (c *Client) LastComplete(ctx context.Context) (uint64, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	n, _, err := c.lastCompleteAt(ctx)
	return n, err
}

func (c *Client) lastCompleteAt(ctx context.Context) (uint64, int64, error) {
	resp, err := c.etcd.Get(ctx, c.recoveryCompleteKey())
	if err != nil {
		return 0, 0, fmt.Errorf("read recovery-complete epoch: %w", c.etcdErr(err))
	}
	n, err := c.decodeLastComplete(resp.Kvs)
	return n, resp.Header.Revision, err
}

// WatchLastComplete sends LastComplete now and again whenever it rises,
// until ctx is done, then closes the channel.
func (c *Client) WatchLastComplete(ctx context.Context) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		defer close(out)
		c.watchLatest(ctx, c.recoveryCompleteKey(), false, func(ctx context.Context) (int64, error) {
			n, rev, err := c.lastCompleteAt(ctx)
			if err == nil {
				sendLatest(out, n)
			}
			return rev, err
		})
	}()
	return out
}

// maxGuardedStatuses is the most member statuses MarkComplete's
// transaction compares.
const maxGuardedStatuses = 100

// MarkComplete raises the recovery-complete epoch to e if every member of
// epoch e reports it completed e; it never lowers it (nil if it is already
// e or more). It fails with ErrIncomplete (naming the members still
// recovering) otherwise, so any node may call it after finishing its own
// recovery: the last one to finish succeeds. The check and the write are
// one transaction, guarded by the statuses it read.
func (c *Client) MarkComplete(ctx context.Context, e uint64) error {
	if e == 0 {
		return nil
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	ep, err := c.EpochAt(ctx, e)
	if err != nil {
		return fmt.Errorf("mark epoch %d recovered: %w", e, err)
	}
	for {
		resp, err := c.etcd.Txn(ctx).Then(
			clientv3.OpGet(c.recoveryCompleteKey()),
			clientv3.OpGet(c.recoveryPrefix(), clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return fmt.Errorf("mark epoch %d recovered: %w", e, c.etcdErr(err))
		}
		lcKVs := resp.Responses[0].GetResponseRange().Kvs
		last, err := c.decodeLastComplete(lcKVs)
		if err != nil {
			return fmt.Errorf("mark epoch %d recovered: %w", e, err)
		}
		if last >= e {
			return nil
		}
		statusKVs := resp.Responses[1].GetResponseRange().Kvs
		statuses, err := c.decodeRecoveryStatuses(statusKVs)
		if err != nil {
			return fmt.Errorf("mark epoch %d recovered: %w", e, err)
		}
		var missing []string
		for _, m := range ep.Members {
			if !statuses[m.ID].CompleteFor(e) {
				missing = append(missing, m.ID)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("mark epoch %d recovered: %w: %s", e, ErrIncomplete, strings.Join(missing, ", "))
		}
		// Guard: recovery-complete unchanged, and every member's status
		// still the one read.
		revs := make(map[string]int64, len(statusKVs))
		for _, kv := range statusKVs {
			revs[string(kv.Key)] = kv.ModRevision
		}
		var lcRev int64
		if len(lcKVs) > 0 {
			lcRev = lcKVs[0].ModRevision
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(c.recoveryCompleteKey()), "=", lcRev)}
		// etcd bounds a transaction's operations (--max-txn-ops, 128 by
		// default): beyond maxGuardedStatuses members, the rest are not
		// guarded. Statuses only move forward, so a member read as having
		// completed e did complete it.
		for _, m := range ep.Members[:min(len(ep.Members), maxGuardedStatuses)] {
			k := c.recoveryKey(m.ID)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", revs[k]))
		}
		put, err := c.etcd.Txn(ctx).If(cmps...).
			Then(clientv3.OpPut(c.recoveryCompleteKey(), strconv.FormatUint(e, 10))).Commit()
		if err != nil {
			return fmt.Errorf("mark epoch %d recovered: %w", e, c.etcdErr(err))
		}
		if put.Succeeded {
			return nil
		}
	}
}
