package sheep

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// peerCallTimeout bounds one call to a peer: a peer that does not answer
// in time counts as unreachable (recovery retries later).
const peerCallTimeout = 10 * time.Second

// refreshEvery bounds how often a cache re-reads etcd on a miss.
const refreshEvery = 200 * time.Millisecond

// vdiSource lists the cluster's VDIs.
type vdiSource interface {
	VDIs(ctx context.Context) ([]cluster.VDI, error)
}

// errUnknownVDI: an object of a VDI the cluster does not have (deleted, or
// not created yet).
var errUnknownVDI = errors.New("unknown VDI")

// vdiCache knows each VDI's copies; a VDI's copies never change, so the
// table is re-read only when an unknown VDI is asked for.
type vdiCache struct {
	src      vdiSource
	mu       sync.Mutex
	table    map[uint32]int
	loadedAt time.Time
}

func newVDICache(src vdiSource) *vdiCache { return &vdiCache{src: src, table: map[uint32]int{}} }

// refresh re-reads the VDI table.
func (c *vdiCache) refresh(ctx context.Context) (map[uint32]int, error) {
	vdis, err := c.src.VDIs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list VDIs: %w", err)
	}
	m := make(map[uint32]int, len(vdis))
	for _, v := range vdis {
		m[v.ID] = v.Copies
	}
	c.mu.Lock()
	c.table, c.loadedAt = m, time.Now()
	c.mu.Unlock()
	return m, nil
}

// known reports whether copies(id) would answer from the table, without
// asking etcd.
func (c *vdiCache) known(id uint32) bool {
	c.mu.Lock()
	_, ok := c.table[id]
	c.mu.Unlock()
	return ok
}

// copies is the copies of VDI id; errUnknownVDI if the cluster has none.
func (c *vdiCache) copies(ctx context.Context, id uint32) (int, error) {
	c.mu.Lock()
	n, ok := c.table[id]
	fresh := time.Since(c.loadedAt) < refreshEvery
	c.mu.Unlock()
	if ok {
		return n, nil
	}
	if !fresh {
		m, err := c.refresh(ctx)
		if err != nil {
			return 0, err
		}
		if n, ok = m[id]; ok {
			return n, nil
		}
	}
	return 0, fmt.Errorf("vdi %06x: %w", id, errUnknownVDI)
}

// nodeLister lists the live nodes.
type nodeLister interface {
	Nodes(ctx context.Context) ([]cluster.Node, error)
}

// peerSet reaches other nodes by id: their addresses come from the node
// list (a node not registered is unreachable), one rpc client per address.
type peerSet struct {
	nodes nodeLister
	opts  rpc.ClientOptions
	log   zerolog.Logger

	mu       sync.Mutex
	addrs    map[string]string
	loadedAt time.Time
	clients  map[string]*rpc.Client
	closed   bool
}

func newPeerSet(nodes nodeLister, opts rpc.ClientOptions, log zerolog.Logger) *peerSet {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = peerCallTimeout
	}
	opts.Logger = log
	return &peerSet{nodes: nodes, opts: opts, log: log, addrs: map[string]string{}, clients: map[string]*rpc.Client{}}
}

// refresh re-reads the node list; registered reports who is live.
func (p *peerSet) refresh(ctx context.Context) (registered map[string]string, err error) {
	nodes, err := p.nodes.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(nodes))
	for _, n := range nodes {
		if n.State == cluster.NodeUp {
			m[n.ID] = n.Addr
		}
	}
	live := make(map[string]bool, len(m))
	for _, a := range m {
		live[a] = true
	}
	var gone []*rpc.Client
	p.mu.Lock()
	p.addrs, p.loadedAt = m, time.Now()
	// Addresses no node is registered at any more (a node restarted
	// elsewhere, or left) are closed: a call still on one fails and counts
	// as unreachable, which recovery retries.
	for a, c := range p.clients {
		if !live[a] {
			gone = append(gone, c)
			delete(p.clients, a)
		}
	}
	p.mu.Unlock()
	for _, c := range gone {
		c.Close()
	}
	return m, nil
}

// client returns the rpc client of node id, or nil if it is not registered.
func (p *peerSet) client(ctx context.Context, id string) *rpc.Client {
	p.mu.Lock()
	addr, ok := p.addrs[id]
	fresh := time.Since(p.loadedAt) < refreshEvery
	p.mu.Unlock()
	if !ok && !fresh {
		if m, err := p.refresh(ctx); err == nil {
			addr, ok = m[id]
		}
	}
	if !ok {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	c := p.clients[addr]
	if c == nil {
		c = rpc.NewClient(addr, p.opts)
		p.clients[addr] = c
	}
	return c
}

// Close closes every client.
func (p *peerSet) Close() {
	p.mu.Lock()
	clients := p.clients
	p.clients, p.closed = map[string]*rpc.Client{}, true
	p.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
}

// call sends req to node id and returns the decoded reply; body is the
// reply buffer. A transport failure or an unregistered node is an error.
func (p *peerSet) call(ctx context.Context, id string, req proto.Request, body []byte) (proto.Response, []byte, error) {
	c := p.client(ctx, id)
	if c == nil {
		return proto.Response{}, nil, fmt.Errorf("node %s is not registered", id)
	}
	var hdr [proto.RequestSize]byte
	h, _ := req.AppendBinary(hdr[:0])
	var respHdr [64]byte
	call := &rpc.Call{ReqHeader: h, RespHeader: respHdr[:], RespBody: body}
	ctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	if err := c.Do(ctx, call); err != nil {
		return proto.Response{}, nil, fmt.Errorf("node %s: %w", id, err)
	}
	resp, err := proto.DecodeResponse(call.RespHeader, call.RespBody, &req)
	if err != nil {
		return resp, nil, fmt.Errorf("node %s: %w", id, err)
	}
	return resp, call.RespBody, nil
}

// readPeer asks node id for X as of epoch e (OpReadPeer); on answerData buf
// holds X.
func (p *peerSet) readPeer(ctx context.Context, id string, oid proto.ObjectID, e uint64, buf []byte) peerAnswer {
	req := proto.Request{Op: proto.OpReadPeer, Epoch: e, Object: oid, Length: uint32(len(buf))}
	resp, body, err := p.call(ctx, id, req, buf)
	if err != nil {
		p.log.Debug().Err(err).Stringer("object", oid).Uint64("epoch", e).Msg("read-peer failed")
		return answerUnreachable
	}
	switch resp.Status {
	case proto.StatusOK:
		if len(body) != len(buf) {
			return answerUnreachable
		}
		return answerData
	case proto.StatusNotFound:
		return answerAbsent
	case proto.StatusNotReady:
		return answerUnknown
	default:
		p.log.Debug().Stringer("status", resp.Status).Str("node", id).Stringer("object", oid).Msg("read-peer answered an error")
		return answerUnreachable
	}
}

// listAll lists every object node id holds in any form (FlagAllCopies),
// calling fn for each id. It fails if the node has not settled in epoch
// atLeast yet (it could still take writes of an earlier epoch).
func (p *peerSet) listAll(ctx context.Context, id string, atLeast uint64, fn func(proto.ObjectID)) error {
	body := make([]byte, proto.MaxListPage*8)
	from := proto.ObjectID(0)
	for {
		req := proto.Request{Op: proto.OpListObjects, Flags: proto.FlagAllCopies, Object: from, Length: proto.MaxListPage}
		resp, b, err := p.call(ctx, id, req, body)
		if err != nil {
			return err
		}
		if resp.Status != proto.StatusOK {
			return fmt.Errorf("node %s: list objects: %w", id, resp.Status)
		}
		if resp.Epoch < atLeast {
			return fmt.Errorf("node %s: list objects: node at epoch %d, not %d yet", id, resp.Epoch, atLeast)
		}
		l, err := proto.DecodeObjectList(b, req.Length)
		if err != nil {
			return fmt.Errorf("node %s: list objects: %w", id, err)
		}
		for i := range l.Len() {
			fn(l.At(i))
		}
		if resp.Flags&proto.RespMore == 0 {
			return nil
		}
		next := proto.ObjectID(resp.Aux)
		if next <= from {
			return fmt.Errorf("node %s: list objects: cursor went back to %v", id, next)
		}
		from = next
	}
}
