package rpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/internal/pollertest"
)

// Batches Queued and Flushed by several goroutines at once, with bodies
// large enough that the socket often cannot take a batch at once (the rest
// then goes to the writer goroutine), and Go calls mixed in: every reply
// is checked byte for byte.
func TestQueueFlushBatches(t *testing.T) {
	randomPool := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{42}).Read(randomPool)
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{})
	const goroutines, rounds, batch = 4, 40, 16
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds*batch)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			calls := make([]*Call, batch)
			for i := range calls {
				calls[i] = &Call{ReqHeader: make([]byte, 12), RespHeader: make([]byte, 12), RespBody: make([]byte, 1<<20)}
			}
			for r := range rounds {
				var done sync.WaitGroup
				for i, call := range calls {
					size := rng.IntN(4 << 10)
					if rng.IntN(4) == 0 {
						size = rng.IntN(1 << 20)
					}
					off := rng.IntN(len(randomPool) - size + 1)
					call.ReqHeader = delayHeader(call.ReqHeader, uint64(g)<<32|uint64(r*batch+i), 0)
					call.ReqBody = randomPool[off : off+size]
					call.RespHeader = call.RespHeader[:cap(call.RespHeader)]
					call.RespBody = call.RespBody[:cap(call.RespBody)]
					call.Done = func(call *Call) {
						if err := checkReply(call); err != nil {
							errs <- err
						}
						done.Done()
					}
					done.Add(1)
					if i%5 == 4 {
						c.Go(call)
					} else {
						c.Queue(call)
					}
				}
				c.Flush()
				done.Wait()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A call Queued and never Flushed is still sent (by the deadline scanner's
// kick of the writer goroutine), well before its deadline.
func TestQueueWithoutFlushIsSent(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{CallTimeout: 20 * time.Second})
	done := make(chan *Call, 1)
	for i := range 3 { // the first dials; the others go over the live session
		call := &Call{ReqHeader: delayHeader(make([]byte, 12), uint64(i), 0), ReqBody: []byte("not flushed"),
			RespHeader: make([]byte, 12), RespBody: make([]byte, 64), Done: func(call *Call) { done <- call }}
		c.Queue(call)
		select {
		case call := <-done:
			if err := checkReply(call); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d, queued without Flush, was not answered in 10 s", i)
		}
	}
}

// Flush never waits for the peer: against a server that does not read,
// it returns with the socket full and the writer goroutine holding the
// rest; the calls then fail (the stall timeout closes the connection and
// so frees the calls stuck in the blocked write), not hang.
func TestFlushDoesNotBlock(t *testing.T) { flushDoesNotBlock(t, nil) }

func TestFlushDoesNotBlockPolled(t *testing.T) { flushDoesNotBlock(t, pollertest.New(t)) }

// flushDoesNotBlock: Flush to a peer that reads nothing returns at once;
// the calls fail by their deadline.
func flushDoesNotBlock(t *testing.T, poller Poller) {
	addr, accepted := silentPeer(t)
	c := newTestClient(t, addr, ClientOptions{CallTimeout: time.Second, StallTimeout: 2 * time.Second})
	c.SetPoller(poller)
	body := bytes.Repeat([]byte{7}, 1<<20)
	const n = 32
	failed := make(chan error, n)
	flushed := make(chan struct{})
	go func() {
		for range 2 { // the first Flush may find the session still dialing
			for range n / 2 {
				c.Queue(&Call{ReqHeader: make([]byte, 8), ReqBody: body, RespHeader: make([]byte, 12),
					Done: func(call *Call) { failed <- call.Err }})
			}
			c.Flush()
			time.Sleep(100 * time.Millisecond)
		}
		close(flushed)
	}()
	select {
	case <-flushed:
	case <-time.After(10 * time.Second):
		t.Fatal("Flush blocked on a peer that does not read")
	}
	conn := <-accepted
	defer conn.Close()
	for range n {
		select {
		case err := <-failed:
			if err == nil {
				t.Fatal("a call succeeded against a server that never answers")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call to a peer that does not read did not fail")
		}
	}
}

func TestAdvance(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "ab|cde||f"}, {1, "b|cde||f"}, {2, "cde||f"}, {4, "e||f"}, {5, "f"}, {6, ""}} {
		bufs := net.Buffers{[]byte("ab"), []byte("cde"), nil, []byte("f")}
		advance(&bufs, tc.n)
		got := string(bytes.Join(bufs, []byte("|")))
		if got != tc.want {
			t.Errorf("advance %d: got %q, want %q", tc.n, got, tc.want)
		}
	}
}

// The deadline scanner wakes when a deadline is due, not per tick: few
// passes during a 300 ms call whose deadline is far, none while idle; a
// call made after an idle spell still times out on time.
func TestIdleClientDoesNotTick(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{TimeoutResolution: 5 * time.Millisecond, CallTimeout: 10 * time.Second})
	slow := &Call{ReqHeader: delayHeader(make([]byte, 12), 1, 300*time.Millisecond), RespHeader: make([]byte, 12)}
	start := c.scans.Load()
	if err := c.Do(context.Background(), slow); err != nil {
		t.Fatal(err)
	}
	if n := c.scans.Load() - start; n > 2 {
		t.Fatalf("%d deadline passes during a 300 ms call due in 10 s at a 5 ms resolution, want at most 2", n)
	}
	idle := c.scans.Load()
	time.Sleep(300 * time.Millisecond)
	if n := c.scans.Load() - idle; n > 1 {
		t.Fatalf("%d deadline passes while idle, want at most the one planned", n)
	}
	began := time.Now()
	late := &Call{ReqHeader: delayHeader(make([]byte, 12), 2, 2*time.Second), RespHeader: make([]byte, 12),
		Deadline: time.Now().Add(50 * time.Millisecond)}
	if err := c.Do(context.Background(), late); !errors.Is(err, ErrTimeout) {
		t.Fatalf("call after an idle spell: %v, want ErrTimeout", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("a call due in 50 ms timed out after %v", d)
	}
}

// An InlineHandler's lone requests are served on the reader: the
// connection starts no worker for them. Requests it does not pick still go
// to workers.
func TestInlineRequestsNeedNoWorker(t *testing.T) {
	for _, tc := range []struct {
		name        string
		h           Handler
		wantWorkers bool
	}{{"inline", inlineChecksumHandler{}, false}, {"not-inline", checksumHandler{}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, tc.h, ServerOptions{})
			c := newTestClient(t, ts.addr, ClientOptions{})
			call := &Call{ReqHeader: delayHeader(make([]byte, 12), 0, 0), ReqBody: []byte("alone"),
				RespHeader: make([]byte, 12), RespBody: make([]byte, 16)}
			for i := range 50 {
				call.ReqHeader = delayHeader(call.ReqHeader, uint64(i), 0)
				call.RespHeader, call.RespBody = call.RespHeader[:12], call.RespBody[:16]
				if err := c.Do(context.Background(), call); err != nil {
					t.Fatal(err)
				}
				if err := checkReply(call); err != nil {
					t.Fatal(err)
				}
			}
			if workers := ts.workers(); (workers > 0) != tc.wantWorkers {
				t.Fatalf("%d worker goroutines after 50 lone requests; want workers: %v", workers, tc.wantWorkers)
			}
		})
	}
}

// Batches of inline requests are served on the reader too, their replies
// held back while more requests are buffered. Every call is answered even
// when a batch is larger than MaxInFlightPerConn (the reader must send
// what it holds before it waits for a slot), and with slow requests mixed
// in, which workers serve and whose writers take held replies along.
func TestInlineBatchesAllAnswered(t *testing.T) {
	for _, tc := range []struct {
		name        string
		slowEvery   int // every slowEvery-th call asks for a 1 ms delay (a worker); 0: none
		wantWorkers bool
	}{{"inline-only", 0, false}, {"mixed", 7, true}} {
		t.Run(tc.name, func(t *testing.T) {
			pool := make([]byte, 8<<10)
			rand.NewChaCha8([32]byte{7}).Read(pool)
			ts := startServer(t, inlineChecksumHandler{}, ServerOptions{MaxInFlightPerConn: 4})
			c := newTestClient(t, ts.addr, ClientOptions{CallTimeout: 20 * time.Second})
			const batches, batch = 20, 100
			errs := make(chan error, batches*batch)
			for b := range batches {
				var done sync.WaitGroup
				for i := range batch {
					delay := time.Duration(0)
					if tc.slowEvery > 0 && i%tc.slowEvery == 0 {
						delay = time.Millisecond
					}
					body := pool[i : i+64+i*37%4096]
					call := &Call{ReqHeader: delayHeader(make([]byte, 12), uint64(b*batch+i), delay), ReqBody: body,
						RespHeader: make([]byte, 12), RespBody: make([]byte, len(body))}
					call.Done = func(call *Call) {
						if err := checkReply(call); err != nil {
							errs <- err
						}
						done.Done()
					}
					done.Add(1)
					c.Queue(call)
				}
				c.Flush()
				waited := make(chan struct{})
				go func() { done.Wait(); close(waited) }()
				select {
				case <-waited:
				case <-time.After(10 * time.Second):
					t.Fatalf("batch %d: not every call was answered in 10 s", b)
				}
			}
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if workers := ts.workers(); (workers > 0) != tc.wantWorkers {
				t.Fatalf("%d worker goroutines after %d batches; want workers: %v", workers, batches, tc.wantWorkers)
			}
		})
	}
}

// A reply the reader serves inline is held back only while the next
// request is wholly read: with half a frame behind it (its sender may not
// send the rest yet), the reply goes out before the reader waits.
func TestInlineReplyNotHeldBehindHalfAFrame(t *testing.T) {
	ts := startServer(t, inlineChecksumHandler{}, ServerOptions{})
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first := rawFrame(flagRequest, 1, delayHeader(make([]byte, 12), 1, 0), []byte("first"))
	second := rawFrame(flagRequest, 2, delayHeader(make([]byte, 12), 2, 0), []byte("second"))
	readReply := func(wantID uint64) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		hb := make([]byte, frameHeaderSize)
		if _, err := io.ReadFull(conn, hb); err != nil {
			t.Fatalf("reply %d: %v", wantID, err)
		}
		h, err := decodeFrameHeader(hb, frameLimits{}.withDefaults(), flagResponse)
		if err != nil || h.id != wantID {
			t.Fatalf("reply %+v, %v; want id %d", h, err, wantID)
		}
		if _, err := io.CopyN(io.Discard, conn, int64(h.headerLen+h.bodyLen)); err != nil {
			t.Fatal(err)
		}
	}
	// The first frame and 10 bytes of the second in one write.
	if _, err := conn.Write(append(append([]byte{}, first...), second[:10]...)); err != nil {
		t.Fatal(err)
	}
	readReply(1)
	if _, err := conn.Write(second[10:]); err != nil {
		t.Fatal(err)
	}
	readReply(2)
}
