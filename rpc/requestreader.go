package rpc

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// requestReader gives a server connection's request frames their meaning:
// each takes one of the connection's in-flight slots and pooled buffers,
// and is handed to deliver once read whole. Its frameStream does the
// reading, on the connection's reader goroutine or on the readPoller's
// thread.
type requestReader struct {
	frameStream
	sc   *serverConn
	call *serverCall // the request being read

	// deliver serves a request read whole; more reports that the next one
	// is staged whole too (see handle's hold). The server's is
	// serverConn.serveRequest; the fuzz test's collects them.
	deliver func(call *serverCall, more bool)
}

func newRequestReader(sc *serverConn, size int) *requestReader {
	r := &requestReader{sc: sc}
	r.deliver = sc.serveRequest
	r.frameStream = frameStream{sink: r, buf: make([]byte, size)}
	return r
}

// errNoSlot stops a parse on the readPoller's thread when every in-flight
// slot of the connection is taken: the poller stops watching it until a
// reply frees one (see serverConn.takeSlot).
var errNoSlot = errors.New("rpc: no request slot free")

// errStopped ends a reader goroutine that waited for a slot while the
// server started stopping.
var errStopped = errors.New("rpc: server stopping")

// begin decodes a request header and, with a slot taken, points the
// payload into pooled buffers. Lengths are checked against the server's
// bounds before any buffer is taken.
func (r *requestReader) begin(hb []byte) error {
	h, err := decodeFrameHeader(hb, r.sc.s.lim, flagRequest)
	if err != nil {
		return err
	}
	if err := r.sc.takeSlot(); err != nil {
		return err
	}
	call := getServerCall()
	call.id = h.id
	call.req.RemoteAddr = r.sc.remote
	if h.headerLen > 0 {
		call.reqHdr = getBuffer(int(h.headerLen))
		call.req.Header = call.reqHdr.b
	}
	if h.bodyLen > 0 {
		call.reqBody = getBuffer(int(h.bodyLen))
		call.req.Body = call.reqBody.b
	}
	r.call = call
	r.parts = [2]part{{dst: call.req.Header, n: len(call.req.Header)}, {dst: call.req.Body, n: len(call.req.Body)}}
	return nil
}

func (r *requestReader) finish() {
	call := r.call
	r.call = nil
	r.deliver(call, r.wholeFrameStaged())
}

// end lets go of a request read halfway when the stream ends, and says
// why it ended: nil for the server's stop (graceful), else err, a
// truncated frame if the peer's end cut one.
func (r *requestReader) end(err error) error {
	truncated := r.midFrame()
	if call := r.call; call != nil {
		r.call, r.inFrame = nil, false
		call.release()
		<-r.sc.inFlight
	}
	switch {
	case errors.Is(err, errStopped):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded) && r.sc.s.isStopping():
		return nil // Shutdown woke the reader
	case errors.Is(err, io.EOF) && truncated:
		return fmt.Errorf("truncated frame: %w", io.ErrUnexpectedEOF)
	}
	return err
}
