package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

// testServer is a Server serving on a loopback listener.
type testServer struct {
	*Server
	addr   string
	served chan error // Serve's result
}

func startServer(t testing.TB, h Handler, opts ServerOptions) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return serveOn(t, l, h, opts)
}

// detachAllReaders makes every test server detach its readers
// (TestDetachedReaders).
var detachAllReaders atomic.Bool

func serveOn(t testing.TB, l net.Listener, h Handler, opts ServerOptions) *testServer {
	t.Helper()
	if detachAllReaders.Load() {
		opts.DetachReaders = true
	}
	if opts.Logger.GetLevel() == zerolog.DebugLevel { // zero value: use the test log
		opts.Logger = testLogger(t)
	}
	ts := &testServer{Server: NewServer(h, opts), addr: l.Addr().String(), served: make(chan error, 1)}
	go func() { ts.served <- ts.Serve(l) }()
	t.Cleanup(func() { ts.Close() })
	return ts
}

// perConn sums f over the server's connections.
func (ts *testServer) perConn(f func(*serverConn) int) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for sc := range ts.conns {
		n += f(sc)
	}
	return n
}

// detached counts the server's connections whose reader waits in poll(2).
func (ts *testServer) detached() int {
	return ts.perConn(func(sc *serverConn) int {
		if sc.detached() {
			return 1
		}
		return 0
	})
}

// workers counts the worker goroutines the server's connections started.
func (ts *testServer) workers() int {
	return ts.perConn(func(sc *serverConn) int { return int(sc.workers.Load()) })
}

func newTestClient(t testing.TB, addr string, opts ClientOptions) *Client {
	t.Helper()
	if opts.Logger.GetLevel() == zerolog.DebugLevel {
		opts.Logger = testLogger(t)
	}
	c := NewClient(addr, opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// checksumHandler replies with header = crc32(req header) | crc32(req body)
// | reply body length, and echoes the body from a pooled reply buffer, so
// every byte of both directions is checked. A request header
// of at least 12 bytes may ask for a delay (ms, u32 at offset 8).
type checksumHandler struct{}

func (checksumHandler) ServeRPC(ctx context.Context, req *Request, resp *Response) error {
	if len(req.Header) >= 12 {
		if d := binary.LittleEndian.Uint32(req.Header[8:]); d > 0 {
			select {
			case <-time.After(time.Duration(d) * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	h := resp.Buf(12)
	binary.LittleEndian.PutUint32(h[0:], crc32.ChecksumIEEE(req.Header))
	binary.LittleEndian.PutUint32(h[4:], crc32.ChecksumIEEE(req.Body))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(req.Body)))
	resp.Header = h
	if len(req.Body) > 0 {
		resp.Body = resp.Buf(len(req.Body))
		copy(resp.Body, req.Body)
	}
	return nil
}

// inlineChecksumHandler is checksumHandler serving requests that ask for
// no delay on the connection's reader (InlineHandler).
type inlineChecksumHandler struct{ checksumHandler }

func (h inlineChecksumHandler) ServeInline(ctx context.Context, req *Request, resp *Response) (bool, error) {
	if len(req.Header) >= 12 && binary.LittleEndian.Uint32(req.Header[8:]) != 0 {
		return false, nil
	}
	return true, h.ServeRPC(ctx, req, resp)
}

// checkReply verifies a checksumHandler reply to call.
func checkReply(call *Call) error {
	if call.Err != nil {
		return call.Err
	}
	if len(call.RespHeader) != 12 {
		return errors.New("reply header length wrong")
	}
	if binary.LittleEndian.Uint32(call.RespHeader[0:]) != crc32.ChecksumIEEE(call.ReqHeader) {
		return errors.New("server saw a different request header")
	}
	if binary.LittleEndian.Uint32(call.RespHeader[4:]) != crc32.ChecksumIEEE(call.ReqBody) {
		return errors.New("server saw a different request body")
	}
	if len(call.RespBody) != len(call.ReqBody) {
		return errors.New("reply body length wrong")
	}
	if !bytes.Equal(call.RespBody, call.ReqBody) {
		return errors.New("reply body bytes wrong")
	}
	return nil
}

// delayHeader builds a request header asking checksumHandler to wait d.
func delayHeader(buf []byte, tag uint64, d time.Duration) []byte {
	buf = buf[:12]
	binary.LittleEndian.PutUint64(buf, tag)
	binary.LittleEndian.PutUint32(buf[8:], uint32(d/time.Millisecond))
	return buf
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// silentPeer listens on loopback and accepts one connection, which it
// hands over on the channel and never reads from or writes to.
func silentPeer(t testing.TB) (addr string, accepted <-chan net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan net.Conn, 1)
	go func() {
		if conn, err := l.Accept(); err == nil {
			ch <- conn
		}
	}()
	return l.Addr().String(), ch
}
