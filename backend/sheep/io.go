package sheep

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sheepblk/sheepblk/backend"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// ioState is one request in flight: its sub-calls, one per object piece
// and replica. States are preallocated and reused.
type ioState struct {
	b       *Backend
	req     *backend.Request
	topo    *topology
	pending atomic.Int32
	subs    []subCall
	n       int // subs in use

	mu  sync.Mutex
	err error // the first failure

	errOut *error // synchronous callers get the error itself, not an errno
}

// subCall is one rpc call of a request: a piece of one object on one node.
type subCall struct {
	st   *ioState
	call rpc.Call
	req  proto.Request
	peer *peer
	hdr  [proto.RequestSize]byte
	resp [proto.ResponseSize]byte
	msg  [proto.MaxErrorMessage]byte // error reply text of a write/flush
	data []byte                      // the piece of the request's buffer

	// Reads: the replicas (ring indexes) to try, in order.
	replicas [32]int
	nrep     int
	attempt  int
}

func (b *Backend) newState() *ioState {
	st := &ioState{b: b}
	st.grow(b.subN)
	return st
}

func (st *ioState) grow(n int) {
	if n <= len(st.subs) {
		return
	}
	st.subs = make([]subCall, n)
	for i := range st.subs {
		s := &st.subs[i]
		s.st = st
		s.call.Done = s.done // a method value, made once per sub-call
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
	st.req, st.topo, st.err, st.n, st.errOut = nil, nil, nil, 0, nil
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

// finishOne retires a sub-call; the last one completes the request.
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
// from an rpc goroutine (or from Submit itself for requests that need no
// network, or fail before any).
func (b *Backend) Submit(r *backend.Request) { b.submit(r, nil) }

// submit is Submit that also stores the request's error in *errOut (if
// not nil) before r.Done.
func (b *Backend) submit(r *backend.Request, errOut *error) {
	b.inflight.Add(1)
	if b.closed.Load() {
		b.inflight.Add(-1)
		if errOut != nil {
			*errOut = ErrClosed
		}
		r.Done(ErrClosed)
		return
	}
	if b.gone.Load() {
		b.inflight.Add(-1)
		err := fmt.Errorf("vdi %s (id %d) was deleted", b.vdi.Name, b.vdi.ID)
		if errOut != nil {
			*errOut = err
		}
		r.Done(err)
		return
	}
	st := b.getState()
	st.req, st.errOut = r, errOut
	st.topo = b.topo.Load()
	var err error
	switch r.Op {
	case backend.OpRead:
		err = st.planRead()
	case backend.OpWrite:
		err = st.planUpdate(proto.OpWrite)
	case backend.OpDiscard, backend.OpWriteZeroes:
		// A discarded range reads back as zeros on every node.
		err = st.planUpdate(proto.OpDiscard)
	case backend.OpFlush:
		err = st.planFlush()
	default:
		err = fmt.Errorf("sheep backend: %v is not supported", r.Op)
	}
	if err != nil {
		st.undoFlushPlan()
		if errOut != nil {
			*errOut = err
		}
		b.putState(st)
		b.inflight.Add(-1)
		r.Done(err)
		return
	}
	if st.n == 0 {
		b.putState(st)
		b.inflight.Add(-1)
		r.Done(nil)
		return
	}
	// All sub-calls are counted before the first is sent: any may finish
	// before the next is sent.
	st.pending.Store(int32(st.n))
	for i := range st.n {
		st.subs[i].send()
	}
}

// pieces calls f for each object piece of [off, off+length): the object
// index, the offset in the object, and the piece's offset and length within
// the request.
func (st *ioState) pieces(f func(idx uint32, inObj int64, at, n int) error) error {
	r, size := st.req, st.b.objSize
	if r.Offset < 0 || r.Length < 0 || r.Offset+int64(r.Length) > st.b.vdi.Size {
		return fmt.Errorf("%v of %d bytes at %d: outside the %d-byte vdi %s", r.Op, r.Length, r.Offset, st.b.vdi.Size, st.b.vdi.Name)
	}
	if (r.Op == backend.OpRead || r.Op == backend.OpWrite) && len(r.Buf) < r.Length {
		return fmt.Errorf("%v of %d bytes with a %d-byte buffer", r.Op, r.Length, len(r.Buf))
	}
	for at := 0; at < r.Length; {
		off := r.Offset + int64(at)
		inObj := off & (size - 1)
		n := int(min(size-inObj, int64(r.Length-at)))
		if err := f(uint32(off/size), inObj, at, n); err != nil {
			return err
		}
		at += n
	}
	return nil
}

// maxPieces bounds the sub-calls a request can need, so the state is
// grown once, before any is filled.
func (st *ioState) reserve(perPiece int) {
	r := st.req
	n := (r.Length/int(st.b.objSize) + 2) * perPiece
	st.grow(n)
}

func (st *ioState) planRead() error {
	t := st.topo
	copies := st.b.vdi.Copies
	st.reserve(1)
	return st.pieces(func(idx uint32, inObj int64, at, n int) error {
		oid := proto.NewObjectID(st.b.vdi.ID, idx)
		s := &st.subs[st.n]
		reps := t.ring.ReplicaIndexes(uint64(oid), copies, s.replicas[:0])
		if len(reps) == 0 {
			return fmt.Errorf("read object %v: the cluster has no nodes", oid)
		}
		s.nrep, s.attempt = len(reps), 0
		s.req = proto.Request{Op: proto.OpRead, Length: uint32(n), Object: oid, Offset: uint64(inObj)}
		s.data = st.req.Buf[at : at+n : at+n]
		if !s.pickReplica() {
			return fmt.Errorf("read object %v: all %d replicas are down", oid, len(reps))
		}
		st.n++
		return nil
	})
}

// pickReplica points a read at the first replica from s.attempt on that
// is up; false if none is.
func (s *subCall) pickReplica() bool {
	t := s.st.topo
	for ; s.attempt < s.nrep; s.attempt++ {
		if p := t.peers[s.replicas[s.attempt]]; p.up.Load() && p.conn.Load() != nil {
			s.peer = p
			return true
		}
	}
	return false
}

// planUpdate plans a write or discard: every piece to every replica. A
// replica that is down fails the request before anything is sent, so no
// replica gets a write the others miss.
func (st *ioState) planUpdate(op proto.Op) error {
	t := st.topo
	copies := st.b.vdi.Copies
	var flags proto.Flags
	if st.req.FUA {
		flags = proto.FlagFUA
	}
	st.reserve(copies)
	return st.pieces(func(idx uint32, inObj int64, at, n int) error {
		oid := proto.NewObjectID(st.b.vdi.ID, idx)
		var repBuf [32]int
		reps := t.ring.ReplicaIndexes(uint64(oid), copies, repBuf[:0])
		if len(reps) < copies {
			return fmt.Errorf("%v object %v: %d copies wanted, the cluster has %d nodes", op, oid, copies, len(reps))
		}
		for _, ri := range reps {
			p := t.peers[ri]
			if !p.up.Load() || p.conn.Load() == nil {
				return fmt.Errorf("%v object %v: replica node %s is down", op, oid, p.id)
			}
			s := &st.subs[st.n]
			s.peer = p
			s.req = proto.Request{Op: op, Flags: flags, Length: uint32(n), Object: oid, Offset: uint64(inObj)}
			s.data = nil
			if op == proto.OpWrite {
				s.data = st.req.Buf[at : at+n : at+n]
			}
			st.n++
		}
		return nil
	})
}

// planFlush flushes every node written since the last flush.
func (st *ioState) planFlush() error {
	t := st.topo
	st.grow(len(t.peers))
	for _, p := range t.peers {
		if !p.dirty.Swap(false) {
			continue
		}
		s := &st.subs[st.n]
		s.peer = p
		s.req = proto.Request{Op: proto.OpFlush}
		s.data = nil
		st.n++
		if !p.up.Load() || p.conn.Load() == nil {
			return fmt.Errorf("flush: node %s, written since the last flush, is down", p.id)
		}
	}
	return nil
}

// undoFlushPlan re-marks the nodes a failed flush plan had claimed, so the
// next flush tries them again.
func (st *ioState) undoFlushPlan() {
	if st.req.Op != backend.OpFlush {
		return
	}
	for i := range st.n {
		st.subs[i].peer.dirty.Store(true)
	}
}

// send (re)submits the sub-call to its peer.
func (s *subCall) send() {
	c := &s.call
	c.ReqHeader, _ = s.req.AppendBinary(s.hdr[:0])
	c.RespHeader = s.resp[:]
	if s.req.Op == proto.OpRead {
		c.ReqBody, c.RespBody = nil, s.data
	} else {
		c.ReqBody, c.RespBody = s.data, s.msg[:]
	}
	timeout := s.st.b.opts.CallTimeout
	if s.req.Op == proto.OpFlush {
		timeout = s.st.b.opts.FlushTimeout
	}
	c.Deadline = time.Now().Add(timeout)
	conn := s.peer.conn.Load()
	if conn == nil { // cannot happen: planning checked it
		c.Err = errors.New("no connection")
		s.done(c)
		return
	}
	conn.Go(c)
}

// result is the sub-call's outcome: transport error, malformed reply, or
// the node's status.
func (s *subCall) result() error {
	c := &s.call
	if c.Err != nil {
		return c.Err
	}
	resp, err := proto.DecodeResponse(c.RespHeader, c.RespBody, &s.req)
	if err != nil {
		return err
	}
	return resp.Err(c.RespBody)
}

// done is the rpc completion of a sub-call.
func (s *subCall) done(*rpc.Call) {
	st := s.st
	err := s.result()
	switch {
	case err == nil:
		if s.req.Op == proto.OpWrite || s.req.Op == proto.OpDiscard {
			// Set before the request completes, so a FLUSH the kernel
			// sends after seeing this write done covers it.
			s.peer.dirty.Store(true)
		}
	case s.req.Op == proto.OpRead:
		s.attempt++
		if s.pickReplica() {
			st.b.log.Debug().Err(err).Stringer("object", s.req.Object).Str("next", s.peer.id).Msg("read failed over")
			s.send()
			return
		}
		st.fail(fmt.Errorf("read object %v: every replica failed, the last (%s): %w", s.req.Object, s.lastPeer(), err))
	case s.req.Op == proto.OpFlush:
		s.peer.dirty.Store(true)
		st.fail(fmt.Errorf("flush node %s: %w", s.peer.id, err))
	default:
		st.fail(fmt.Errorf("%v object %v on node %s: %w", s.req.Op, s.req.Object, s.peer.id, err))
	}
	st.finishOne()
}

func (s *subCall) lastPeer() string {
	if s.peer == nil {
		return "none"
	}
	return s.peer.id
}
