package rpc

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many goroutines, random sizes, random handler delays (so replies come back
// out of order), each goroutine reusing one Call; every byte is checked.
func TestRoundTripRandomSizesConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conns int
		h     Handler
	}{{"one-conn", 1, checksumHandler{}}, {"three-conns", 3, checksumHandler{}}, {"inline", 1, inlineChecksumHandler{}}} {
		t.Run(tc.name, func(t *testing.T) { roundTripRandomSizes(t, tc.h, tc.conns, nil) })
	}
}

// roundTripRandomSizes runs 16 callers of random-size calls (empty to
// 1 MiB, some delayed) on a client with conns connections whose replies
// poller reads (nil: the reader goroutines), checking every byte.
func roundTripRandomSizes(t *testing.T, h Handler, conns int, poller Poller) {
	randomPool := make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{byte(conns)}).Read(randomPool)
	ts := startServer(t, h, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{Conns: conns})
	c.SetPoller(poller)
	const callers, callsEach = 16, 60
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			call := &Call{RespHeader: make([]byte, 12), RespBody: make([]byte, 1<<20)}
			hdr := make([]byte, 64)
			for i := range callsEach {
				var size int
				switch rng.IntN(16) {
				case 0, 1, 2, 3:
					size = 0
				case 4, 5, 6, 7, 8:
					size = rng.IntN(512)
				case 9, 10, 11, 12, 13:
					size = rng.IntN(64 << 10)
				case 14:
					size = rng.IntN(256 << 10)
				default:
					size = 1<<20 - rng.IntN(4096) // near the reply buffer's size
				}
				off := rng.IntN(len(randomPool) - size + 1)
				body := randomPool[off : off+size]
				delay := time.Duration(0)
				if rng.IntN(3) == 0 {
					delay = time.Duration(rng.IntN(8)) * time.Millisecond
				}
				call.ReqHeader = delayHeader(hdr, uint64(g)<<32|uint64(i), delay)
				call.ReqHeader = append(call.ReqHeader, make([]byte, rng.IntN(40))...)
				call.ReqBody = body
				call.RespHeader = call.RespHeader[:cap(call.RespHeader)]
				call.RespBody = call.RespBody[:cap(call.RespBody)]
				if err := c.Do(context.Background(), call); err != nil {
					errs <- err
					return
				}
				if err := checkReply(call); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A slow call issued first completes after a fast call issued second.
func TestOutOfOrderCompletion(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{})
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	done := func(name string) func(*Call) {
		return func(call *Call) {
			if err := checkReply(call); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			wg.Done()
		}
	}
	slow := &Call{ReqHeader: delayHeader(make([]byte, 12), 1, 300*time.Millisecond), ReqBody: []byte("slow"),
		RespHeader: make([]byte, 12), RespBody: make([]byte, 16), Done: done("slow")}
	fast := &Call{ReqHeader: delayHeader(make([]byte, 12), 2, 0), ReqBody: []byte("fast"),
		RespHeader: make([]byte, 12), RespBody: make([]byte, 16), Done: done("fast")}
	wg.Add(2)
	c.Go(slow)
	time.Sleep(20 * time.Millisecond)
	c.Go(fast)
	wg.Wait()
	if strings.Join(order, ",") != "fast,slow" {
		t.Fatalf("completion order %v, want fast then slow", order)
	}
}

// Async calls that resubmit themselves from Done, so each Call is reused many
// times while others are in flight.
func TestGoReuseFromDone(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{})
	const inFlight, total = 32, 3000
	var started, completed atomic.Int64
	var failed atomic.Value
	all := make(chan struct{})
	for i := range inFlight {
		call := &Call{ReqHeader: make([]byte, 12), ReqBody: make([]byte, 1000+i),
			RespHeader: make([]byte, 12), RespBody: make([]byte, 4096)}
		call.ReqBody[0] = byte(i)
		call.Done = func(call *Call) {
			if err := checkReply(call); err != nil {
				failed.Store(err)
			}
			if completed.Add(1) == total {
				close(all)
			}
			if started.Add(1) <= total {
				call.ReqBody[1]++ // a different request each time
				call.RespHeader, call.RespBody = call.RespHeader[:12], call.RespBody[:4096]
				c.Go(call)
			}
		}
		started.Add(1)
		c.Go(call)
	}
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatalf("only %d of %d calls completed", completed.Load(), total)
	}
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
}

// A call past its deadline fails with ErrTimeout on time; its late reply is
// discarded and does not land in the reused Call.
func TestDeadlineExpiry(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{})
	call := &Call{ReqHeader: delayHeader(make([]byte, 12), 1, 400*time.Millisecond), ReqBody: []byte("late"),
		RespHeader: make([]byte, 12), RespBody: make([]byte, 64), Deadline: time.Now().Add(50 * time.Millisecond)}
	start := time.Now()
	err := c.Do(context.Background(), call)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("slow call: got %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("timeout took %v, want about 50ms", d)
	}
	// Reuse the Call (fresh buffers) for quick calls while the late reply
	// arrives; none of them may see it.
	for i := range 20 {
		call.ReqHeader = delayHeader(call.ReqHeader, uint64(i+2), 30*time.Millisecond)
		call.ReqBody = []byte("fresh request body")
		call.RespHeader, call.RespBody = call.RespHeader[:12], call.RespBody[:64]
		call.Deadline = time.Time{}
		if err := c.Do(context.Background(), call); err != nil {
			t.Fatalf("call %d after timeout: %v", i, err)
		}
		if err := checkReply(call); err != nil {
			t.Fatalf("call %d after timeout: %v", i, err)
		}
	}
}

// CallTimeout applies when a call has no deadline; a context deadline
// shortens it and cancellation ends Do early.
func TestDefaultTimeoutAndContext(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{CallTimeout: 60 * time.Millisecond})
	call := &Call{ReqHeader: delayHeader(make([]byte, 12), 1, 500*time.Millisecond), RespHeader: make([]byte, 12)}
	if err := c.Do(context.Background(), call); !errors.Is(err, ErrTimeout) {
		t.Fatalf("CallTimeout: got %v, want ErrTimeout", err)
	}

	c2 := newTestClient(t, ts.addr, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c2.Do(ctx, call); !errors.Is(err, ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx deadline: got %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("ctx deadline honoured after %v", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(30 * time.Millisecond); cancel() }()
	if err := c2.Do(ctx, call); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: got %v, want context.Canceled", err)
	}
}

func TestRemoteErrorAndPanic(t *testing.T) {
	ts := startServer(t, HandlerFunc(func(ctx context.Context, req *Request, resp *Response) error {
		switch string(req.Header) {
		case "fail":
			return errors.New("object 42 not found")
		case "panic":
			panic("handler bug")
		case "huge":
			resp.Body = make([]byte, DefaultMaxBody+1)
			return nil
		}
		resp.Body = []byte("ok")
		return nil
	}), ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{})
	do := func(h string) (*Call, error) {
		call := &Call{ReqHeader: []byte(h), RespBody: make([]byte, 16)}
		return call, c.Do(context.Background(), call)
	}
	_, err := do("fail")
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "object 42 not found" {
		t.Fatalf("got %v, want RemoteError with the handler's message", err)
	}
	if _, err = do("panic"); !errors.As(err, &re) || !strings.Contains(re.Msg, "handler bug") {
		t.Fatalf("panic: got %v, want RemoteError", err)
	}
	if _, err = do("huge"); !errors.As(err, &re) || !strings.Contains(re.Msg, "too large") {
		t.Fatalf("oversized reply: got %v, want RemoteError", err)
	}
	call, err := do("fine")
	if err != nil || string(call.RespBody) != "ok" {
		t.Fatalf("after errors: got %q, %v", call.RespBody, err)
	}
}

func TestTooLarge(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{MaxBody: 1 << 20})
	call := &Call{ReqHeader: make([]byte, 12), ReqBody: make([]byte, 1<<20+1), RespHeader: make([]byte, 12)}
	if err := c.Do(context.Background(), call); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("request over MaxBody: got %v, want ErrTooLarge", err)
	}
	// A reply bigger than the caller's buffer fails that call only.
	call = &Call{ReqHeader: make([]byte, 12), ReqBody: make([]byte, 5000), RespHeader: make([]byte, 12), RespBody: make([]byte, 4096)}
	if err := c.Do(context.Background(), call); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("reply over RespBody: got %v, want ErrTooLarge", err)
	}
	call.ReqBody = call.ReqBody[:4096]
	call.RespHeader, call.RespBody = call.RespHeader[:12], call.RespBody[:4096]
	if err := c.Do(context.Background(), call); err != nil {
		t.Fatalf("next call on the same connection: %v", err)
	}
	if err := checkReply(call); err != nil {
		t.Fatal(err)
	}
}

// The server dies mid-call: pending calls fail fast with a connection error;
// after it restarts on the same port the client reconnects.
func TestServerKilledAndRestarted(t *testing.T) { serverKilledAndRestarted(t, nil) }

// serverKilledAndRestarted: calls pending when the server dies fail at
// once, calls fail while it is down, and the client reconnects.
func serverKilledAndRestarted(t *testing.T, poller Poller) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	ts := serveOn(t, l, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, addr, ClientOptions{Backoff: struct{ Min, Max time.Duration }{10 * time.Millisecond, 100 * time.Millisecond}})
	c.SetPoller(poller)

	const n = 8
	errs := make(chan error, n)
	for i := range n {
		call := &Call{ReqHeader: delayHeader(make([]byte, 12), uint64(i), 10*time.Second), RespHeader: make([]byte, 12),
			Done: func(call *Call) { errs <- call.Err }}
		c.Go(call)
	}
	time.Sleep(100 * time.Millisecond) // let the calls reach the handler
	start := time.Now()
	ts.Close()
	for range n {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrConnection) {
				t.Fatalf("pending call: got %v, want ErrConnection", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("pending calls did not fail after the server died")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("pending calls failed after %v", d)
	}
	// Down: calls fail (dial refused, or fast during backoff).
	call := &Call{ReqHeader: make([]byte, 12), ReqBody: []byte("x"), RespHeader: make([]byte, 12), RespBody: make([]byte, 8)}
	if err := c.Do(context.Background(), call); !errors.Is(err, ErrConnection) {
		t.Fatalf("call while down: got %v, want ErrConnection", err)
	}

	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("relisten on %s: %v", addr, err)
	}
	serveOn(t, l2, checksumHandler{}, ServerOptions{})
	waitFor(t, "reconnect", 5*time.Second, func() bool {
		call.RespHeader, call.RespBody = call.RespHeader[:12], call.RespBody[:8]
		return c.Do(context.Background(), call) == nil
	})
	if err := checkReply(call); err != nil {
		t.Fatal(err)
	}
}

// Nothing listens: calls fail with ErrConnection, and quickly during backoff.
func TestDialFailureBackoff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newTestClient(t, addr, ClientOptions{Backoff: struct{ Min, Max time.Duration }{time.Second, 2 * time.Second}})
	call := &Call{ReqHeader: []byte("x")}
	if err := c.Do(context.Background(), call); !errors.Is(err, ErrConnection) {
		t.Fatalf("first call: got %v, want ErrConnection", err)
	}
	start := time.Now()
	if err := c.Do(context.Background(), call); !errors.Is(err, ErrConnection) {
		t.Fatalf("call during backoff: got %v, want ErrConnection", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("call during backoff took %v, want a fast failure", d)
	}
}

// Shutdown waits for a slow handler; its caller gets the reply, then Serve
// returns ErrServerClosed and new calls fail.
func TestShutdownDrainsInFlight(t *testing.T) {
	entered := make(chan struct{}, 1)
	ts := startServer(t, HandlerFunc(func(ctx context.Context, req *Request, resp *Response) error {
		entered <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		resp.Body = append(resp.Buf(0), req.Body...)
		return nil
	}), ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{})
	call := &Call{ReqBody: []byte("drain me"), RespBody: make([]byte, 16)}
	got := make(chan error, 1)
	go func() { got <- c.Do(context.Background(), call) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-got; err != nil || string(call.RespBody) != "drain me" {
		t.Fatalf("in-flight call during Shutdown: %q, %v", call.RespBody, err)
	}
	select {
	case err := <-ts.served:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	call.RespBody = call.RespBody[:16]
	if err := c.Do(context.Background(), call); !errors.Is(err, ErrConnection) {
		t.Fatalf("call after Shutdown: got %v, want ErrConnection", err)
	}
}

// Shutdown gives up at its context's deadline and closes everything.
func TestShutdownContextExpires(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{}, 1)
	ts := startServer(t, HandlerFunc(func(ctx context.Context, req *Request, resp *Response) error {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}), ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{})
	got := make(chan error, 1)
	go func() { got <- c.Do(context.Background(), &Call{}) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: got %v, want DeadlineExceeded", err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, ErrConnection) {
			t.Fatalf("call cut by Close: got %v, want ErrConnection", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("call not failed after forced shutdown")
	}
}

// Client.Close fails pending calls with ErrClosed at once, and later calls too.
func TestClientCloseFailsPending(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	c := newTestClient(t, ts.addr, ClientOptions{})
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		c.Go(&Call{ReqHeader: delayHeader(make([]byte, 12), uint64(i), 5*time.Second), Done: func(call *Call) { errs <- call.Err }})
	}
	time.Sleep(50 * time.Millisecond)
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close hung")
	}
	for range n {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("pending call: got %v, want ErrClosed", err)
		}
	}
	if err := c.Do(context.Background(), &Call{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: got %v, want ErrClosed", err)
	}
}
