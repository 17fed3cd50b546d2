package sheep

import (
	"context"
	"fmt"
	"sync"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/placement"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// placementID is a node id as placement knows it.
type placementID = placement.NodeID

// epochView is one epoch's membership with its placement ring: T(e, X) is
// targets(X, copies). Immutable once built.
type epochView struct {
	Number  uint64
	Members []cluster.Member
	ring    *placement.Ring // nil for an epoch without members (epoch 0)
}

func newEpochView(e cluster.Epoch) (*epochView, error) {
	v := &epochView{Number: e.Number, Members: e.Members}
	if len(e.Members) == 0 {
		return v, nil
	}
	r, err := e.Ring() // the clients' ring: the same T(e, X)
	if err != nil {
		return nil, fmt.Errorf("epoch %d: %w", e.Number, err)
	}
	v.ring = r
	return v, nil
}

// has reports whether id is a member.
func (v *epochView) has(id string) bool {
	if v.ring == nil {
		return false
	}
	_, ok := v.ring.Index(placement.NodeID(id))
	return ok
}

// copiesOf is copies(X) in this epoch: min(VDI copies, |M(e)|).
func (v *epochView) copiesOf(vdiCopies int) int {
	return min(vdiCopies, len(v.Members))
}

// targets appends T(e, X) to dst[:0] for an object of a VDI with vdiCopies
// copies.
func (v *epochView) targets(oid proto.ObjectID, vdiCopies int, dst []placement.NodeID) []placement.NodeID {
	if v.ring == nil {
		return dst[:0]
	}
	return v.ring.Replicas(uint64(oid), v.copiesOf(vdiCopies), dst)
}

// isTarget reports whether id ∈ T(e, X). It allocates nothing.
func (v *epochView) isTarget(id string, oid proto.ObjectID, vdiCopies int) bool {
	var buf [cluster.MaxCopies + 1]placement.NodeID
	for _, t := range v.targets(oid, vdiCopies, buf[:0]) {
		if string(t) == id {
			return true
		}
	}
	return false
}

// epochSource reads epochs from the cluster's history.
type epochSource interface {
	EpochAt(ctx context.Context, n uint64) (cluster.Epoch, error)
}

// epochCache keeps the views of past epochs: history never changes, so an
// epoch is read from etcd once.
type epochCache struct {
	src epochSource
	mu  sync.Mutex
	m   map[uint64]*epochView
}

func newEpochCache(src epochSource) *epochCache {
	return &epochCache{src: src, m: map[uint64]*epochView{0: {}}}
}

// add records an epoch already read (the current one, from a watch).
func (c *epochCache) add(e cluster.Epoch) (*epochView, error) {
	c.mu.Lock()
	v, ok := c.m[e.Number]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := newEpochView(e)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.m[e.Number] = v
	c.mu.Unlock()
	return v, nil
}

// at is the view of epoch n (epoch 0: no members).
func (c *epochCache) at(ctx context.Context, n uint64) (*epochView, error) {
	c.mu.Lock()
	v, ok := c.m[n]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	e, err := c.src.EpochAt(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("read epoch %d: %w", n, err)
	}
	if e.Number != n {
		return nil, fmt.Errorf("read epoch %d: etcd returned epoch %d", n, e.Number)
	}
	return c.add(e)
}

// cached is the view of epoch n if it was read already.
func (c *epochCache) cached(n uint64) (*epochView, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[n]
	return v, ok
}
