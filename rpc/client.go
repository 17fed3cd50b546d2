package rpc

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Client defaults, used for zero ClientOptions fields.
const (
	DefaultDialTimeout       = 5 * time.Second
	DefaultCallTimeout       = 30 * time.Second
	DefaultBackoffMin        = 50 * time.Millisecond
	DefaultBackoffMax        = 5 * time.Second
	DefaultTimeoutResolution = 10 * time.Millisecond
	// DefaultMinStallTimeout is the least default StallTimeout.
	DefaultMinStallTimeout = 10 * time.Second
)

// ClientOptions configures a Client. Zero fields take the defaults.
type ClientOptions struct {
	// Conns is the number of connections to the peer (default 1); calls are
	// spread over them round robin. Use a few where one connection cannot
	// fill the link.
	Conns       int
	DialTimeout time.Duration
	// CallTimeout is the deadline of a call that has none (Call.Deadline and
	// the context of Do both unset).
	CallTimeout time.Duration
	// MaxHeader and MaxBody bound request and reply frames (defaults
	// DefaultMaxHeader and DefaultMaxBody).
	MaxHeader, MaxBody int
	// Backoff bounds the wait between failed dials; it doubles from Min up to
	// Max and resets after a successful dial.
	Backoff struct{ Min, Max time.Duration }
	Logger  zerolog.Logger
	// TimeoutResolution is the least time between two passes that check
	// pending calls against their deadlines (default 10ms): a call fails
	// at most this late.
	TimeoutResolution time.Duration
	// StallTimeout is how long a connection may receive nothing at all
	// while requests sent on it await replies before it is declared stuck
	// and closed (failing its pending calls with ErrConnection). Default:
	// CallTimeout, at least DefaultMinStallTimeout. Only total silence
	// counts: a peer that answers anything is alive, so one slow call never
	// cuts the calls sharing its connection (it just times out alone). A
	// closed connection also releases the buffers of expired calls whose
	// request is stuck in a blocked write, so their Done is held back at
	// most this long.
	StallTimeout time.Duration

	// Secret is the cluster secret (see ReadSecretFile): every connection
	// proves it holds it, and requires the server to prove the same, before
	// sending any request. Nil means no authentication; a server with a
	// secret then refuses the connection.
	Secret []byte
	// TLSConfig, if set, runs every connection over TLS (the authentication
	// handshake then runs inside it). Without ServerName the host of the
	// address is verified.
	TLSConfig *tls.Config
	// HandshakeTimeout bounds the TLS and authentication handshakes of a
	// connection (default DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration

	authRand io.Reader // handshake nonces in tests; crypto/rand otherwise
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Conns <= 0 {
		o.Conns = 1
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.Backoff.Min <= 0 {
		o.Backoff.Min = DefaultBackoffMin
	}
	if o.Backoff.Max < o.Backoff.Min {
		o.Backoff.Max = max(DefaultBackoffMax, o.Backoff.Min)
	}
	if o.TimeoutResolution <= 0 {
		o.TimeoutResolution = DefaultTimeoutResolution
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = max(o.CallTimeout, DefaultMinStallTimeout)
	}
	return o
}

// Call is one request and, once Done runs, its reply. A Call may be reused
// for a new request as soon as its Done has been called (or Do returned).
type Call struct {
	// ReqHeader and ReqBody are sent as they are (writev, not copied) and
	// must stay untouched until Done. ReqBody may be nil.
	ReqHeader []byte
	ReqBody   []byte
	// RespHeader and RespBody are buffers the caller provides; the reply is
	// read directly into them and, on success, they are resliced to the
	// reply's lengths. A reply longer than their capacity fails the call with
	// ErrTooLarge. They must not overlap the request buffers.
	RespHeader []byte
	RespBody   []byte
	// Deadline is when the call fails with ErrTimeout; zero means
	// ClientOptions.CallTimeout from now.
	Deadline time.Time
	// Done is called exactly once, on an internal goroutine, after Err is
	// set. It must not block; it may submit the Call again.
	Done func(*Call)
	// Err is nil on success, or ErrTimeout, ErrClosed, an error wrapping
	// ErrConnection or ErrTooLarge, or a *RemoteError.
	Err error

	// Bookkeeping of the current submission, written only by the submitting
	// goroutine, so a Call is reused without allocating.
	cc      *clientConn
	id      uint64
	waiting bool          // submitted by Do, which waits on wait
	wait    chan struct{} // allocated once per Call by its first Do
}

// fire reports the call's completion. The transport no longer touches the
// Call or its buffers.
func (call *Call) fire() {
	waiting := call.waiting // read first: Done may resubmit the Call
	if call.Done != nil {
		call.Done(call)
	}
	if waiting {
		call.wait <- struct{}{}
	}
}

// failNow completes a call that never entered a connection, on its own
// goroutine as Done's contract requires.
func (call *Call) failNow(err error) {
	call.Err = err
	go call.fire()
}

// Client sends calls to one peer over a small pool of pipelined connections.
type Client struct {
	addr  string
	opts  ClientOptions
	lim   frameLimits
	log   zerolog.Logger
	conns []*clientConn

	tlsConfig *tls.Config // opts.TLSConfig with the server name to verify
	next      atomic.Uint32
	closed    atomic.Bool

	// nextScan is when the deadline scanner runs next (unix ns), or
	// scanIdle or scanPassing; a call due earlier kicks it (scanKick).
	nextScan atomic.Int64
	poller   atomic.Pointer[Poller] // see SetPoller
	scanKick chan struct{}
	scans    atomic.Int64 // deadline passes made (tests)

	dialCtx    context.Context // cancelled by Close so no dial outlives it
	cancelDial context.CancelFunc
	stopScan   chan struct{}
	wg         sync.WaitGroup // dialers, readers, writers, the deadline scanner
}

// NewClient returns a client for the TCP address addr. It dials lazily, on
// the first call, and redials with backoff after failures.
func NewClient(addr string, opts ClientOptions) *Client {
	opts = opts.withDefaults()
	c := &Client{
		addr:      addr,
		opts:      opts,
		lim:       frameLimits{maxHeader: opts.MaxHeader, maxBody: opts.MaxBody}.withDefaults(),
		log:       opts.Logger.With().Str("peer", addr).Logger(),
		stopScan:  make(chan struct{}),
		scanKick:  make(chan struct{}, 1),
		tlsConfig: clientTLSConfig(opts.TLSConfig, addr),
	}
	c.dialCtx, c.cancelDial = context.WithCancel(context.Background())
	c.conns = make([]*clientConn, opts.Conns)
	for i := range c.conns {
		c.conns[i] = &clientConn{c: c}
	}
	c.wg.Add(1)
	go c.scanDeadlines()
	return c
}

// Addr is the peer's address.
func (c *Client) Addr() string { return c.addr }

// Go starts a call and returns at once; call.Done runs when it completes.
// The connection's writer goroutine sends it, together with whatever else
// is queued by then.
func (c *Client) Go(call *Call) {
	c.submit(call, time.Time{}, false, true)
}

// Queue is Go for a batch: it queues the call and does not wake the
// writer goroutine, so the caller must call Flush once it has queued the
// batch, as the block layer plugs and unplugs. Flush then writes the batch
// itself, in one writev and with no hand-off to another thread, which is
// what a request costs at queue depth 1. (A call left queued is still
// sent, by the deadline scanner within about a second.)
func (c *Client) Queue(call *Call) {
	c.submit(call, time.Time{}, false, false)
}

// Flush sends the calls queued so far. It never blocks: what the socket
// does not take at once (or all of it, over TLS) goes to the writer
// goroutine.
func (c *Client) Flush() {
	for _, cc := range c.conns {
		cc.flush()
	}
}

// Do makes a call and waits for it. The call's deadline is the earliest of
// call.Deadline (or CallTimeout when unset) and ctx's deadline; if ctx is
// cancelled first the call completes with ctx.Err(). When Do returns the
// transport no longer uses the Call.
func (c *Client) Do(ctx context.Context, call *Call) error {
	if call.wait == nil {
		call.wait = make(chan struct{}, 1)
	}
	ctxDeadline, _ := ctx.Deadline()
	c.submit(call, ctxDeadline, true, true)
	select {
	case <-call.wait:
	case <-ctx.Done():
		c.cancel(call, ctx.Err())
		<-call.wait
	}
	return call.Err
}

func (c *Client) submit(call *Call, ctxDeadline time.Time, waiting, wake bool) {
	call.Err, call.cc, call.waiting = nil, nil, waiting
	if c.closed.Load() {
		call.failNow(ErrClosed)
		return
	}
	if len(call.ReqHeader) > c.lim.maxHeader || len(call.ReqBody) > c.lim.maxBody {
		call.failNow(fmt.Errorf("%w: request header %d / body %d bytes, limits %d / %d",
			ErrTooLarge, len(call.ReqHeader), len(call.ReqBody), c.lim.maxHeader, c.lim.maxBody))
		return
	}
	now := time.Now()
	deadline := call.Deadline
	if deadline.IsZero() {
		deadline = now.Add(c.opts.CallTimeout)
	}
	if !ctxDeadline.IsZero() && ctxDeadline.Before(deadline) {
		deadline = ctxDeadline
	}
	cc := c.conns[0]
	if len(c.conns) > 1 {
		cc = c.conns[c.next.Add(1)%uint32(len(c.conns))]
	}
	cc.enqueue(call, deadline, now, wake)
}

// cancel completes call with err if it is still pending.
func (c *Client) cancel(call *Call, err error) {
	if call.cc == nil {
		return // failed before entering a connection; already completing
	}
	if fired := call.cc.finishCall(call, err); fired != nil {
		go fired.fire()
	}
}

// Close fails every pending call with ErrClosed, closes the connections and
// waits for the client's goroutines (so it must not be called from a Done
// callback). Calls made afterwards fail with ErrClosed.
func (c *Client) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.cancelDial()
	close(c.stopScan)
	var fired []*Call
	for _, cc := range c.conns {
		fired = cc.close(fired)
	}
	if len(fired) > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			fireAll(fired)
		}()
	}
	c.wg.Wait()
	return nil
}

// scanDeadlines expires calls past their deadlines (and drops stalled
// connections), waking only when the earliest of them is due, so no timer
// is allocated per call and a busy client costs a wakeup per call timeout,
// not one per tick (on a small machine a 10 ms ticker per client is
// hundreds of context switches a second). A call due before the planned
// pass kicks it (noteDeadline).
func (c *Client) scanDeadlines() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var fired []*Call
	for {
		select {
		case <-c.stopScan:
			return
		case <-c.scanKick:
		case <-timer.C:
		}
		c.scans.Add(1)
		c.nextScan.Store(scanPassing) // a call made during the pass kicks another
		now := time.Now()
		var next time.Time
		for _, cc := range c.conns {
			var due time.Time
			fired, due = cc.expire(now, fired[:0])
			fireAll(fired)
			clear(fired)
			if !due.IsZero() && (next.IsZero() || due.Before(next)) {
				next = due
			}
		}
		if next.IsZero() {
			c.nextScan.Store(scanIdle)
			continue
		}
		wait := min(max(next.Sub(now), c.opts.TimeoutResolution), maxScanSleep)
		c.nextScan.Store(now.Add(wait).UnixNano())
		timer.Reset(wait)
	}
}

// maxScanSleep bounds the scanner's sleep while calls are pending, so a
// call Queued and never Flushed is still sent within about this long.
const maxScanSleep = time.Second

// nextScan values besides a planned pass's time (unix ns).
const (
	scanIdle    = 0  // nothing pending: no pass planned
	scanPassing = -1 // a pass is running
)

// noteDeadline kicks the deadline scanner if a call due at deadline would
// otherwise wait past it.
func (c *Client) noteDeadline(deadline time.Time) {
	if at := c.nextScan.Load(); at <= 0 || deadline.UnixNano() < at {
		select {
		case c.scanKick <- struct{}{}:
		default:
		}
	}
}

func fireAll(calls []*Call) {
	for _, call := range calls {
		call.fire()
	}
}
