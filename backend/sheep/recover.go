package sheep

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/placement"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// RecoverOptions are the arguments of Recover.
type RecoverOptions struct {
	Cluster *cluster.Client
	// CallTimeout bounds each call (default 30s: calls move whole objects).
	CallTimeout time.Duration
	// RPC configures the connections to the nodes (secret, TLS).
	RPC    rpc.ClientOptions
	Logger zerolog.Logger
}

// RecoverResult says what Recover did.
type RecoverResult struct {
	FromEpoch uint64 `json:"from_epoch"`
	ToEpoch   uint64 `json:"to_epoch"`
	Objects   int    `json:"objects"` // objects of all VDIs looked at
	Copied    int    `json:"copied"`  // copies written to new places
	Removed   int    `json:"removed"` // copies removed from old places
	// Leftover counts old copies that could not be removed (garbage).
	Leftover int `json:"leftover,omitempty"`
}

// Recover moves every object to its place under the epoch's Members after
// an operator joined or removed a node, then switches the cluster's
// placement to it, then removes the copies left where objects no longer
// belong. It is an offline operation: it refuses to start, and the switch
// refuses to happen, while any VDI is open (a device serving it), because a
// write made by the old placement during the copy could be lost. It is safe
// to run again after a failure: copies are idempotent and the switch
// happens only once everything is in place.
func Recover(ctx context.Context, opts RecoverOptions) (RecoverResult, error) {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	cl := opts.Cluster
	e, err := cl.Epoch(ctx)
	if err != nil {
		return RecoverResult{}, fmt.Errorf("recover: %w", err)
	}
	res := RecoverResult{FromEpoch: e.Number, ToEpoch: e.Number}
	if !e.Recovering() {
		return res, nil
	}
	if inUse, err := cl.VDIsInUse(ctx); err != nil {
		return res, fmt.Errorf("recover: %w", err)
	} else if len(inUse) > 0 {
		return res, fmt.Errorf("recover: %w: %d vdi(s) open, e.g. by a ublk device: stop them first", cluster.ErrVDIInUse, len(inUse))
	}
	r, err := newRecovery(ctx, opts, e)
	if err != nil {
		return res, err
	}
	defer r.close()
	vdis, err := cl.VDIs(ctx)
	if err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	var stale []staleCopy
	for _, v := range vdis {
		s, err := r.recoverVDI(ctx, v, &res)
		if err != nil {
			return res, fmt.Errorf("recover vdi %s: %w", v.Name, err)
		}
		stale = append(stale, s...)
	}
	// Make the copies durable before placement points at them.
	for id := range r.written {
		if err := call(ctx, r.clients[id], proto.Request{Op: proto.OpFlush}, opts.CallTimeout); err != nil {
			return res, fmt.Errorf("recover: flush node %s: %w", id, err)
		}
	}
	done, err := cl.FinishRecovery(ctx, e.Number)
	if err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	res.ToEpoch = done.Number
	for _, sc := range stale {
		c := r.clients[sc.node]
		if c == nil {
			res.Leftover++
			continue
		}
		if err := call(ctx, c, proto.Request{Op: proto.OpRemove, Object: sc.oid}, opts.CallTimeout); err != nil && !errors.Is(err, proto.StatusNotFound) {
			res.Leftover++
			continue
		}
		res.Removed++
	}
	return res, nil
}

// recovery is the state of one Recover run.
type recovery struct {
	opts     RecoverOptions
	old, new *placement.Ring
	clients  map[string]*rpc.Client // live, verified nodes by id
	written  map[string]bool
	buf      []byte
}

type staleCopy struct {
	node string
	oid  proto.ObjectID
}

func ringOf(ms []cluster.Member) (*placement.Ring, error) {
	nodes := make([]placement.Node, len(ms))
	for i, m := range ms {
		nodes[i] = placement.Node{ID: placement.NodeID(m.ID), Zone: m.Zone, Capacity: m.Capacity}
	}
	return placement.New(nodes)
}

func newRecovery(ctx context.Context, opts RecoverOptions, e cluster.Epoch) (*recovery, error) {
	old, err := ringOf(e.Data)
	if err != nil {
		return nil, fmt.Errorf("recover: old placement: %w", err)
	}
	nw, err := ringOf(e.Members)
	if err != nil {
		return nil, fmt.Errorf("recover: new placement: %w", err)
	}
	settings, err := opts.Cluster.Settings(ctx)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	live, err := opts.Cluster.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	r := &recovery{opts: opts, old: old, new: nw, clients: map[string]*rpc.Client{}, written: map[string]bool{}}
	ropts := opts.RPC
	ropts.CallTimeout = opts.CallTimeout
	ropts.MaxBody = max(ropts.MaxBody, int(settings.ObjectSize)+64<<10, rpc.DefaultMaxBody)
	ropts.Logger = opts.Logger
	for _, n := range live {
		if n.State != cluster.NodeUp {
			continue
		}
		c := rpc.NewClient(n.Addr, ropts)
		ictx, cancel := context.WithTimeout(ctx, opts.CallTimeout)
		err := identify(ictx, c, n.ID, settings.ObjectSize)
		cancel()
		if err != nil {
			c.Close()
			opts.Logger.Warn().Err(err).Str("node", n.ID).Msg("recover: node not usable")
			continue
		}
		r.clients[n.ID] = c
	}
	return r, nil
}

func (r *recovery) close() {
	for _, c := range r.clients {
		c.Close()
	}
}

// recoverVDI copies each object of v to the replicas it gains, and returns
// the copies it loses (to remove once placement has switched).
func (r *recovery) recoverVDI(ctx context.Context, v cluster.VDI, res *RecoverResult) ([]staleCopy, error) {
	timeout := r.opts.CallTimeout
	if int64(cap(r.buf)) < v.ObjectSize {
		r.buf = make([]byte, v.ObjectSize)
	}
	buf := r.buf[:v.ObjectSize]
	// Every object of the VDI that any live old replica holds.
	first := proto.NewObjectID(v.ID, 0)
	held := map[proto.ObjectID]map[string]bool{}
	for id, c := range r.clients {
		for cursor := uint64(first); ; {
			page, next, more, err := listPage(ctx, c, cursor, uint64(first)+1<<32, timeout)
			if err != nil {
				return nil, fmt.Errorf("list objects on node %s: %w", id, err)
			}
			for _, oid := range page {
				if held[oid] == nil {
					held[oid] = map[string]bool{}
				}
				held[oid][id] = true
			}
			if !more || next <= cursor {
				break
			}
			cursor = next
		}
	}
	var stale []staleCopy
	var oldReps, newReps [32]placement.NodeID
	for oid, holders := range held {
		res.Objects++
		olds := r.old.Replicas(uint64(oid), v.Copies, oldReps[:0])
		news := r.new.Replicas(uint64(oid), v.Copies, newReps[:0])
		isOld := map[string]bool{}
		for _, id := range olds {
			isOld[string(id)] = true
		}
		// Read from an old replica that is live and holds it.
		var source string
		for _, id := range olds {
			if holders[string(id)] && r.clients[string(id)] != nil {
				if _, _, err := roundTrip(ctx, r.clients[string(id)], proto.Request{Op: proto.OpRead, Length: uint32(v.ObjectSize), Object: oid}, buf, timeout); err == nil {
					source = string(id)
					break
				}
			}
		}
		if source == "" {
			return nil, fmt.Errorf("object %v: no live replica of its placement %v holds it", oid, olds)
		}
		isNew := map[string]bool{}
		for _, id := range news {
			isNew[string(id)] = true
			if isOld[string(id)] && holders[string(id)] {
				continue // already there, and kept current by the old placement
			}
			c := r.clients[string(id)]
			if c == nil {
				return nil, fmt.Errorf("object %v: its new replica node %s is down", oid, id)
			}
			req := proto.Request{Op: proto.OpCreateAndWrite, Length: uint32(v.ObjectSize), Object: oid}
			if _, _, err := roundTripWith(ctx, c, req, buf, make([]byte, proto.MaxErrorMessage), timeout); err != nil {
				return nil, fmt.Errorf("copy object %v from %s to %s: %w", oid, source, id, err)
			}
			r.written[string(id)] = true
			res.Copied++
		}
		for id := range holders {
			if !isNew[id] {
				stale = append(stale, staleCopy{node: id, oid: oid})
			}
		}
	}
	return stale, nil
}
