package sheep

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sheepblk/sheepblk/backend"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// ioState is one request in flight: its object pieces (see piece.go), each
// with its sub-calls. States are preallocated and reused.
type ioState struct {
	b        *Backend
	req      *backend.Request
	deadline time.Time    // the io-timeout: every retry stops here
	pending  atomic.Int32 // pieces not done
	pieces   []piece
	subs     []subCall // piece i owns subs[i*perPiece:][:perPiece]
	perPiece int
	np       int // pieces in use

	mu  sync.Mutex
	err error // the first failure

	errOut *error // synchronous callers get the error itself, not an errno
}

func (b *Backend) newState() *ioState {
	st := &ioState{b: b, perPiece: b.vdi.Copies}
	st.grow(b.maxPieces)
	return st
}

// grow makes room for n pieces. Only ever called before any piece is in
// use (pieces point into subs).
func (st *ioState) grow(n int) {
	if n <= len(st.pieces) {
		return
	}
	st.pieces = make([]piece, n)
	st.subs = make([]subCall, n*st.perPiece)
	for i := range st.pieces {
		p := &st.pieces[i]
		p.st = st
		p.subs = st.subs[i*st.perPiece : (i+1)*st.perPiece : (i+1)*st.perPiece]
		for j := range p.subs {
			s := &p.subs[j]
			s.piece, s.bit = p, 1<<j
			s.call.Done = s.done // a method value, made once per sub-call
		}
	}
}

func (b *Backend) getState() *ioState {
	select {
	case st := <-b.free:
		return st
	default:
		return b.newState() // more in flight than MaxInFlight
	}
}

func (b *Backend) putState(st *ioState) {
	for i := range st.np {
		st.pieces[i].reset()
	}
	st.req, st.err, st.np, st.errOut = nil, nil, 0, nil
	select {
	case b.free <- st:
	default:
	}
}

// fail records err as the request's error if it is the first.
func (st *ioState) fail(err error) {
	st.mu.Lock()
	if st.err == nil {
		st.err = err
	}
	st.mu.Unlock()
}

// finishOne retires a piece; the last one completes the request.
func (st *ioState) finishOne() {
	if st.pending.Add(-1) != 0 {
		return
	}
	r, err, b := st.req, st.err, st.b
	if st.errOut != nil {
		*st.errOut = err
	} else if err != nil {
		b.errLog.Warn().Err(err).Stringer("op", r.Op).Int64("offset", r.Offset).Int("length", r.Length).Msg("request failed")
	}
	b.putState(st)
	b.inflight.Add(-1)
	r.Done(err)
}

// Submit starts a request; it never blocks. r.Done runs once it is done,
// from an rpc or retry-timer goroutine (or from Submit itself for requests
// that need no network, or fail before any).
func (b *Backend) Submit(r *backend.Request) { b.submit(r, nil, false) }

// SubmitPlugged is Submit that only queues the request's calls on their
// connections; Unplug sends everything queued. The ublk queue submits a
// round of requests this way and then unplugs once, so a round costs one
// writev per node, written by the queue thread itself: no writer
// goroutine has to wake up for it.
func (b *Backend) SubmitPlugged(r *backend.Request) { b.submit(r, nil, true) }

// Unplug sends the calls SubmitPlugged queued, on every node's connection.
// It never blocks (rpc.Client.Flush).
func (b *Backend) Unplug() {
	for _, p := range b.topo.Load().peers {
		if c := p.conn.Load(); c != nil {
			c.Flush()
		}
	}
}

// submit is Submit that also stores the request's error in *errOut (if
// not nil) before r.Done.
func (b *Backend) submit(r *backend.Request, errOut *error, plugged bool) {
	b.inflight.Add(1)
	if err := b.refuse(); err != nil {
		b.inflight.Add(-1)
		if errOut != nil {
			*errOut = err
		}
		r.Done(err)
		return
	}
	st := b.getState()
	st.req, st.errOut = r, errOut
	t := b.topo.Load()
	st.deadline = time.Now().Add(b.opts.IOTimeout)
	var err error
	switch r.Op {
	case backend.OpRead:
		err = st.planPieces(t, proto.OpRead, 0)
	case backend.OpWrite:
		var flags proto.Flags
		if r.FUA {
			flags = proto.FlagFUA
		}
		err = st.planPieces(t, proto.OpWrite, flags)
	case backend.OpDiscard, backend.OpWriteZeroes:
		// A discarded range reads back as zeros on every node.
		err = st.planPieces(t, proto.OpDiscard, 0)
	case backend.OpFlush:
		st.deadline = time.Now().Add(max(b.opts.IOTimeout, b.opts.FlushTimeout))
		st.planFlush(t)
	default:
		err = fmt.Errorf("sheep backend: %v is not supported", r.Op)
	}
	if err != nil {
		if errOut != nil {
			*errOut = err
		} else {
			b.errLog.Warn().Err(err).Stringer("op", r.Op).Int64("offset", r.Offset).Int("length", r.Length).Msg("request failed")
		}
		b.putState(st)
		b.inflight.Add(-1)
		r.Done(err)
		return
	}
	if st.np == 0 {
		b.putState(st)
		b.inflight.Add(-1)
		r.Done(nil)
		return
	}
	// All pieces are counted before the first is sent: any may finish
	// before the next is sent.
	st.pending.Store(int32(st.np))
	for i := range st.np {
		st.pieces[i].start(plugged)
	}
}

// refuse is why no request may start now, or nil.
func (b *Backend) refuse() error {
	if b.closed.Load() {
		return ErrClosed
	}
	if b.gone.Load() {
		return fmt.Errorf("vdi %s (id %d) was deleted", b.vdi.Name, b.vdi.ID)
	}
	return nil
}

// planPieces plans a read, write or discard: one piece per object the
// range touches, placed on the epoch of t.
func (st *ioState) planPieces(t *topology, op proto.Op, flags proto.Flags) error {
	r, size := st.req, st.b.objSize
	if r.Offset < 0 || r.Length < 0 || r.Offset+int64(r.Length) > st.b.vdi.Size {
		return fmt.Errorf("%v of %d bytes at %d: outside the %d-byte vdi %s", r.Op, r.Length, r.Offset, st.b.vdi.Size, st.b.vdi.Name)
	}
	if (op == proto.OpRead || op == proto.OpWrite) && len(r.Buf) < r.Length {
		return fmt.Errorf("%v of %d bytes with a %d-byte buffer", r.Op, r.Length, len(r.Buf))
	}
	st.grow(r.Length/int(size) + 2)
	for at := 0; at < r.Length; {
		off := r.Offset + int64(at)
		inObj := off & (size - 1)
		n := int(min(size-inObj, int64(r.Length-at)))
		p := &st.pieces[st.np]
		p.op, p.flags, p.length = op, flags, uint32(n)
		p.writeID, p.rounds = 0, 0
		if op.IsUpdate() {
			p.writeID = st.b.nextWriteID()
		}
		p.oid = proto.NewObjectID(st.b.vdi.ID, uint32(off/size))
		p.off = uint64(inObj)
		p.data = nil
		if op == proto.OpRead || op == proto.OpWrite {
			p.data = r.Buf[at : at+n : at+n]
		}
		if err := p.plan(t); err != nil {
			return err
		}
		st.np++
		at += n
	}
	return nil
}

// planFlush flushes every member written since the last flush. (A node
// that left the membership holds only superseded copies: nothing to make
// durable there.)
func (st *ioState) planFlush(t *topology) {
	st.grow(len(t.peers))
	for _, pe := range t.peers {
		if !pe.dirty.Swap(false) {
			continue
		}
		p := &st.pieces[st.np]
		p.op, p.flags, p.length, p.data = proto.OpFlush, 0, 0, nil
		p.flushPeer = pe
		p.plan(t) // cannot fail for a flush
		st.np++
	}
}
