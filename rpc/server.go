package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// DefaultMaxInFlightPerConn bounds the requests of one connection being
// handled or waiting for their reply to be written.
const DefaultMaxInFlightPerConn = 128

// maxErrorMessage bounds the handler error string sent in an error reply.
const maxErrorMessage = 4 << 10

// Handler serves requests.
type Handler interface {
	// ServeRPC handles one request; it may run concurrently with others
	// (at most MaxInFlightPerConn per connection). It fills resp; returning
	// an error sends an error reply instead, which the client sees as a
	// *RemoteError. ctx is cancelled when the server is closed.
	ServeRPC(ctx context.Context, req *Request, resp *Response) error
}

// InlineHandler is a Handler that can serve some requests on the
// connection's reader goroutine itself: no hand-off to a worker goroutine,
// which on a small machine is most of what such a request costs. The
// reader serves a batch of them in a row, holding their replies back (up
// to maxHeldReplies) while the next request is already wholly read, so one
// writev answers the batch. While an inline request runs the connection reads
// nothing more, so ServeInline must serve only what it can without
// waiting: data in the page cache, not a disk read, the network, a lock
// held across such a wait, or an fsync.
type InlineHandler interface {
	Handler
	// ServeInline serves req as ServeRPC would, if it can without
	// waiting. served false means it did nothing that counts (resp is
	// reset) and a worker serves the request with ServeRPC instead.
	ServeInline(ctx context.Context, req *Request, resp *Response) (served bool, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request, resp *Response) error

// ServeRPC calls f.
func (f HandlerFunc) ServeRPC(ctx context.Context, req *Request, resp *Response) error {
	return f(ctx, req, resp)
}

// Request is a received request. It and its buffers are valid only during
// ServeRPC.
type Request struct {
	Header, Body []byte
	RemoteAddr   net.Addr
}

// Response is the reply a handler fills. Header and Body must stay valid
// until the reply has been written, after ServeRPC returns: point them into
// buffers from Buf (or into memory that does not change).
type Response struct {
	Header []byte
	Body   []byte

	call *serverCall
}

// Buf returns an n-byte buffer owned by the server that stays valid until
// this reply has been written, so a handler can read data straight into the
// reply (resp.Body = resp.Buf(n)). Its contents are not zeroed.
func (r *Response) Buf(n int) []byte {
	if r.call == nil {
		return make([]byte, n)
	}
	b := getBuffer(n)
	r.call.respBufs = append(r.call.respBufs, b)
	return b.b
}

// ServerOptions configures a Server. Zero fields take the defaults.
type ServerOptions struct {
	// MaxHeader and MaxBody bound request frames and replies.
	MaxHeader, MaxBody int
	// MaxInFlightPerConn bounds the requests of one connection being handled
	// or waiting to be written; the server stops reading that connection
	// while it is reached.
	MaxInFlightPerConn int
	Logger             zerolog.Logger
	// Context is the parent of the context handed to handlers (default
	// context.Background()); Close cancels the handlers' context.
	Context context.Context

	// Secret is the cluster secret (see ReadSecretFile): a connection is
	// served only after the client proved it holds it; one that does not
	// is closed with nothing sent but the challenge, and logged
	// (rate-limited). Nil means no authentication.
	Secret []byte
	// TLSConfig, if set, serves every connection over TLS (the
	// authentication handshake then runs inside it). It needs a
	// certificate; set ClientCAs and ClientAuth to require client ones.
	TLSConfig *tls.Config
	// HandshakeTimeout bounds the TLS and authentication handshakes of a
	// connection (default DefaultHandshakeTimeout): a peer that stalls in
	// them is closed after it.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the connections in their handshake at once
	// (default DefaultMaxHandshakes); connections beyond it are closed at
	// once.
	MaxHandshakes int
	// DetachReaders reads plain TCP connections on one thread of the
	// process (the readPoller): after the handshake such a connection
	// leaves the Go netpoller, and that thread waits for the requests of
	// all of them in one poll(2), so a request that arrives wakes it
	// straight into the reader, with no trip through the scheduler
	// (measured on the sheep node: a third of the CPU per 4 KiB write).
	// The thread keeps a P while it waits, so on one CPU connections stay
	// in the netpoller.
	DetachReaders bool

	authRand io.Reader // handshake nonces in tests; crypto/rand otherwise
}

// Server serves a Handler on any number of listeners.
type Server struct {
	h      Handler
	inline InlineHandler // h, when it serves requests inline
	opts   ServerOptions
	lim    frameLimits
	log    zerolog.Logger

	ctx    context.Context // handlers' context
	cancel context.CancelFunc

	mu sync.Mutex
	// stopping: Shutdown or Close called: accept and read nothing new.
	// Set under mu, so whoever checks it under mu and then registers a
	// listener or a connection is seen by the stop; loaded without mu by
	// the readers (the readPoller's thread among them).
	stopping  atomic.Bool
	stopCh    chan struct{} // closed when stopping is set
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}

	handshakes chan struct{}  // semaphore of connections in their handshake
	refusalLog zerolog.Logger // rate-limited: refused connections
	connWG     sync.WaitGroup
	closed     atomic.Bool
}

// NewServer returns a server for h.
func NewServer(h Handler, opts ServerOptions) *Server {
	if opts.MaxInFlightPerConn <= 0 {
		opts.MaxInFlightPerConn = DefaultMaxInFlightPerConn
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	if opts.MaxHandshakes <= 0 {
		opts.MaxHandshakes = DefaultMaxHandshakes
	}
	s := &Server{
		h:         h,
		opts:      opts,
		lim:       frameLimits{maxHeader: opts.MaxHeader, maxBody: opts.MaxBody}.withDefaults(),
		log:       opts.Logger,
		stopCh:    make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*serverConn]struct{}),

		handshakes: make(chan struct{}, opts.MaxHandshakes),
		refusalLog: newRefusalLog(opts.Logger),
	}
	s.inline, _ = h.(InlineHandler)
	s.ctx, s.cancel = context.WithCancel(opts.Context)
	return s
}

// Serve accepts connections on l until Shutdown or Close, when it returns
// ErrServerClosed. It closes l before returning.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.stopping.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.isStopping() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("rpc: accept on %s: %w", l.Addr(), err)
			}
			// Out of descriptors or similar: back off and keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Error().Err(err).Dur("retry_in", delay).Msg("rpc: accept failed")
			select {
			case <-time.After(delay):
			case <-s.stopCh:
			}
			continue
		}
		delay = 0
		s.startConn(conn)
	}
}

func (s *Server) isStopping() bool { return s.stopping.Load() }

func (s *Server) startConn(conn net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		conn.Close()
		return
	}
	handshake := secured(s.opts.Secret, s.opts.TLSConfig)
	if handshake {
		select {
		case s.handshakes <- struct{}{}:
		default:
			s.refusalLog.Warn().Stringer("remote", conn.RemoteAddr()).Int("max_handshakes", s.opts.MaxHandshakes).
				Msg("rpc: refused connection: too many connections in their handshake")
			conn.Close()
			return
		}
		if s.opts.TLSConfig != nil {
			conn = tls.Server(conn, s.opts.TLSConfig)
		}
	}
	sc := newServerConn(s, conn)
	sc.handshake = handshake
	s.conns[sc] = struct{}{}
	s.connWG.Add(1)
	go sc.serve()
}

func (s *Server) removeConn(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
	s.connWG.Done()
}

// stopLocked stops accepting and reading new requests.
func (s *Server) stopLocked() {
	if !s.stopping.Swap(true) {
		close(s.stopCh)
	}
	for l := range s.listeners {
		l.Close()
	}
}

// Shutdown stops accepting connections and reading requests, lets the
// requests already read finish and their replies flush, then closes the
// connections. A request still in transit may be dropped; its caller gets
// a connection error. If ctx ends first, Shutdown closes the server and
// returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopLocked()
	now := time.Now()
	for sc := range s.conns {
		// Wake readers blocked in Read; what is already buffered is served.
		sc.conn.SetReadDeadline(now)
	}
	s.mu.Unlock()
	serverPoller.wake() // it ends the detached connections of a stopped server

	drained := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(drained)
	}()
	select {
	case <-drained:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes the listeners and all connections at once and cancels the
// handlers' context. Replies of requests still being handled are dropped.
func (s *Server) Close() error {
	s.mu.Lock()
	s.stopLocked()
	for sc := range s.conns {
		sc.conn.Close()
	}
	s.mu.Unlock()
	serverPoller.wake() // the detached connections end
	s.cancel()
	return nil
}
