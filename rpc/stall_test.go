package rpc

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// A peer that accepts but never reads: once the socket buffers fill, the
// writer blocks. Expired calls must still complete (the stuck connection is
// closed after stallGrace), and Close must not hang on the blocked writer.
func TestStalledPeer(t *testing.T) {
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

	c := newTestClient(t, l.Addr().String(), ClientOptions{CallTimeout: 100 * time.Millisecond})
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
	if d := time.Since(start); d > 100*time.Millisecond+stallGrace+time.Second {
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
