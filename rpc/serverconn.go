package rpc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
)

// serverCall is one request being served, pooled with its buffer list.
type serverCall struct {
	id       uint64
	req      Request
	resp     Response
	reqHdr   *buffer
	reqBody  *buffer
	respBufs []*buffer
	isError  bool
}

var serverCallPool = sync.Pool{New: func() any { return new(serverCall) }}

func getServerCall() *serverCall {
	call := serverCallPool.Get().(*serverCall)
	call.resp.call = call
	return call
}

// release returns the call's buffers and the call itself to their pools.
func (call *serverCall) release() {
	if call.reqHdr != nil {
		putBuffer(call.reqHdr)
	}
	if call.reqBody != nil {
		putBuffer(call.reqBody)
	}
	for i, b := range call.respBufs {
		putBuffer(b)
		call.respBufs[i] = nil
	}
	*call = serverCall{respBufs: call.respBufs[:0]}
	serverCallPool.Put(call)
}

// serverConn serves one connection: a reader (its goroutine, or the
// process's readPoller for a detached socket) and up to
// MaxInFlightPerConn workers. There is no writer goroutine: a worker that
// finishes a call writes the replies queued so far itself, unless another
// worker is writing, which then takes its reply too (see handle). So a
// reply costs no hand-off to another goroutine, and under load one writev
// still carries many replies.
type serverConn struct {
	s      *Server
	conn   net.Conn
	rc     syscall.RawConn // conn's socket; nil for TLS
	remote net.Addr
	reader *requestReader
	src    io.Reader  // the reader goroutine's: rr for a plain socket, else conn
	rr     *rawReader // reads a plain socket

	handshake bool // TLS and/or authentication run before the first frame

	// A detached connection (ServerOptions.DetachReaders) is read by the
	// readPoller: sock is its socket (nil: not detached), readEnded where
	// the poller says why the reading ended.
	sock      *socket
	readEnded chan error
	paused    atomic.Bool // no slot was free: out of the poll until a freed one resumes it
	pollEnded bool        // the poller's own: it handed the connection back

	inFlight chan struct{} // semaphore: requests read and not yet replied to
	work     chan *serverCall
	workers  atomic.Int32 // started so far; only the reader changes it
	workerWG sync.WaitGroup

	mu      sync.Mutex
	replies []*serverCall
	writing bool        // a worker is writing replies: it writes all queued
	w       replyWriter // the writing worker's state
	broken  bool        // a write failed: replies are dropped; writer-owned
}

func newServerConn(s *Server, conn net.Conn) *serverConn {
	sc := &serverConn{
		s:        s,
		conn:     conn,
		remote:   conn.RemoteAddr(),
		inFlight: make(chan struct{}, s.opts.MaxInFlightPerConn),
		work:     make(chan *serverCall),
	}
	// A plain socket is read and written with raw system calls (see
	// rawRead); TLS goes through its net.Conn.
	sc.src = conn
	if sc.rc = rawConn(conn); sc.rc != nil {
		sc.rr = &rawReader{rc: sc.rc}
		sc.src = sc.rr
	}
	sc.reader = newRequestReader(sc, readBufferSize)
	return sc
}

func (sc *serverConn) serve() {
	defer sc.s.removeConn(sc)
	if sc.handshake {
		err := sc.acceptHandshake()
		<-sc.s.handshakes
		if err != nil {
			sc.logRefusal(err)
			sc.conn.Close()
			return
		}
	}
	var err error
	if sc.s.opts.DetachReaders && sc.detachReader() {
		err = <-sc.readEnded
	} else {
		err = sc.readLoop()
	}
	if err != nil {
		sc.logReadError(err)
	}
	// Whatever ended the reading (a bad frame, the client's EOF, Shutdown),
	// requests already read are still answered before the connection
	// closes: every worker has queued its reply, and a writing worker
	// returns only once the queue is empty. Close cuts this short by
	// closing the connection, which fails the writes.
	close(sc.work)
	sc.workerWG.Wait()
	sc.conn.Close()
}

// detachAlways makes the tests detach readers on one CPU too.
var detachAlways atomic.Bool

// detachReader takes a plain TCP connection out of the netpoller and hands
// its reading to the readPoller, and reports whether it did. Not on one
// CPU: the poller waiting in poll(2) keeps a P, and one P must stay for
// the rest of the process (its workers, timers, other connections). It
// runs before the first request is read: nothing is staged yet, and no
// worker writes.
func (sc *serverConn) detachReader() bool {
	if sc.rr == nil || (runtime.GOMAXPROCS(0) < 2 && !detachAlways.Load()) {
		return false
	}
	s := sc.s
	if err := serverPoller.init(); err != nil {
		s.log.Debug().Err(err).Stringer("remote", sc.remote).Msg("rpc: connection stays in the netpoller")
		return false
	}
	// Under the server's lock: Shutdown and Close reach the connection
	// through sc.conn, and see it detached.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		return false
	}
	so, err := detach(sc.conn)
	if err != nil {
		s.log.Debug().Err(err).Stringer("remote", sc.remote).Msg("rpc: connection stays in the netpoller")
		return false
	}
	sc.conn, sc.sock, sc.rc = so, so, socketRaw{so}
	sc.rr.rc = sc.rc
	sc.readEnded = make(chan error, 1)
	serverPoller.watch(sc)
	return true
}

// detached reports whether the readPoller reads the connection.
func (sc *serverConn) detached() bool { return sc.sock != nil }

// closeConn closes the connection, and wakes the poller that may be
// waiting on its socket.
func (sc *serverConn) closeConn() {
	sc.conn.Close()
	if sc.detached() {
		serverPoller.wake()
	}
}

func (sc *serverConn) logReadError(err error) {
	log := sc.s.log
	switch {
	case errors.Is(err, ErrMalformedFrame), errors.Is(err, io.ErrUnexpectedEOF):
		log.Warn().Err(err).Stringer("remote", sc.remote).Msg("rpc: closing connection after malformed frame")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		log.Debug().Stringer("remote", sc.remote).Msg("rpc: connection closed")
	default:
		log.Info().Err(err).Stringer("remote", sc.remote).Msg("rpc: connection read failed")
	}
}

// readLoop reads requests on the connection's goroutine and serves them.
// It returns nil when the server is stopping (graceful), or the error that
// ended the connection.
func (sc *serverConn) readLoop() error {
	r := sc.reader
	for {
		p := r.next()
		n, err := sc.src.Read(p)
		if n > 0 {
			if perr := r.got(n); perr != nil {
				err = perr
			}
		}
		sc.flushHeld() // the next read may wait for the client
		if err != nil {
			return r.end(err)
		}
	}
}

// takeSlot takes one of the connection's in-flight slots for the request
// about to be read. When every slot is taken, the reader goroutine waits
// for one (or the server's stop: errStopped); the poller's thread cannot
// wait, and gets errNoSlot: the connection's next freed slot resumes it.
func (sc *serverConn) takeSlot() error {
	select {
	case sc.inFlight <- struct{}{}:
		return nil
	default:
	}
	// Replies the reader held back must go out first, or it would wait for
	// slots only it can free.
	sc.flushHeld()
	if sc.detached() {
		sc.paused.Store(true)
		select {
		case sc.inFlight <- struct{}{}:
			// Freed meanwhile. If the releaser saw paused, its resume
			// only makes the poller read the socket once more.
			sc.paused.Store(false)
			return nil
		default:
			return errNoSlot
		}
	}
	select {
	case sc.inFlight <- struct{}{}:
		return nil
	case <-sc.s.stopCh:
		return errStopped
	}
}

// releaseSlot frees an in-flight slot, resuming a poller-read connection
// that waits for one.
func (sc *serverConn) releaseSlot() {
	<-sc.inFlight
	if sc.paused.Load() && sc.paused.CompareAndSwap(true, false) {
		serverPoller.resume(sc)
	}
}

// maxHeldReplies bounds the replies the reader holds back while it serves
// a batch inline: the client gets the first ones while the rest are served.
const maxHeldReplies = 16

// serveRequest serves a request read whole: on the reader if it can be
// without waiting (its reply held back while the next request is staged
// whole: one writev answers the batch), else on a worker.
func (sc *serverConn) serveRequest(call *serverCall, more bool) {
	if sc.s.inline != nil && sc.handle(call, true, more) {
		return
	}
	sc.dispatch(call)
}

// flushHeld writes the replies the reader held back, unless a worker is
// writing, which takes them with its own.
func (sc *serverConn) flushHeld() {
	sc.mu.Lock()
	if !sc.writing {
		sc.writeRepliesLocked(!sc.detached())
	}
	sc.mu.Unlock()
}

// writeRepliesLocked makes the caller the writer until no reply is queued.
// It is called with sc.mu held and sc.writing unset. A caller that must
// not wait (the poller's thread: mayWait false) hands the writing to a
// goroutine when the socket is full.
func (sc *serverConn) writeRepliesLocked(mayWait bool) {
	sc.writing = true
	for {
		switch sc.writeBatchLocked(mayWait) {
		case batchNone:
			sc.writing = false
			return
		case batchHandedOff:
			return // the goroutine is the writer now
		}
	}
}

// dispatch hands call to an idle worker, starting one if none is idle and
// fewer than MaxInFlightPerConn run.
func (sc *serverConn) dispatch(call *serverCall) {
	select {
	case sc.work <- call:
		return
	default:
	}
	if int(sc.workers.Load()) < cap(sc.inFlight) {
		sc.workers.Add(1)
		sc.workerWG.Add(1)
		go sc.worker()
	}
	sc.work <- call
}

func (sc *serverConn) worker() {
	defer sc.workerWG.Done()
	for call := range sc.work {
		sc.handle(call, false, false)
	}
}

// handle runs call (inline: with ServeInline, on the reader) and queues
// its reply. Unless hold is set, it writes the queued replies too, if no
// other worker is writing them. It reports false, having done nothing,
// when ServeInline declined the call.
func (sc *serverConn) handle(call *serverCall, inline, hold bool) bool {
	served, err := sc.callHandler(call, inline)
	if !served {
		call.resp.Header, call.resp.Body = nil, nil
		return false
	}
	if err == nil && (len(call.resp.Header) > sc.s.lim.maxHeader || len(call.resp.Body) > sc.s.lim.maxBody) {
		err = fmt.Errorf("%w: reply header %d / body %d bytes, limits %d / %d",
			ErrTooLarge, len(call.resp.Header), len(call.resp.Body), sc.s.lim.maxHeader, sc.s.lim.maxBody)
	}
	if err != nil {
		msg := err.Error()
		if len(msg) > maxErrorMessage {
			msg = msg[:maxErrorMessage]
		}
		call.isError = true
		call.resp.Header = call.resp.Buf(len(msg))
		copy(call.resp.Header, msg)
		call.resp.Body = nil
	}
	sc.mu.Lock()
	sc.replies = append(sc.replies, call)
	if sc.writing || (hold && len(sc.replies) < maxHeldReplies) {
		sc.mu.Unlock() // the writing worker, or the reader, takes it later
		return true
	}
	sc.writeRepliesLocked(!(inline && sc.detached()))
	sc.mu.Unlock()
	return true
}

// callHandler runs the handler (ServeInline when inline), turning a panic
// into an error reply so one bad request cannot take the node down.
func (sc *serverConn) callHandler(call *serverCall, inline bool) (served bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			sc.s.log.Error().Interface("panic", p).Stringer("remote", sc.remote).Msg("rpc: handler panicked")
			served, err = true, fmt.Errorf("handler panic: %v", p)
		}
	}()
	if inline {
		return sc.s.inline.ServeInline(sc.s.ctx, &call.req, &call.resp)
	}
	return true, sc.s.h.ServeRPC(sc.s.ctx, &call.req, &call.resp)
}

// replyWriter is the reusable state of whichever worker writes.
type replyWriter struct {
	batch []*serverCall
	hdrs  []byte
	iov   [][]byte
	bufs  net.Buffers
	vw    vecWriter
}

// batchResult is what writeBatchLocked did.
type batchResult int

const (
	batchNone      batchResult = iota // no reply was queued
	batchWritten                      // a batch was written (or dropped)
	batchHandedOff                    // a goroutine writes the rest of it
)

// writeBatchLocked writes the queued replies and releases them. It is
// called with sc.mu held and sc.writing set, and drops the lock while it
// writes. Without mayWait a socket too full for all of the batch leaves
// the rest to finishBatch on a goroutine of its own, which becomes the
// writer.
func (sc *serverConn) writeBatchLocked(mayWait bool) batchResult {
	w := &sc.w
	w.batch, sc.replies = sc.replies, w.batch[:0]
	if len(w.batch) == 0 {
		return batchNone
	}
	sc.mu.Unlock()
	var err error
	if !sc.broken {
		if need := frameHeaderSize * len(w.batch); cap(w.hdrs) < need {
			w.hdrs = make([]byte, need)
		}
		w.iov = w.iov[:0]
		for i, call := range w.batch {
			fh := frameHeader{flags: flagResponse, id: call.id,
				headerLen: uint32(len(call.resp.Header)), bodyLen: uint32(len(call.resp.Body))}
			if call.isError {
				fh.flags |= flagError
			}
			hdr := w.hdrs[frameHeaderSize*i:][:frameHeaderSize]
			fh.encode(hdr)
			w.iov = append(w.iov, hdr, call.resp.Header)
			if len(call.resp.Body) > 0 {
				w.iov = append(w.iov, call.resp.Body)
			}
		}
		w.bufs = w.iov
		if sc.rc != nil {
			err = w.vw.write(sc.rc, &w.bufs, mayWait)
			if err == nil && len(w.bufs) > 0 {
				sc.workerWG.Add(1)
				go sc.finishBatch()
				sc.mu.Lock()
				return batchHandedOff
			}
		} else {
			_, err = w.bufs.WriteTo(sc.conn)
		}
	}
	sc.endBatch(err)
	sc.mu.Lock()
	return batchWritten
}

// finishBatch writes, waiting for room, the rest of a batch the poller's
// thread could not, then the replies queued meanwhile.
func (sc *serverConn) finishBatch() {
	defer sc.workerWG.Done()
	sc.endBatch(sc.w.vw.write(sc.rc, &sc.w.bufs, true))
	sc.mu.Lock()
	sc.writeRepliesLocked(true)
	sc.mu.Unlock()
}

// endBatch closes the connection if the batch's write failed, and releases
// the batch's calls and their slots.
func (sc *serverConn) endBatch(err error) {
	w := &sc.w
	if err != nil && !sc.broken {
		sc.broken = true
		sc.s.log.Info().Err(err).Stringer("remote", sc.remote).Msg("rpc: reply write failed; closing connection")
		sc.closeConn() // the reader stops too
	}
	clear(w.iov)
	for i, call := range w.batch {
		call.release()
		w.batch[i] = nil
		sc.releaseSlot()
	}
}
