package rpc

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

const readBufferSize = 64 << 10

// slotState tracks where a pending call is.
type slotState uint8

const (
	slotFree   slotState = iota
	slotQueued           // in the send queue, not yet taken by the writer
	slotSent             // taken by the writer: a reply may arrive
)

// slot is one entry of a connection's table of pending calls. A request ID
// is the slot index plus the slot's generation, which changes every time the
// slot is freed, so a reply to an expired call cannot match a new one.
type slot struct {
	call     *Call
	deadline time.Time
	sess     *session // the session whose reader/writer holds the call's buffers
	gen      uint32
	state    slotState
	busy     uint8 // the writer and/or reader are using the call's buffers
	finished bool  // call.Err is final; Done waits only for busy to drop to 0
}

func makeID(idx int, gen uint32) uint64 { return uint64(gen)<<32 | uint64(uint32(idx)) }

func splitID(id uint64) (idx int, gen uint32) { return int(uint32(id)), uint32(id >> 32) }

// clientConn is one connection slot of a Client: the current session (if
// any), the table of pending calls and the send queue. Everything is
// guarded by mu.
type clientConn struct {
	c *Client

	mu       sync.Mutex
	closed   bool
	sess     *session
	dialing  bool
	nextDial time.Time
	backoff  time.Duration
	lastErr  error
	slots    []slot
	free     []uint32
	sendq    []uint64 // IDs to send; stale IDs (expired calls) are skipped
}

// session is one TCP connection and its reader and writer goroutines.
type session struct {
	conn net.Conn
	raw  syscall.RawConn // conn's socket, for Flush's non-blocking writes; nil for TLS
	// reader parses the replies, on the session's reader goroutine or on
	// a Poller's thread (never both: see poller.go).
	reader   *replyReader
	pollRead rawReader     // the Poller's reads
	wake     chan struct{} // capacity 1: the send queue is not empty
	dead     chan struct{} // closed when the session is dropped

	// Writing, under clientConn.mu. writing: the writer goroutine or a
	// Flush is writing, and writes everything queued before it lets go.
	// handoff: a Flush could not write a whole batch without blocking and
	// left the rest in w for the writer goroutine (writing stays set).
	writing bool
	handoff bool
	w       writer
	// retire, under clientConn.mu: SetPoller found the session busy,
	// read by a goroutine through the netpoller; it ends once idle, and
	// the next call dials a connection the poller reads.
	retire bool

	// Stall detection (see ClientOptions.StallTimeout). Under
	// clientConn.mu: requests sent whose reply frame has not arrived
	// (including calls that expired meanwhile: their late reply is still
	// a sign of life), and when that count last rose from zero.
	outstanding int
	busySince   time.Time
	// lastRecv is when bytes last arrived (unix ns), stored by the reader
	// on every read without taking the lock.
	lastRecv atomic.Int64
}

// endSessionLocked retires s, the current session: its goroutines see
// dead and stop, its connection is closed, and the next call dials anew.
func (cc *clientConn) endSessionLocked(s *session) {
	cc.sess = nil
	close(s.dead)
	s.closeConn()
}

// retireIfIdleLocked ends the current session if SetPoller marked it
// (session.retire) and nothing uses it: no call holds a slot and nobody
// writes.
func (cc *clientConn) retireIfIdleLocked() {
	if s := cc.sess; s != nil && s.retire && !s.writing && len(cc.free) == len(cc.slots) {
		cc.endSessionLocked(s)
	}
}

// closeConn closes the session's connection. A plain socket is shut down
// first: that wakes a Poller's pending watch of it (whose file reference
// would otherwise keep the connection open) and a reader blocked on it.
func (s *session) closeConn() {
	if s.raw != nil {
		s.raw.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	}
	s.conn.Close()
}

// stalledLocked reports whether s has had requests awaiting replies and
// received nothing at all for the stall timeout.
func (s *session) stalledLocked(now time.Time, timeout time.Duration) bool {
	return s.outstanding > 0 && now.Sub(s.quietSinceLocked()) > timeout
}

// quietSinceLocked is since when s has received nothing while requests
// awaited replies.
func (s *session) quietSinceLocked() time.Time {
	quietSince := s.busySince
	if last := time.Unix(0, s.lastRecv.Load()); last.After(quietSince) {
		quietSince = last
	}
	return quietSince
}

// enqueue puts call into the slot table and the send queue, starting a dial
// if there is no connection.
func (cc *clientConn) enqueue(call *Call, deadline, now time.Time, wake bool) {
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		call.failNow(ErrClosed)
		return
	}
	if cc.sess == nil && !cc.dialing {
		if now.Before(cc.nextDial) {
			err := cc.lastErr
			cc.mu.Unlock()
			call.failNow(err)
			return
		}
		cc.dialing = true
		cc.c.wg.Add(1)
		go cc.dial()
	}
	var idx int
	if n := len(cc.free); n > 0 {
		idx = int(cc.free[n-1])
		cc.free = cc.free[:n-1]
	} else {
		idx = len(cc.slots)
		cc.slots = append(cc.slots, slot{})
	}
	sl := &cc.slots[idx]
	sl.call, sl.deadline, sl.state = call, deadline, slotQueued
	cc.c.noteDeadline(deadline)
	id := makeID(idx, sl.gen)
	call.cc, call.id = cc, id
	cc.sendq = append(cc.sendq, id)
	s := cc.sess
	cc.mu.Unlock()
	if s != nil && wake {
		s.signal()
	}
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// finishLocked sets the call's final error, unless it has one already, and
// returns the call if Done may run now (nobody is using its buffers).
func (cc *clientConn) finishLocked(idx int, err error) *Call {
	sl := &cc.slots[idx]
	if sl.finished {
		return nil
	}
	sl.finished = true
	sl.call.Err = err
	if sl.busy > 0 {
		return nil
	}
	return cc.freeLocked(idx)
}

// releaseLocked drops one use of the call's buffers and returns the call if
// it was finished meanwhile and Done may now run.
func (cc *clientConn) releaseLocked(idx int) *Call {
	sl := &cc.slots[idx]
	sl.busy--
	if sl.busy > 0 || !sl.finished {
		return nil
	}
	return cc.freeLocked(idx)
}

func (cc *clientConn) freeLocked(idx int) *Call {
	sl := &cc.slots[idx]
	call := sl.call
	*sl = slot{gen: sl.gen + 1}
	cc.free = append(cc.free, uint32(idx))
	cc.retireIfIdleLocked()
	return call
}

// finishCall completes call with err if it is still pending on cc.
func (cc *clientConn) finishCall(call *Call, err error) *Call {
	idx, gen := splitID(call.id)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if idx >= len(cc.slots) || cc.slots[idx].gen != gen || cc.slots[idx].call != call {
		return nil
	}
	return cc.finishLocked(idx, err)
}

// failAllLocked finishes every pending call with err and empties the send
// queue; it appends the calls whose Done may run now to fired.
func (cc *clientConn) failAllLocked(err error, fired []*Call) []*Call {
	for idx := range cc.slots {
		if cc.slots[idx].call == nil {
			continue
		}
		if call := cc.finishLocked(idx, err); call != nil {
			fired = append(fired, call)
		}
	}
	cc.sendq = cc.sendq[:0]
	return fired
}

// expire fails the calls past their deadline and drops the session if it
// has received nothing for the stall timeout while requests awaited
// replies. A call that merely outlived its deadline fails alone: the
// others on the connection keep going as long as the peer answers
// anything.
//
// It also returns when it must run next (zero: nothing pending): the
// earliest deadline of a call still pending, or when the session would
// count as stalled, or now if Queued calls wait for a Flush that has not
// come.
func (cc *clientConn) expire(now time.Time, fired []*Call) ([]*Call, time.Time) {
	var stuck *session
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	cc.mu.Lock()
	for idx := range cc.slots {
		sl := &cc.slots[idx]
		if sl.call == nil || sl.finished {
			continue
		}
		if !now.After(sl.deadline) {
			earliest(sl.deadline)
		} else if call := cc.finishLocked(idx, ErrTimeout); call != nil {
			fired = append(fired, call)
		}
	}
	s := cc.sess
	if s != nil && s.stalledLocked(now, cc.c.opts.StallTimeout) {
		stuck = s
	} else if s != nil && s.outstanding > 0 {
		earliest(s.quietSinceLocked().Add(cc.c.opts.StallTimeout))
	}
	// Calls Queued and never Flushed: the writer goroutine sends them.
	forgotten := s != nil && len(cc.sendq) > 0 && !s.writing
	if forgotten {
		earliest(now)
	}
	cc.mu.Unlock()
	if forgotten {
		s.signal()
	}
	if stuck != nil {
		cc.drop(stuck, connError(cc.c.addr, "i/o",
			fmt.Errorf("nothing received for %v while requests awaited replies", cc.c.opts.StallTimeout)))
	}
	return fired, next
}

// close is Client.Close for one connection.
func (cc *clientConn) close(fired []*Call) []*Call {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.closed = true
	if s := cc.sess; s != nil {
		cc.endSessionLocked(s)
	}
	return cc.failAllLocked(ErrClosed, fired)
}

// drop ends session s (if it is still current), failing all pending calls
// with err. The next call dials again.
func (cc *clientConn) drop(s *session, err error) {
	cc.mu.Lock()
	if cc.sess != s {
		cc.mu.Unlock()
		return
	}
	cc.endSessionLocked(s)
	fired := cc.failAllLocked(err, nil)
	cc.mu.Unlock()
	lvl := zerolog.InfoLevel // the peer went away with nothing pending
	if len(fired) > 0 {
		lvl = zerolog.WarnLevel
	}
	cc.c.log.WithLevel(lvl).Err(err).Int("failed_calls", len(fired)).Msg("rpc: connection lost")
	fireAll(fired)
}

func (cc *clientConn) dial() {
	defer cc.c.wg.Done()
	d := net.Dialer{Timeout: cc.c.opts.DialTimeout}
	conn, err := d.DialContext(cc.c.dialCtx, "tcp", cc.c.addr)
	what := "dial"
	if err == nil && secured(cc.c.opts.Secret, cc.c.opts.TLSConfig) {
		var sconn net.Conn
		if sconn, err = cc.c.dialHandshake(cc.c.dialCtx, conn); err != nil {
			conn.Close()
			conn, what = nil, "handshake"
		} else {
			conn = sconn
		}
	}
	cc.mu.Lock()
	cc.dialing = false
	if cc.closed {
		cc.mu.Unlock()
		if conn != nil {
			conn.Close()
		}
		return
	}
	if _, isTCP := conn.(*net.TCPConn); isTCP && cc.c.poller.Load() != nil {
		// A poller will read it: out of the netpoller (see socket).
		if sock, derr := detach(conn); derr == nil {
			conn = sock
		} else {
			cc.c.log.Debug().Err(derr).Msg("rpc: socket stays in the netpoller")
		}
	}
	if err != nil {
		o := cc.c.opts.Backoff
		cc.backoff = min(max(2*cc.backoff, o.Min), o.Max)
		cc.nextDial = time.Now().Add(cc.backoff)
		cc.lastErr = connError(cc.c.addr, what, err)
		fired := cc.failAllLocked(cc.lastErr, nil)
		backoff := cc.backoff
		cc.mu.Unlock()
		cc.c.log.Warn().Err(err).Dur("retry_in", backoff).Msg("rpc: " + what + " failed")
		fireAll(fired)
		return
	}
	s := &session{conn: conn, raw: rawConn(conn), wake: make(chan struct{}, 1), dead: make(chan struct{})}
	s.reader = newReplyReader(cc, s, readBufferSize)
	cc.sess = s
	cc.backoff = 0
	cc.c.wg.Add(2) // the writer, and the reader: a goroutine or a Poller
	go cc.writeLoop(s)
	if !cc.watch(s) {
		go cc.readLoop(s)
	}
	if len(cc.sendq) > 0 {
		s.signal()
	}
	cc.mu.Unlock()
	cc.c.log.Debug().Msg("rpc: connected")
}

// writer is the state of whoever writes a session's requests (its writer
// goroutine, or a caller of Flush), kept across batches so that sending
// allocates nothing. Only the holder of session.writing touches it.
type writer struct {
	queue []uint64 // the send queue taken from the clientConn
	batch []int    // slot indices being written
	hdrs  []byte   // frame headers of the batch
	iov   [][]byte
	bufs  net.Buffers // what is left to write of iov
	vw    vecWriter
	fired []*Call
}

// writeLoop sends queued calls: it takes the whole send queue, writes it with
// one writev and repeats until the queue is empty, so concurrent callers
// share syscalls. While a Flush writes, the loop leaves the queue to it;
// a Flush whose write would block hands the rest over (session.handoff).
func (cc *clientConn) writeLoop(s *session) {
	defer cc.c.wg.Done()
	for {
		select {
		case <-s.wake:
		case <-s.dead:
			cc.abandonHandoff(s)
			return
		}
		cc.mu.Lock()
		switch {
		case cc.sess != s:
			cc.mu.Unlock()
			cc.abandonHandoff(s)
			return
		case s.handoff:
			s.handoff = false
			cc.mu.Unlock()
			if err := cc.finishBatch(s, true); err != nil {
				return
			}
			cc.mu.Lock()
		case s.writing:
			cc.mu.Unlock() // a Flush is writing: it takes the queue
			continue
		default:
			s.writing = true
		}
		if cc.drainLocked(s, true) != nil {
			return
		}
	}
}

// abandonHandoff releases a batch a Flush handed over if the session died
// before the writer goroutine wrote it: the drop failed its calls, whose
// Done waits only for this release.
func (cc *clientConn) abandonHandoff(s *session) {
	cc.mu.Lock()
	handoff := s.handoff
	s.handoff = false
	cc.mu.Unlock()
	if handoff {
		cc.releaseBatch(s)
	}
}

// drainLocked writes batches until the send queue is empty, then gives up
// s.writing. It is called with cc.mu held and s.writing set by the caller,
// and returns with cc.mu released. Blocking writes (the writer goroutine)
// write everything; a non-blocking one (Flush) that cannot hands the rest
// to the writer goroutine, which then holds s.writing.
func (cc *clientConn) drainLocked(s *session, blocking bool) error {
	for {
		if cc.sess != s {
			cc.mu.Unlock()
			return net.ErrClosed
		}
		if len(cc.sendq) == 0 {
			s.writing = false
			cc.retireIfIdleLocked()
			cc.mu.Unlock()
			return nil
		}
		if !cc.takeBatchLocked(s) {
			continue // only calls that expired while queued
		}
		cc.mu.Unlock()
		if !blocking {
			err := s.w.vw.write(s.raw, &s.w.bufs, false)
			if err == nil && len(s.w.bufs) > 0 {
				cc.mu.Lock()
				s.handoff = true
				cc.mu.Unlock()
				s.signal()
				return nil
			}
			if err != nil {
				cc.releaseBatch(s)
				cc.drop(s, connError(cc.c.addr, "write", err))
				return err
			}
		}
		if err := cc.finishBatch(s, blocking); err != nil {
			return err
		}
		cc.mu.Lock()
	}
}

// flush writes the send queue now, on the calling goroutine, as far as the
// socket takes it without blocking; the writer goroutine writes the rest.
// Without a raw socket (TLS) the writer goroutine writes it all.
func (cc *clientConn) flush() {
	cc.mu.Lock()
	s := cc.sess
	if s == nil || s.writing || len(cc.sendq) == 0 {
		cc.mu.Unlock() // nothing to send, or whoever writes sends it
		return
	}
	if s.raw == nil {
		cc.mu.Unlock()
		s.signal()
		return
	}
	s.writing = true
	cc.drainLocked(s, false)
}

// takeBatchLocked moves the send queue into the session's writer: frame
// headers and the iovec of every call still queued. It reports whether
// there is anything to write.
func (cc *clientConn) takeBatchLocked(s *session) bool {
	w := &s.w
	w.queue, cc.sendq = cc.sendq, w.queue[:0]
	if need := frameHeaderSize * len(w.queue); cap(w.hdrs) < need {
		w.hdrs = make([]byte, need)
	}
	w.batch, w.iov = w.batch[:0], w.iov[:0]
	for _, id := range w.queue {
		idx, gen := splitID(id)
		if idx >= len(cc.slots) {
			continue
		}
		sl := &cc.slots[idx]
		if sl.gen != gen || sl.state != slotQueued || sl.finished {
			continue // expired or failed while queued
		}
		sl.state, sl.sess = slotSent, s
		sl.busy++
		call := sl.call
		hdr := w.hdrs[frameHeaderSize*len(w.batch):][:frameHeaderSize]
		fh := frameHeader{flags: flagRequest, id: id, headerLen: uint32(len(call.ReqHeader)), bodyLen: uint32(len(call.ReqBody))}
		fh.encode(hdr)
		w.iov = append(w.iov, hdr, call.ReqHeader)
		if len(call.ReqBody) > 0 {
			w.iov = append(w.iov, call.ReqBody)
		}
		w.batch = append(w.batch, idx)
	}
	if len(w.batch) == 0 {
		return false
	}
	if s.outstanding == 0 {
		s.busySince = time.Now()
	}
	s.outstanding += len(w.batch)
	w.bufs = w.iov
	return true
}

// finishBatch writes what is left of the batch (blocking; nothing is left
// after a complete non-blocking write) and releases its calls. A write
// error drops the session.
func (cc *clientConn) finishBatch(s *session, blocking bool) error {
	var err error
	switch {
	case blocking && s.raw != nil:
		err = s.w.vw.write(s.raw, &s.w.bufs, true)
	case blocking:
		_, err = s.w.bufs.WriteTo(s.conn) // TLS
	}
	cc.releaseBatch(s)
	if err != nil {
		cc.drop(s, connError(cc.c.addr, "write", err))
	}
	return err
}

// releaseBatch drops the batch's hold on its calls' buffers, running the
// Done of calls that finished meanwhile.
func (cc *clientConn) releaseBatch(s *session) {
	w := &s.w
	clear(w.iov) // drop references to callers' buffers
	w.bufs = nil
	cc.mu.Lock()
	for _, idx := range w.batch {
		if call := cc.releaseLocked(idx); call != nil {
			w.fired = append(w.fired, call)
		}
	}
	cc.mu.Unlock()
	fireAll(w.fired)
	clear(w.fired)
	w.fired = w.fired[:0]
}

// readLoop reads replies on the session's own goroutine until the session
// fails.
func (cc *clientConn) readLoop(s *session) {
	defer cc.c.wg.Done()
	r := s.reader
	for {
		p := r.next()
		n, err := s.conn.Read(p)
		if n > 0 {
			s.lastRecv.Store(time.Now().UnixNano())
			if perr := r.got(n); perr != nil {
				err = perr
			}
		}
		if err != nil {
			cc.readFailed(s, err)
			return
		}
	}
}

// readFailed ends session s after its stream broke: err is the read error
// or the reply that could not be parsed.
func (cc *clientConn) readFailed(s *session, err error) {
	s.reader.abort()
	select {
	case <-s.dead: // dropped on purpose; the error is the consequence
	default:
		if errors.Is(err, ErrMalformedFrame) {
			cc.c.log.Error().Err(err).Msg("rpc: closing connection after malformed reply")
		}
		cc.drop(s, connError(cc.c.addr, "read", err))
	}
}
