package sheep

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// Retry pacing. A write keeps resending to a target that does not answer
// (a write is idempotent: same bytes, same offset) until the request's
// io-timeout; meanwhile the membership controller removes a dead node and
// the new epoch re-plans the piece.
const (
	retryMin = 50 * time.Millisecond
	retryMax = time.Second
	// epochPoll is how often a piece waiting for the epoch a node already
	// moved to checks the watched one.
	epochPoll = 20 * time.Millisecond
	// catchUpMin/Max: a node behind the client's epoch is retried after a
	// random pause in this range (it is applying the change).
	catchUpMin, catchUpMax = 50 * time.Millisecond, 200 * time.Millisecond
)

// errNotConnected stands for a call that could not be sent: the node has
// no verified connection (never reached yet, or a new address is being
// verified).
var errNotConnected = errors.New("no verified connection")

// piece is the part of a request that falls in one object (for a flush:
// one node) and the state of its rounds. A round sends the piece to every
// target that has not acknowledged it in the piece's epoch (a read: to
// one replica after another until one answers); when a round ends without
// success, a timer starts the next one, on a new plan if the epoch moved.
// Nothing ever waits on the submitter's thread.
type piece struct {
	st    *ioState
	subs  []subCall   // preallocated, one per possible target
	timer *time.Timer // the retry timer, made on first use and reused
	reps  [32]int     // reads: the replicas (ring indexes) in ring order
	topo  *topology   // the epoch the piece is planned on

	op        proto.Op
	flags     proto.Flags
	oid       proto.ObjectID
	off       uint64 // in the object
	length    uint32
	data      []byte
	flushPeer *peer  // flushes: the node
	writeID   uint64 // updates: the same in every round and to every target
	rounds    int    // updates: rounds sent so far (the attempt number)

	ntarget       int // updates: targets in the plan (subs in use)
	nrep, attempt int // reads: replicas, and the next to try (two passes)

	mu          sync.Mutex
	outstanding int    // calls of this round not yet done
	acked       uint32 // targets (bits by sub) that acknowledged in topo's epoch
	wantEpoch   uint64 // a node answered it is already at this newer epoch
	catchUp     bool   // a node answered it is behind the piece's epoch
	backoff     time.Duration
	lastErr     error
	fatal       error // retrying cannot help: the piece fails at the round's end
}

// subCall is one rpc call of a piece: to one target.
type subCall struct {
	piece *piece
	bit   uint32
	peer  *peer
	call  rpc.Call
	req   proto.Request
	hdr   [proto.RequestSize]byte
	resp  [proto.ResponseSize]byte
	msg   [proto.MaxErrorMessage]byte // error reply text of a write/flush
}

func (p *piece) reset() {
	p.data, p.flushPeer, p.topo, p.lastErr, p.fatal = nil, nil, nil, nil, nil
}

// plan places the piece on the epoch of t. For an update, fewer targets
// than the cluster's min-copies fails it at once.
func (p *piece) plan(t *topology) error {
	b := p.st.b
	p.topo = t
	p.acked = 0
	switch p.op {
	case proto.OpFlush:
		p.ntarget = 1
		p.subs[0].peer = p.flushPeer
		return nil
	case proto.OpRead:
		p.nrep = len(t.ring.ReplicaIndexes(uint64(p.oid), b.vdi.Copies, p.reps[:0]))
		p.attempt = 0
		return nil
	}
	reps := t.ring.ReplicaIndexes(uint64(p.oid), b.vdi.Copies, p.reps[:0])
	if len(reps) < b.minCopies {
		err := fmt.Errorf("object %v: only %d of %d replicas in epoch %d, below min-copies %d", p.oid, len(reps), b.vdi.Copies, t.epoch, b.minCopies)
		b.minLog.Error().Msg(err.Error())
		return fmt.Errorf("%v %w", p.op, err)
	}
	p.ntarget = len(reps)
	for i, ri := range reps {
		p.subs[i].peer = t.peers[ri]
	}
	return nil
}

// start runs the first round of a planned piece. Plugged: its calls are
// only queued, and the submitter's Unplug sends them (see Backend.Unplug).
func (p *piece) start(plugged bool) {
	p.backoff, p.lastErr, p.fatal = 0, nil, nil
	p.round(plugged)
}

// round sends the piece: an update to every target not yet acknowledged
// in this epoch, a read to its first replica.
func (p *piece) round(plugged bool) {
	p.mu.Lock()
	p.wantEpoch, p.catchUp = 0, false
	var todo uint32
	if p.op != proto.OpRead {
		todo = (1<<p.ntarget - 1) &^ p.acked
		p.outstanding = bits.OnesCount32(todo)
		p.rounds++
	}
	p.mu.Unlock()
	if p.op == proto.OpRead {
		p.sendRead(plugged)
		return
	}
	for i := range p.ntarget {
		if todo&(1<<i) != 0 {
			p.subs[i].send(plugged)
		}
	}
}

// sendRead sends the read to the next replica that can take it: first
// those registered (up) with a verified connection, then, in a second
// pass, those merely connected. None left ends the round.
func (p *piece) sendRead(plugged bool) {
	t := p.topo
	for ; p.attempt < 2*p.nrep; p.attempt++ {
		pe := t.peers[p.reps[p.attempt%p.nrep]]
		firstPass := p.attempt < p.nrep
		if pe.conn.Load() == nil || pe.up.Load() != firstPass {
			continue
		}
		s := &p.subs[0]
		s.peer = pe
		s.send(plugged)
		return
	}
	if p.lastErr == nil {
		p.lastErr = fmt.Errorf("none of its %d replicas in epoch %d is reachable", p.nrep, t.epoch)
	}
	p.roundEnd()
}

// send (re)sends the sub-call to its peer with the piece's epoch; plugged,
// it only queues it.
func (s *subCall) send(plugged bool) {
	p := s.piece
	b := p.st.b
	timeout := b.opts.CallTimeout
	if p.op == proto.OpFlush {
		s.req = proto.Request{Op: proto.OpFlush} // not a data op: no epoch
		timeout = b.opts.FlushTimeout
	} else {
		s.req = proto.Request{Op: p.op, Flags: p.flags, Length: p.length, Object: p.oid, Offset: p.off, Epoch: p.topo.epoch}
		if p.writeID != 0 {
			s.req.Aux = proto.WriteAux(p.writeID, p.rounds)
		}
	}
	c := &s.call
	c.ReqHeader, _ = s.req.AppendBinary(s.hdr[:0])
	c.RespHeader = s.resp[:]
	if p.op == proto.OpRead {
		c.ReqBody, c.RespBody = nil, p.data
	} else {
		c.ReqBody, c.RespBody = p.data, s.msg[:]
	}
	c.Deadline = time.Now().Add(timeout)
	if c.Deadline.After(p.st.deadline) {
		c.Deadline = p.st.deadline
	}
	conn := s.peer.conn.Load()
	if conn == nil {
		c.Err = errNotConnected
		s.done(c)
		return
	}
	if plugged {
		conn.Queue(c)
		return
	}
	conn.Go(c)
}

// result is the sub-call's outcome (transport error, malformed reply, or
// the node's status) and the epoch the node answered with.
func (s *subCall) result() (nodeEpoch uint64, err error) {
	c := &s.call
	if c.Err != nil {
		return 0, c.Err
	}
	resp, err := proto.DecodeResponse(c.RespHeader, c.RespBody, &s.req)
	if err != nil {
		return 0, err
	}
	return resp.Epoch, resp.Err(c.RespBody)
}

// done is the rpc completion of a sub-call.
func (s *subCall) done(*rpc.Call) {
	p := s.piece
	nodeEpoch, err := s.result()
	if p.op == proto.OpRead {
		if err == nil {
			p.finish(nil)
			return
		}
		p.mu.Lock()
		p.noteLocked(s, nodeEpoch, err)
		p.mu.Unlock()
		p.attempt++
		p.sendRead(false)
		return
	}
	p.mu.Lock()
	if err == nil {
		p.acked |= s.bit
		if p.op != proto.OpFlush {
			// Set before the request completes, so a FLUSH the kernel
			// sends after seeing this write done covers it.
			s.peer.dirty.Store(true)
		}
	} else {
		p.noteLocked(s, nodeEpoch, err)
	}
	p.outstanding--
	last := p.outstanding == 0
	p.mu.Unlock()
	if last {
		p.roundEnd()
	}
}

// noteLocked records a failed call: what the next round must do about it.
func (p *piece) noteLocked(s *subCall, nodeEpoch uint64, err error) {
	p.lastErr = fmt.Errorf("node %s: %w", s.peer.id, err)
	var status proto.Status
	if !errors.As(err, &status) {
		if errors.Is(err, rpc.ErrTooLarge) {
			p.fatal = p.lastErr
		}
		return // transport: unreachable, timed out, connection lost
	}
	switch status {
	case proto.StatusWrongEpoch:
		if p.op == proto.OpFlush {
			return
		}
		if nodeEpoch > p.topo.epoch {
			p.wantEpoch = max(p.wantEpoch, nodeEpoch)
		} else {
			p.catchUp = true
		}
	case proto.StatusInvalidArgument, proto.StatusUnsupportedVersion, proto.StatusUnknownOp, proto.StatusOutOfRange:
		p.fatal = p.lastErr // the request itself is wrong: no node will take it
	case proto.StatusIOError, proto.StatusNoSpace, proto.StatusNotFound:
		if p.op != proto.OpRead { // a read tries the other replicas
			p.fatal = p.lastErr
		}
	}
	// Anything else (not ready, shutting down, internal, statuses newer
	// than this client) is worth another round.
}

// roundEnd runs when every call of a round is done without completing
// the piece: finish it, or start the next round after a pause.
func (p *piece) roundEnd() {
	p.mu.Lock()
	fatal := p.fatal
	done := p.op != proto.OpRead && p.acked == 1<<p.ntarget-1
	p.mu.Unlock()
	switch {
	case fatal != nil:
		p.finish(fatal)
	case done:
		p.finish(nil)
	default:
		p.schedule()
	}
}

// schedule starts the retry timer, or fails the piece at its deadline.
// The timer is set under mu, so the round it starts (which takes mu)
// sees everything this one recorded.
func (p *piece) schedule() {
	left := time.Until(p.st.deadline)
	if left <= 0 {
		p.finish(p.timeoutErr())
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Duration
	switch {
	case p.wantEpoch > p.st.b.topo.Load().epoch:
		d = epochPoll
	case p.catchUp:
		d = catchUpMin + rand.N(catchUpMax-catchUpMin)
	default:
		p.backoff = min(max(2*p.backoff, retryMin), retryMax)
		d = p.backoff
	}
	d = min(d, left)
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.retry)
	} else {
		p.timer.Reset(d)
	}
}

// retry is the retry timer: the next round, on the current epoch.
func (p *piece) retry() {
	p.mu.Lock() // pairs with schedule's
	p.mu.Unlock()
	b := p.st.b
	if err := b.refuse(); err != nil {
		p.finish(err)
		return
	}
	if !time.Now().Before(p.st.deadline) {
		p.finish(p.timeoutErr())
		return
	}
	t := b.topo.Load()
	p.mu.Lock()
	want := p.wantEpoch
	p.mu.Unlock()
	if want > t.epoch {
		p.schedule() // a node is ahead of our watch: wait for it
		return
	}
	switch {
	case p.op == proto.OpFlush && t.epoch != p.topo.epoch && !t.has(p.flushPeer):
		// The node left the membership: its copies are superseded, there
		// is nothing left to make durable there.
		p.finish(nil)
		return
	case p.op == proto.OpRead || t.epoch != p.topo.epoch:
		if t.epoch != p.topo.epoch {
			b.log.Debug().Stringer("object", p.oid).Uint64("from", p.topo.epoch).Uint64("to", t.epoch).Msg("re-planned on a new epoch")
		}
		if err := p.plan(t); err != nil {
			p.finish(err)
			return
		}
	}
	p.round(false)
}

// timeoutErr is the piece's error once its io-timeout passed. The last
// error is named, not wrapped: the request fails with EIO, not with an
// errno a transport error carries (ECONNREFUSED means nothing to a file
// system).
func (p *piece) timeoutErr() error {
	p.mu.Lock()
	last, acked := p.lastErr, bits.OnesCount32(p.acked)
	p.mu.Unlock()
	if last == nil {
		last = errors.New("none")
	}
	b := p.st.b
	switch p.op {
	case proto.OpRead:
		return fmt.Errorf("read object %v: no replica answered within the %v io-timeout (epoch %d); last error: %v", p.oid, b.opts.IOTimeout, p.topo.epoch, last)
	case proto.OpFlush:
		return fmt.Errorf("flush node %s: not done within the io-timeout; last error: %v", p.flushPeer.id, last)
	}
	return fmt.Errorf("%v object %v: acknowledged by %d of %d replicas of epoch %d within the %v io-timeout; last error: %v",
		p.op, p.oid, acked, p.ntarget, p.topo.epoch, b.opts.IOTimeout, last)
}

// finish retires the piece.
func (p *piece) finish(err error) {
	if err != nil {
		if p.op == proto.OpFlush {
			p.flushPeer.dirty.Store(true) // the next flush tries it again
		}
		p.st.fail(err)
	}
	p.st.finishOne()
}

// nextWriteID is the id of a new update: 1..proto.MaxWriteID.
func (b *Backend) nextWriteID() uint64 {
	for {
		if id := b.lastWriteID.Add(1) & proto.MaxWriteID; id != 0 {
			return id
		}
	}
}
