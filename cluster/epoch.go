package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is a node as placement knows it: the part of a Node that decides
// where objects live. It is fixed when the node first joins (a node's free
// space changes at every start; its placement weight must not).
type Member struct {
	ID       string `json:"id"`
	Zone     string `json:"zone,omitempty"`
	Capacity int64  `json:"capacity"`
}

// Epoch is the cluster's membership for placement: the nodes objects are
// placed on, whether or not each is up right now. A node that dies stays a
// member (its objects are still placed on it, so reads fail over to the
// other replicas and writes to its objects fail rather than landing where
// readers would not look); only a node that joins for the first time, or
// one an operator removes, changes the epoch.
type Epoch struct {
	// Number grows by one with every membership or placement change.
	Number  uint64    `json:"number"`
	Members []Member  `json:"members"` // sorted by ID
	Changed time.Time `json:"changed"`
	// Data is the membership the stored objects are still placed by after
	// an operator joined or removed a node, until `dog cluster recover`
	// has copied every object to its place under Members; nil otherwise.
	// Clients place I/O by Placement, so a membership change never sends a
	// read where the data is not.
	Data []Member `json:"data,omitempty"`
}

// Placement is the membership objects are placed by now: Data while a
// recovery is pending, else Members.
func (e Epoch) Placement() []Member {
	if e.Data != nil {
		return e.Data
	}
	return e.Members
}

// Recovering reports whether objects still have to move to their places
// under Members.
func (e Epoch) Recovering() bool { return e.Data != nil }

// Has reports whether id is a member.
func (e Epoch) Has(id string) bool {
	i := sort.Search(len(e.Members), func(i int) bool { return e.Members[i].ID >= id })
	return i < len(e.Members) && e.Members[i].ID == id
}

func (c *Client) epochKey() string { return c.prefix + "epoch" }

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

// Join makes m a member if it is not one yet (a new epoch); a member
// joining again changes nothing. It is unconditional: on a cluster that
// holds data, a new member moves objects it does not have (see
// joinIfNoData).
func (c *Client) Join(ctx context.Context, m Member) (Epoch, error) {
	if err := validNodeID(m.ID); err != nil {
		return Epoch{}, fmt.Errorf("join: %w", err)
	}
	return c.changeEpoch(ctx, "join "+m.ID, func(e *Epoch) bool {
		if e.Has(m.ID) {
			return false
		}
		keepDataPlacement(e)
		e.Members = append(e.Members, m)
		return true
	})
}

// keepDataPlacement records, before the first membership change since the
// last recovery, where the objects are: they stay there (and I/O follows
// them) until a recovery moves them.
func keepDataPlacement(e *Epoch) {
	if e.Data == nil {
		e.Data = append([]Member{}, e.Members...)
	}
}

// ErrVDIInUse: a VDI is open by a client (a device serving it), so its
// objects may not move now.
var ErrVDIInUse = errors.New("vdi in use")

// ErrEpochChanged: the epoch is not the one a recovery started from.
var ErrEpochChanged = errors.New("epoch changed")

// FinishRecovery ends a recovery that started from epoch number: objects
// are placed by Members from now on (Data is cleared, a new epoch). It
// fails with ErrEpochChanged if the epoch moved on meanwhile, and with
// ErrVDIInUse while any VDI is open: a client writing by the old placement
// during the switch would write where readers no longer look.
func (c *Client) FinishRecovery(ctx context.Context, number uint64) (Epoch, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	e, rev, _, err := c.epochAt(ctx)
	if err != nil {
		return Epoch{}, fmt.Errorf("finish recovery: %w", err)
	}
	if e.Number != number {
		return e, fmt.Errorf("finish recovery from epoch %d: now %d: %w", number, e.Number, ErrEpochChanged)
	}
	if e.Data == nil {
		return e, nil
	}
	e.Data = nil
	e.Number++
	e.Changed = time.Now().UTC().Truncate(time.Millisecond)
	val, err := json.Marshal(e)
	if err != nil {
		return Epoch{}, fmt.Errorf("finish recovery: %w", err)
	}
	resp, err := c.etcd.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(c.epochKey()), "=", rev),
		clientv3.Compare(clientv3.CreateRevision(c.openPrefix()), "=", 0).WithPrefix(),
	).Then(
		clientv3.OpPut(c.epochKey(), string(val)),
	).Else(
		clientv3.OpGet(c.openPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return Epoch{}, fmt.Errorf("finish recovery: %w", c.etcdErr(err))
	}
	if !resp.Succeeded {
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			return Epoch{}, fmt.Errorf("finish recovery: %w: %s", ErrVDIInUse, c.openNames(kvs))
		}
		return Epoch{}, fmt.Errorf("finish recovery from epoch %d: %w", number, ErrEpochChanged)
	}
	return e, nil
}

// joinIfNoData is Join for Register: a node new to the membership joins
// only while the cluster has no VDI. Joining later would move objects onto
// a node that does not have them, and reads there return zeros; until the
// nodes recover (copy) objects on membership changes, such a node stays a
// spare: live, listed, given no data. `dog node join` forces it in.
func (c *Client) joinIfNoData(ctx context.Context, m Member) (joined bool, err error) {
	if err := validNodeID(m.ID); err != nil {
		return false, fmt.Errorf("join: %w", err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	for {
		e, rev, _, err := c.epochAt(ctx)
		if err != nil {
			return false, fmt.Errorf("join %s: %w", m.ID, err)
		}
		if e.Has(m.ID) {
			return true, nil
		}
		e.Members = append(e.Members, m)
		e.Number++
		e.Changed = time.Now().UTC().Truncate(time.Millisecond)
		sort.Slice(e.Members, func(i, j int) bool { return e.Members[i].ID < e.Members[j].ID })
		val, err := json.Marshal(e)
		if err != nil {
			return false, fmt.Errorf("join %s: %w", m.ID, err)
		}
		resp, err := c.etcd.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(c.epochKey()), "=", rev),
			// No key under vdis/: an empty range compares as absent.
			clientv3.Compare(clientv3.CreateRevision(c.vdisPrefix()), "=", 0).WithPrefix(),
		).Then(
			clientv3.OpPut(c.epochKey(), string(val)),
		).Else(
			clientv3.OpGet(c.vdisPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		).Commit()
		if err != nil {
			return false, fmt.Errorf("join %s: %w", m.ID, c.etcdErr(err))
		}
		if resp.Succeeded {
			return true, nil
		}
		if resp.Responses[0].GetResponseRange().Count > 0 {
			return false, nil
		}
		// The epoch changed meanwhile: look again.
	}
}

// RemoveMember takes a node out of the membership for good (it will not
// come back). Its objects stay placed on it (Data) until a recovery copies
// them from the other replicas to their new places. Removing a node that
// is not a member is ErrInvalid.
func (c *Client) RemoveMember(ctx context.Context, id string) (Epoch, error) {
	found := false
	e, err := c.changeEpoch(ctx, "remove "+id, func(e *Epoch) bool {
		for i, m := range e.Members {
			if m.ID == id {
				keepDataPlacement(e)
				e.Members = append(e.Members[:i:i], e.Members[i+1:]...)
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
// next one, retrying if another change won the race.
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
		e.Number++
		e.Changed = time.Now().UTC().Truncate(time.Millisecond)
		sort.Slice(e.Members, func(i, j int) bool { return e.Members[i].ID < e.Members[j].ID })
		val, err := json.Marshal(e)
		if err != nil {
			return Epoch{}, fmt.Errorf("%s: %w", what, err)
		}
		resp, err := c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(c.epochKey()), "=", rev)).
			Then(clientv3.OpPut(c.epochKey(), string(val))).Commit()
		if err != nil {
			return Epoch{}, fmt.Errorf("%s: %w", what, c.etcdErr(err))
		}
		if resp.Succeeded {
			return e, nil
		}
	}
}

// WatchEpoch sends the current epoch now and again after every change,
// until ctx is done, then closes the channel. A slow reader only misses
// intermediate epochs.
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
