package rpc

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/internal/pollertest"
)

// A peer that accepts but never reads: once the socket buffers fill, the
// writer blocks. Expired calls must still complete (the silent connection
// is closed after StallTimeout), and Close must not hang on the blocked
// writer.
func TestStalledPeer(t *testing.T) { stalledPeer(t, nil) }

// A poller reads the replies: the writer waits for room in poll(2) (the
// socket is out of the netpoller), and is woken by Close all the same.
func TestStalledPeerPolled(t *testing.T) { stalledPeer(t, pollertest.New(t)) }

// stalledPeer: calls to a peer that accepts and never reads fail by their
// deadline or the stall timeout; Close returns while the writer is stuck.
func stalledPeer(t *testing.T, poller Poller) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var accepted []net.Conn
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, conn) // held open, never read
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range accepted {
			c.Close()
		}
		mu.Unlock()
	}()

	const stall = 300 * time.Millisecond
	c := newTestClient(t, l.Addr().String(), ClientOptions{CallTimeout: 100 * time.Millisecond, StallTimeout: stall})
	c.SetPoller(poller)
	body := make([]byte, 8<<20)
	const n = 8 // 64 MiB: far more than loopback socket buffers hold
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		c.Go(&Call{ReqBody: body, Done: func(call *Call) { errs <- call.Err }})
	}
	for range n {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrConnection) {
				t.Fatalf("stalled call: got %v, want ErrTimeout or ErrConnection", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("calls to a stalled peer never completed")
		}
	}
	if d := time.Since(start); d > stall+time.Second {
		t.Fatalf("stalled calls completed after %v", d)
	}

	// Block the writer again, then Close while it is stuck.
	for range n {
		c.Go(&Call{ReqBody: body, Deadline: time.Now().Add(time.Minute), Done: func(call *Call) { errs <- call.Err }})
	}
	time.Sleep(100 * time.Millisecond)
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Close hung on a blocked writer")
	}
	for range n {
		if err := <-errs; !errors.Is(err, ErrClosed) && !errors.Is(err, ErrConnection) {
			t.Fatalf("after Close: got %v", err)
		}
	}
}

// Conns spreads calls over that many connections.
func TestConnsPool(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{Conns: 3})
	for i := range 9 {
		call := &Call{ReqHeader: make([]byte, 12), ReqBody: []byte{byte(i)}, RespHeader: make([]byte, 12), RespBody: make([]byte, 1)}
		if err := c.Do(context.Background(), call); err != nil {
			t.Fatal(err)
		}
		if err := checkReply(call); err != nil {
			t.Fatal(err)
		}
	}
	ts.mu.Lock()
	conns := len(ts.conns)
	ts.mu.Unlock()
	if conns != 3 {
		t.Fatalf("server sees %d connections, want 3", conns)
	}
}

// One slow call must not cut the calls sharing its connection. The link
// to the server is throttled (a proxy forwards requests at 4 MiB/s), so a
// 12 MiB request keeps the writer busy with its buffers for seconds after
// its short deadline. Replies to calls sent before it keep arriving
// meanwhile, so the connection is alive: the big call times out alone,
// every other call succeeds, and the server sees one connection.
func TestSlowCallKeepsConnection(t *testing.T) {
	const maxBody = 16 << 20
	ts := startServer(t, checksumHandler{}, ServerOptions{MaxBody: maxBody})
	proxy := throttledProxy(t, ts.addr, 4<<20)
	c := newTestClient(t, proxy, ClientOptions{StallTimeout: 1500 * time.Millisecond, MaxBody: maxBody})
	if err := c.Do(context.Background(), &Call{ReqHeader: make([]byte, 12), RespHeader: make([]byte, 12)}); err != nil {
		t.Fatal(err) // connected
	}

	errs := make(chan error, 16)
	quick := func(tag uint64, delay time.Duration) {
		call := &Call{ReqHeader: delayHeader(make([]byte, 12), tag, delay), ReqBody: []byte{byte(tag)},
			RespHeader: make([]byte, 12), RespBody: make([]byte, 1), Deadline: time.Now().Add(time.Minute)}
		call.Done = func(call *Call) { errs <- checkReply(call) }
		c.Go(call)
	}
	// Answered one after another over 3 s, while the big request is
	// still being written.
	for i := range 10 {
		quick(uint64(i+1), time.Duration(i+1)*300*time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // sent before the big one
	big := &Call{ReqHeader: make([]byte, 12), ReqBody: make([]byte, 12<<20), RespHeader: make([]byte, 12),
		RespBody: make([]byte, 12<<20), Deadline: time.Now().Add(200 * time.Millisecond)}
	bigDone := make(chan error, 1)
	big.Done = func(call *Call) { bigDone <- call.Err }
	start := time.Now()
	c.Go(big)
	quick(100, 0) // queued behind the big request

	for i := range 11 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("call %d beside a slow one failed after %v: %v", i, time.Since(start), err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("calls beside a slow one never completed")
		}
	}
	if err := <-bigDone; !errors.Is(err, ErrTimeout) {
		t.Fatalf("slow call: got %v, want ErrTimeout", err)
	}
	t.Logf("every call done after %v", time.Since(start).Round(time.Millisecond))
	ts.mu.Lock()
	conns := len(ts.conns)
	ts.mu.Unlock()
	if conns != 1 {
		t.Fatalf("server saw %d connections, want 1 (the connection was cut)", conns)
	}
}

// throttledProxy forwards connections to target, client-to-server at
// bytesPerSec with a small receive buffer (so the client's writes block),
// server-to-client unthrottled.
func throttledProxy(t *testing.T, target string, bytesPerSec int) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			t.Cleanup(func() { in.Close(); out.Close() })
			in.(*net.TCPConn).SetReadBuffer(64 << 10)
			go func() {
				const chunk = 32 << 10
				buf := make([]byte, chunk)
				tick := time.Duration(chunk) * time.Second / time.Duration(bytesPerSec)
				for {
					n, err := in.Read(buf)
					if n > 0 {
						if _, werr := out.Write(buf[:n]); werr != nil {
							return
						}
						time.Sleep(tick * time.Duration(n) / chunk)
					}
					if err != nil {
						out.Close()
						return
					}
				}
			}()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return l.Addr().String()
}

// A peer that reads requests but never answers anything: the connection is
// closed once it has been silent for StallTimeout with calls pending, so a
// call with a far deadline fails with ErrConnection then, not at its
// deadline. An idle connection (nothing pending) is never closed.
func TestSilentPeerClosed(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	var served sync.WaitGroup
	ts := startServer(t, HandlerFunc(func(ctx context.Context, req *Request, resp *Response) error {
		if len(req.Header) > 0 && req.Header[0] == 'S' {
			served.Done()
			select { // silent until the test ends
			case <-block:
			case <-ctx.Done():
			}
		}
		return nil
	}), ServerOptions{})
	const stall = 300 * time.Millisecond
	c := newTestClient(t, ts.addr, ClientOptions{StallTimeout: stall})

	// Connect, then stay idle for several windows: the connection lives.
	if err := c.Do(context.Background(), &Call{ReqHeader: []byte("hi"), RespHeader: make([]byte, 16)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * stall)
	served.Add(1)
	start := time.Now()
	err := c.Do(context.Background(), &Call{ReqHeader: []byte("S"), RespHeader: make([]byte, 16), Deadline: time.Now().Add(time.Minute)})
	took := time.Since(start)
	if !errors.Is(err, ErrConnection) {
		t.Fatalf("call to a silent peer: got %v, want ErrConnection", err)
	}
	if took < stall || took > stall+time.Second {
		t.Fatalf("silent connection closed after %v, want about %v", took, stall)
	}
	served.Wait() // the request did reach the server
	ts.mu.Lock()
	conns := len(ts.conns)
	ts.mu.Unlock()
	if conns > 1 {
		// The first connection is closed by the client; the server may
		// not have noticed yet, but no second one was needed.
		t.Logf("server still lists %d connections", conns)
	}
}
