package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is a node as placement knows it: the part of a Node that decides
// where objects live. It is fixed when the node joins (a node's free space
// changes at every start; its placement weight must not).
type Member struct {
	ID       string `json:"id"`
	Zone     string `json:"zone,omitempty"`
	Capacity int64  `json:"capacity"`
}

// Epoch is the cluster's membership for placement: the nodes objects are
// placed on, whether or not each is up right now. Every change of the
// membership is a new epoch; the record of every epoch is kept (EpochAt),
// because a node recovering an object walks back through the epochs to
// find who held it.
type Epoch struct {
	// Number grows by one with every membership change; 0 is the empty
	// membership before any node joined.
	Number  uint64    `json:"number"`
	Members []Member  `json:"members"` // sorted by ID
	Changed time.Time `json:"changed"`
	// Reason says why the membership changed ("node n5 joined", "node n3
	// gone for 10s", "operator removed n2"), for people reading history.
	Reason string `json:"reason,omitempty"`
}

// Has reports whether id is a member.
func (e Epoch) Has(id string) bool {
	_, ok := e.Member(id)
	return ok
}

// Member returns the member id.
func (e Epoch) Member(id string) (Member, bool) {
	i := sort.Search(len(e.Members), func(i int) bool { return e.Members[i].ID >= id })
	if i < len(e.Members) && e.Members[i].ID == id {
		return e.Members[i], true
	}
	return Member{}, false
}

func (c *Client) epochKey() string             { return c.prefix + "epoch" }
func (c *Client) epochsPrefix() string         { return c.prefix + "epochs/" }
func (c *Client) epochHistKey(n uint64) string { return fmt.Sprintf("%s%020d", c.epochsPrefix(), n) }

// epochAt reads the epoch, the key's mod revision (for a guarded update)
// and the store revision it was read at (to watch from).
func (c *Client) epochAt(ctx context.Context) (e Epoch, modRev, storeRev int64, err error) {
	resp, err := c.etcd.Get(ctx, c.epochKey())
	if err != nil {
		return Epoch{}, 0, 0, fmt.Errorf("read epoch: %w", c.etcdErr(err))
	}
	if len(resp.Kvs) == 0 {
		return Epoch{}, 0, resp.Header.Revision, nil
	}
	if e, err = decodeEpoch(resp.Kvs[0].Value); err != nil {
		return Epoch{}, 0, 0, fmt.Errorf("decode epoch at %s: %w", c.epochKey(), err)
	}
	return e, resp.Kvs[0].ModRevision, resp.Header.Revision, nil
}

// Epoch reads the current membership (Number 0 and no members before any
// node joined).
func (c *Client) Epoch(ctx context.Context) (Epoch, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	e, _, _, err := c.epochAt(ctx)
	return e, err
}

// EpochAt reads the record of epoch n: ErrNotFound if there never was one
// (n is beyond the current epoch, or it predates the history, which
// clusters formatted before history was kept lack). Epoch 0 is always the
// empty membership.
func (c *Client) EpochAt(ctx context.Context, n uint64) (Epoch, error) {
	if n == 0 {
		return Epoch{}, nil
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(c.epochHistKey(n)),
		clientv3.OpGet(c.epochKey()),
	).Commit()
	if err != nil {
		return Epoch{}, fmt.Errorf("read epoch %d: %w", n, c.etcdErr(err))
	}
	for i, key := range []string{c.epochHistKey(n), c.epochKey()} {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue
		}
		e, err := decodeEpoch(kvs[0].Value)
		if err != nil {
			return Epoch{}, fmt.Errorf("decode epoch at %s: %w", key, err)
		}
		// The current epoch stands in for its history record only if
		// it is the one asked for (a cluster from before history).
		if e.Number == n {
			return e, nil
		}
		if i == 0 {
			return Epoch{}, fmt.Errorf("%w: epoch %d recorded at %s", errCorrupt, e.Number, key)
		}
	}
	return Epoch{}, fmt.Errorf("epoch %d: %w", n, ErrNotFound)
}

// Epochs reads the records of epochs from..to (inclusive; to 0: up to the
// current one), oldest first. Numbers without a record (before history was
// kept) are left out.
func (c *Client) Epochs(ctx context.Context, from, to uint64) ([]Epoch, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	cur, _, _, err := c.epochAt(ctx)
	if err != nil {
		return nil, err
	}
	if to == 0 || to > cur.Number {
		to = cur.Number
	}
	if from == 0 {
		from = 1
	}
	if from > to {
		return nil, nil
	}
	resp, err := c.etcd.Get(ctx, c.epochHistKey(from), clientv3.WithRange(c.epochHistKey(to+1)))
	if err != nil {
		return nil, fmt.Errorf("read epochs %d..%d: %w", from, to, c.etcdErr(err))
	}
	out := make([]Epoch, 0, len(resp.Kvs)+1)
	for _, kv := range resp.Kvs {
		e, err := decodeEpoch(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("decode epoch at %s: %w", kv.Key, err)
		}
		out = append(out, e)
	}
	if cur.Number == to && (len(out) == 0 || out[len(out)-1].Number != to) {
		out = append(out, cur)
	}
	return out, nil
}

// Join makes m a member if it is not one yet (a new epoch); a member
// joining again changes nothing. This is the operator's `dog node join`;
// the membership controller (RunMembership) adds registered nodes by
// itself.
func (c *Client) Join(ctx context.Context, m Member) (Epoch, error) {
	if err := validNodeID(m.ID); err != nil {
		return Epoch{}, fmt.Errorf("join: %w", err)
	}
	return c.changeEpoch(ctx, "join "+m.ID, func(e *Epoch) bool {
		if e.Has(m.ID) {
			return false
		}
		e.Members = append(e.Members, m)
		e.Reason = "operator joined node " + m.ID
		return true
	})
}

// RemoveMember takes a node out of the membership (a new epoch); the other
// members then recover its objects. Removing a node that is not a member is
// ErrInvalid.
func (c *Client) RemoveMember(ctx context.Context, id string) (Epoch, error) {
	found := false
	e, err := c.changeEpoch(ctx, "remove "+id, func(e *Epoch) bool {
		for i, m := range e.Members {
			if m.ID == id {
				e.Members = append(e.Members[:i:i], e.Members[i+1:]...)
				e.Reason = "operator removed node " + id
				found = true
				return true
			}
		}
		found = false
		return false
	})
	if err == nil && !found {
		return e, fmt.Errorf("remove node %s: not a member: %w", id, ErrInvalid)
	}
	return e, err
}

// changeEpoch applies change to the current epoch and commits it as the
// next one, retrying if another change won the race. change sets Reason.
func (c *Client) changeEpoch(ctx context.Context, what string, change func(*Epoch) bool) (Epoch, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	for {
		e, rev, _, err := c.epochAt(ctx)
		if err != nil {
			return Epoch{}, fmt.Errorf("%s: %w", what, err)
		}
		if !change(&e) {
			return e, nil
		}
		ok, err := c.commitEpoch(ctx, &e, rev)
		if err != nil {
			return Epoch{}, fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return e, nil
		}
	}
}

// commitEpoch writes e (changed from the epoch whose key had mod revision
// rev) as the next epoch, with its history record in the same transaction.
// false: another change came first.
func (c *Client) commitEpoch(ctx context.Context, e *Epoch, rev int64) (bool, error) {
	e.Number++
	e.Changed = time.Now().UTC().Truncate(time.Millisecond)
	sort.Slice(e.Members, func(i, j int) bool { return e.Members[i].ID < e.Members[j].ID })
	val, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	resp, err := c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(c.epochKey()), "=", rev)).
		Then(
			clientv3.OpPut(c.epochKey(), string(val)),
			clientv3.OpPut(c.epochHistKey(e.Number), string(val)),
		).Commit()
	if err != nil {
		return false, c.etcdErr(err)
	}
	return resp.Succeeded, nil
}

// WatchEpoch sends the current epoch now and again after every change,
// until ctx is done, then closes the channel. A slow reader only misses
// intermediate epochs (read them with EpochAt).
func (c *Client) WatchEpoch(ctx context.Context) <-chan Epoch {
	out := make(chan Epoch, 1)
	go func() {
		defer close(out)
		c.watchLatest(ctx, c.epochKey(), false, func(ctx context.Context) (int64, error) {
			e, _, rev, err := c.epochAt(ctx)
			if err == nil {
				sendLatest(out, e)
			}
			return rev, err
		})
	}()
	return out
}
