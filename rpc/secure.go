package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// refusalLogBurst and refusalLogPeriod rate-limit the server's log lines
// about refused connections, so a scanner or a misconfigured client cannot
// flood the log.
const (
	refusalLogBurst  = 5
	refusalLogPeriod = 10 * time.Second
)

// secured says whether connections to or from this side go through a
// handshake (TLS, the cluster secret or both).
func secured(secret []byte, cfg *tls.Config) bool { return len(secret) > 0 || cfg != nil }

// handshakeTimeout is d, or the default when d is not set.
func handshakeTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultHandshakeTimeout
	}
	return d
}

// newRefusalLog is the server's rate-limited logger for refused peers.
func newRefusalLog(log zerolog.Logger) zerolog.Logger {
	return log.Sample(&zerolog.BurstSampler{Burst: refusalLogBurst, Period: refusalLogPeriod})
}

// acceptHandshake runs the server's side of the TLS and authentication
// handshakes of sc within the handshake timeout. On success the
// connection's deadlines are cleared again, unless the server started
// stopping meanwhile (then the read deadline Shutdown set stays).
func (sc *serverConn) acceptHandshake() error {
	s := sc.s
	conn := sc.conn
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout(s.opts.HandshakeTimeout))); err != nil {
		return fmt.Errorf("set handshake deadline: %w", err)
	}
	if s.isStopping() {
		return ErrServerClosed
	}
	if tc, ok := conn.(*tls.Conn); ok {
		if err := tc.HandshakeContext(s.ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
	}
	if len(s.opts.Secret) > 0 {
		binding, err := tlsBinding(conn)
		if err != nil {
			return err
		}
		a := authPeer{secret: s.opts.Secret, binding: binding, rand: s.opts.authRand}
		if err := a.serverHandshake(conn); err != nil {
			return err
		}
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clear handshake deadline: %w", err)
	}
	if s.isStopping() {
		return ErrServerClosed
	}
	return nil
}

// logRefusal logs, rate-limited, why a connection was closed in its
// handshake. A peer that went away during Shutdown is not worth a line.
func (sc *serverConn) logRefusal(err error) {
	if errors.Is(err, ErrServerClosed) || (errors.Is(err, os.ErrDeadlineExceeded) && sc.s.isStopping()) {
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("no complete handshake within %v: %w", handshakeTimeout(sc.s.opts.HandshakeTimeout), err)
	}
	sc.s.refusalLog.Warn().Err(err).Stringer("remote", sc.remote).Msg("rpc: refused connection")
}

// dialHandshake runs the client's side of the TLS and authentication
// handshakes on a new connection within the handshake timeout, and returns
// the connection to use (the TLS one with TLS on).
func (c *Client) dialHandshake(ctx context.Context, conn net.Conn) (net.Conn, error) {
	timeout := handshakeTimeout(c.opts.HandshakeTimeout)
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("set handshake deadline: %w", err)
	}
	// Client.Close cancels ctx: end the handshake then, not at its deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if c.tlsConfig != nil {
		tc := tls.Client(conn, c.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	if len(c.opts.Secret) > 0 {
		binding, err := tlsBinding(conn)
		if err != nil {
			return nil, err
		}
		a := authPeer{secret: c.opts.Secret, binding: binding, rand: c.opts.authRand}
		if err := a.clientHandshake(conn); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("%w: no handshake from the server within %v (does it run without a cluster secret?)", ErrAuth, timeout)
			}
			return nil, err
		}
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear handshake deadline: %w", err)
	}
	return conn, nil
}

// clientTLSConfig is a copy of cfg that verifies the server's name against
// the host of addr when cfg names no server.
func clientTLSConfig(cfg *tls.Config, addr string) *tls.Config {
	if cfg == nil {
		return nil
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	return cfg
}
