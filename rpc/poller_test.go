package rpc

import (
	"context"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/internal/pollertest"
)

// A client whose replies a poller reads: the random-size round trip of
// TestRoundTripRandomSizesConcurrent (frames split anywhere, bodies up to
// 1 MiB read straight into the calls) and a restarted server.
func TestPollerReadsReplies(t *testing.T) {
	p := pollertest.New(t)
	roundTripRandomSizes(t, checksumHandler{}, 2, p)
	if p.Watched.Load() != 2 || p.Wakes.Load() == 0 {
		t.Fatalf("poller took %d sockets and woke %d times; want the client's 2 connections", p.Watched.Load(), p.Wakes.Load())
	}
}

func TestPollerServerKilledAndRestarted(t *testing.T) {
	p := pollertest.New(t)
	serverKilledAndRestarted(t, p)
	if p.Watched.Load() < 2 {
		t.Fatalf("poller took %d sockets; want the first connection and the one after the restart", p.Watched.Load())
	}
}

// An idle connection open before SetPoller is replaced by one the poller
// reads (out of the netpoller); when the poller stops, a goroutine reads
// that socket again; Close with a poller watching returns.
func TestPollerHandoverAndStop(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{})
	do := func(what string) {
		t.Helper()
		for i := range 50 {
			call := &Call{ReqHeader: delayHeader(make([]byte, 12), uint64(i), 0), ReqBody: make([]byte, i*1000),
				RespHeader: make([]byte, 12), RespBody: make([]byte, 64<<10)}
			if err := c.Do(context.Background(), call); err != nil {
				t.Fatalf("%s: call %d: %v", what, i, err)
			}
			if err := checkReply(call); err != nil {
				t.Fatalf("%s: call %d: %v", what, i, err)
			}
		}
	}
	do("before the poller")
	p := pollertest.New(t)
	c.SetPoller(p)
	do("on the poller")
	if p.Watched.Load() != 1 {
		t.Fatalf("poller took %d sockets; want the one dialed after SetPoller closed the old one", p.Watched.Load())
	}
	// One call at a time: about one wake per reply (a reply may be there
	// before its poll is armed).
	if p.Wakes.Load() < 25 {
		t.Fatalf("poller woke %d times for 50 calls", p.Wakes.Load())
	}
	p.Stop()
	if p.Active.Load() != 0 {
		t.Fatal("poller still watches after stop")
	}
	do("after the poller stopped")

	p2 := pollertest.New(t)
	c2 := NewClient(ts.addr, ClientOptions{})
	c2.SetPoller(p2)
	call := &Call{ReqHeader: make([]byte, 12), RespHeader: make([]byte, 12)}
	if err := c2.Do(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c2.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung with a poller watching the connection")
	}
	waitFor(t, "the poller to let go of the closed socket", 5*time.Second, func() bool { return p2.Active.Load() == 0 })
}

// A connection busy when SetPoller is called (a call awaits its reply)
// is retired once that call ends: the call gets its reply, and the calls
// after it go over a connection the poller reads.
func TestPollerRetiresBusyConnection(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{Conns: 1})
	slow := &Call{ReqHeader: delayHeader(make([]byte, 12), 7, 300*time.Millisecond), ReqBody: make([]byte, 5000),
		RespHeader: make([]byte, 12), RespBody: make([]byte, 64<<10)}
	done := make(chan struct{})
	slow.Done = func(*Call) { close(done) }
	c.Go(slow)
	cc := c.conns[0]
	waitFor(t, "the slow call to be sent", 5*time.Second, func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cc.sess != nil && cc.sess.outstanding == 1
	})
	p := pollertest.New(t)
	c.SetPoller(p)
	cc.mu.Lock()
	busy := cc.sess
	cc.mu.Unlock()
	if busy == nil {
		t.Fatal("SetPoller closed the connection while a call awaited its reply")
	}
	<-done
	if err := checkReply(slow); err != nil {
		t.Fatalf("the call in flight at SetPoller: %v", err)
	}
	select {
	case <-busy.dead:
	default:
		t.Fatal("the connection busy at SetPoller is still open after its last call ended")
	}
	for i := range 5 {
		call := &Call{ReqHeader: delayHeader(make([]byte, 12), uint64(i), 0), ReqBody: make([]byte, 100),
			RespHeader: make([]byte, 12), RespBody: make([]byte, 64<<10)}
		if err := c.Do(context.Background(), call); err != nil {
			t.Fatalf("call %d after the retirement: %v", i, err)
		}
		if err := checkReply(call); err != nil {
			t.Fatalf("call %d after the retirement: %v", i, err)
		}
	}
	if p.Watched.Load() != 1 {
		t.Fatalf("poller took %d sockets; want the one dialed after the busy one was retired", p.Watched.Load())
	}
}

// polled4KiBCalls starts a server and a one-connection client whose
// replies p reads; do makes one call of 4 KiB each way with call.
func polled4KiBCalls(t *testing.T) (c *Client, p *pollertest.Poller, call *Call, do func()) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c = newTestClient(t, ts.addr, ClientOptions{Conns: 1})
	p = pollertest.New(t)
	c.SetPoller(p)
	call = &Call{ReqHeader: make([]byte, 12), ReqBody: make([]byte, 4096),
		RespHeader: make([]byte, 12), RespBody: make([]byte, 4096)}
	do = func() {
		call.RespHeader, call.RespBody = call.RespHeader[:12], call.RespBody[:4096]
		if err := c.Do(context.Background(), call); err != nil {
			t.Fatal(err)
		}
	}
	return c, p, call, do
}

// Replies read by a poller cost no allocation: a wakeup must not make
// garbage on the ublk queue thread (the daemon's I/O path allocates
// nothing). Client and server both run here, as in BenchmarkRPC4KiB.
func TestPollerReadsWithoutAllocating(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	_, p, _, do := polled4KiBCalls(t)
	for range 100 { // warm the pools and the connection
		do()
	}
	if p.Watched.Load() != 1 {
		t.Fatalf("poller took %d sockets, want 1", p.Watched.Load())
	}
	if n := testing.AllocsPerRun(500, do); n > 0.2 {
		t.Fatalf("%.2f allocations per call with a poller reading the replies, want 0", n)
	}
}

// A poller's thread reads a lone reply with one system call: the short
// read that took it emptied the socket, so no read is spent learning that
// the socket is empty (EAGAIN). At queue depth 1 that was every other
// read of the daemon's queue thread.
func TestPollerOneReadPerLoneReply(t *testing.T) {
	c, p, call, do4KiB := polled4KiBCalls(t)
	do := func() {
		do4KiB()
		if err := checkReply(call); err != nil {
			t.Fatal(err)
		}
	}
	do()
	cc := c.conns[0]
	cc.mu.Lock()
	s := cc.sess
	cc.mu.Unlock()
	if s == nil || p.Watched.Load() != 1 {
		t.Fatalf("no session the poller reads (watched %d)", p.Watched.Load())
	}
	before := s.pollRead.reads.Load()
	const calls = 200
	for range calls {
		do()
	}
	// A reply split over two reads is possible (it is 4 KiB and more on
	// loopback); a read per reply plus an EAGAIN read each is not.
	if reads := s.pollRead.reads.Load() - before; reads > calls*5/4 {
		t.Fatalf("%d reads for %d lone replies, want about one each", reads, calls)
	}
}
