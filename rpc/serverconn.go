package rpc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/sheepblk/sheepblk/internal/schedyield"
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

// serverConn serves one connection: a reader (serve) and up to
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
	br     *bufio.Reader
	rr     *rawReader // br's source for a plain socket
	hb     [frameHeaderSize]byte

	detached bool // the reader waits in poll(2) (ServerOptions.DetachReaders)

	handshake bool // TLS and/or authentication run before the first frame

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
	var r io.Reader = conn
	if sc.rc = rawConn(conn); sc.rc != nil {
		sc.rr = &rawReader{rc: sc.rc}
		r = sc.rr
	}
	sc.br = bufio.NewReaderSize(r, readBufferSize)
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
	if sc.s.opts.DetachReaders {
		sc.detachReader()
	}
	if err := sc.readLoop(); err != nil {
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
	if sc.detached {
		detachedReaders.Add(-1)
	}
}

// detachedReaders counts the process's connections whose reader waits in
// poll(2) (ServerOptions.DetachReaders).
var detachedReaders atomic.Int32

// maxDetachedReaders is how many connections may be read that way: each
// reader waiting in poll(2) keeps a P, and one P stays for the rest of
// the process (its workers, timers, other connections), so none on one
// CPU. The tests raise it with detachedReadersLimit, to run every
// connection detached.
func maxDetachedReaders() int32 {
	if n := detachedReadersLimit.Load(); n > 0 {
		return n
	}
	return int32(runtime.GOMAXPROCS(0) - 1)
}

var detachedReadersLimit atomic.Int32

// detachReader takes a plain TCP connection out of the netpoller, if the
// process has room for one more such reader (see DetachReaders). It runs
// before the first request is read: nothing is buffered yet, and no
// worker writes.
func (sc *serverConn) detachReader() {
	if sc.rr == nil {
		return
	}
	for {
		n := detachedReaders.Load()
		if n >= maxDetachedReaders() {
			return
		}
		if detachedReaders.CompareAndSwap(n, n+1) {
			break
		}
	}
	// Under the server's lock: Shutdown and Close reach the connection
	// through sc.conn.
	s := sc.s
	s.mu.Lock()
	defer s.mu.Unlock()
	var so *socket
	var err error
	if !s.stopping {
		so, err = detach(sc.conn)
	}
	if so == nil {
		detachedReaders.Add(-1)
		if err != nil {
			s.log.Debug().Err(err).Stringer("remote", sc.remote).Msg("rpc: connection stays in the netpoller")
		}
		return
	}
	sc.conn, sc.rc, sc.detached = so, socketRaw{so}, true
	sc.rr.rc = sc.rc
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

// readLoop reads requests and hands them to workers. It returns nil when the
// server is stopping (graceful), or the error that ended the connection.
func (sc *serverConn) readLoop() error {
	var yield schedyield.Pacer
	for {
		// A detached reader waits in a system call, never in the
		// scheduler: it yields now and then (see schedyield).
		if sc.detached && yield.Due() {
			runtime.Gosched()
		}
		select {
		case sc.inFlight <- struct{}{}:
		default:
			// Every slot is taken: replies the reader held back must go
			// out first, or it would wait for slots only it can free.
			sc.flushHeld()
			select {
			case sc.inFlight <- struct{}{}:
			case <-sc.s.stopCh:
				return nil
			}
		}
		if !sc.nextBuffered() {
			sc.flushHeld() // the reader may wait for the client
		}
		call, err := sc.readRequest()
		if err != nil {
			<-sc.inFlight
			sc.flushHeld()
			if errors.Is(err, os.ErrDeadlineExceeded) && sc.s.isStopping() {
				return nil
			}
			return err
		}
		// Served here if it can be without waiting, its reply held
		// back while the next request is already read: one writev
		// answers the batch.
		if sc.s.inline != nil && sc.handle(call, true, sc.nextBuffered()) {
			continue
		}
		sc.dispatch(call)
	}
}

// maxHeldReplies bounds the replies the reader holds back while it serves
// a batch inline: the client gets the first ones while the rest are served.
const maxHeldReplies = 16

// nextBuffered reports whether the next request is wholly in the read
// buffer, so the reader gets to it without waiting for the client: only
// then may the replies it holds wait for it. (A malformed header counts as
// not buffered; reading it fails, after the held replies went out.)
func (sc *serverConn) nextBuffered() bool {
	n := sc.br.Buffered()
	if n < frameHeaderSize {
		return false
	}
	hb, _ := sc.br.Peek(frameHeaderSize)
	size := frameHeaderSize + uint64(binary.LittleEndian.Uint32(hb[frameHeaderLenOffset:])) +
		uint64(binary.LittleEndian.Uint32(hb[frameBodyLenOffset:]))
	return uint64(n) >= size
}

// flushHeld writes the replies the reader held back, unless a worker is
// writing, which takes them with its own.
func (sc *serverConn) flushHeld() {
	sc.mu.Lock()
	if !sc.writing {
		sc.writeRepliesLocked()
	}
	sc.mu.Unlock()
}

// writeRepliesLocked makes the caller the writer until no reply is queued.
// It is called with sc.mu held and sc.writing unset.
func (sc *serverConn) writeRepliesLocked() {
	sc.writing = true
	for sc.writeBatchLocked() {
	}
	sc.writing = false
}

// readRequest reads one request frame into pooled buffers. Lengths are
// checked against the server's bounds before any buffer is taken.
func (sc *serverConn) readRequest() (*serverCall, error) {
	if _, err := io.ReadFull(sc.br, sc.hb[:]); err != nil {
		return nil, err
	}
	h, err := decodeFrameHeader(sc.hb[:], sc.s.lim, flagRequest)
	if err != nil {
		return nil, err
	}
	call := getServerCall()
	call.id = h.id
	call.req.RemoteAddr = sc.remote
	if h.headerLen > 0 {
		call.reqHdr = getBuffer(int(h.headerLen))
		call.req.Header = call.reqHdr.b
	}
	if h.bodyLen > 0 {
		call.reqBody = getBuffer(int(h.bodyLen))
		call.req.Body = call.reqBody.b
	}
	if _, err = io.ReadFull(sc.br, call.req.Header); err == nil {
		_, err = io.ReadFull(sc.br, call.req.Body)
	}
	if err != nil {
		call.release()
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("truncated frame (header %d, body %d bytes): %w", h.headerLen, h.bodyLen, err)
	}
	return call, nil
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
	sc.writeRepliesLocked()
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

// writeBatchLocked writes the queued replies and releases them; it
// returns false, still holding sc.mu, when the queue was empty. It is
// called with sc.mu held and sc.writing set, and drops the lock while it
// writes.
func (sc *serverConn) writeBatchLocked() bool {
	w := &sc.w
	w.batch, sc.replies = sc.replies, w.batch[:0]
	if len(w.batch) == 0 {
		return false
	}
	sc.mu.Unlock()
	defer sc.mu.Lock()
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
		var err error
		if sc.rc != nil {
			err = w.vw.write(sc.rc, &w.bufs, true)
		} else {
			_, err = w.bufs.WriteTo(sc.conn)
		}
		if err != nil {
			sc.broken = true
			sc.s.log.Info().Err(err).Stringer("remote", sc.remote).Msg("rpc: reply write failed; closing connection")
			sc.conn.Close() // the reader stops too
		}
		clear(w.iov)
	}
	for i, call := range w.batch {
		call.release()
		w.batch[i] = nil
		<-sc.inFlight
	}
	return true
}
