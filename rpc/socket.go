package rpc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// socket is a connected TCP socket that the Go netpoller does not watch.
// A connection whose replies a Poller reads must not stay in the netpoller:
// its epoll would wake a thread for every reply that arrives, only to find
// no goroutine waiting, and undo the point of the poller. A goroutine that
// must wait on a socket (the writer when the socket is full, a reader
// after the poller stopped) waits in poll(2) instead.
type socket struct {
	fd          int
	mu          sync.RWMutex // held shared by each system call on fd, exclusively to close it
	closed      atomic.Bool
	readStopped atomic.Bool // SetReadDeadline passed: reads fail, writes go on
	local       net.Addr
	remote      net.Addr
}

// detach takes conn's socket out of the netpoller: it keeps a duplicate of
// the descriptor and closes conn, which removes the original from the
// netpoller's epoll without closing the connection.
func detach(conn net.Conn) (*socket, error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("not a TCP connection (%T)", conn)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(f uintptr) { fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, os.NewSyscallError("dup", dupErr)
	}
	s := &socket{fd: fd, local: conn.LocalAddr(), remote: conn.RemoteAddr()}
	conn.Close()
	return s, nil
}

// await runs try until it reports done, waiting in poll(2) for events
// between attempts, unless the socket is closed.
func (s *socket) await(events int16, try func(fd uintptr) bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for {
		if s.closed.Load() {
			return net.ErrClosed
		}
		if events&unix.POLLIN != 0 && s.readStopped.Load() {
			return os.ErrDeadlineExceeded
		}
		if try(uintptr(s.fd)) {
			return nil
		}
		pfd := []unix.PollFd{{Fd: int32(s.fd), Events: events}}
		if _, err := unix.Poll(pfd, -1); err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
	}
}

func (s *socket) Read(p []byte) (n int, err error) {
	if werr := s.await(unix.POLLIN, func(fd uintptr) bool {
		n, err = unix.Read(int(fd), p)
		return err != unix.EAGAIN && err != unix.EINTR
	}); werr != nil {
		return 0, werr
	}
	if err != nil {
		return 0, os.NewSyscallError("read", err)
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Write is for completeness (net.Conn): the client writes through the
// RawConn with writev.
func (s *socket) Write(p []byte) (int, error) {
	bufs := net.Buffers{p}
	var vw vecWriter
	if err := vw.write(socketRaw{s}, &bufs, true); err != nil {
		return len(p) - bufsLen(bufs), err
	}
	return len(p), nil
}

// Close shuts the connection down, which wakes every waiter in poll(2)
// (and a Poller's pending watch), then closes the descriptor once no
// system call uses it.
func (s *socket) Close() error {
	if s.closed.Swap(true) {
		return net.ErrClosed
	}
	unix.Shutdown(s.fd, unix.SHUT_RDWR)
	s.mu.Lock()
	defer s.mu.Unlock()
	return unix.Close(s.fd)
}

func (s *socket) LocalAddr() net.Addr  { return s.local }
func (s *socket) RemoteAddr() net.Addr { return s.remote }

var errNoDeadlines = errors.New("rpc: a detached socket takes no deadline but a read deadline in the past")

// Deadlines are not needed after the handshake: calls carry their own and
// stall detection closes the socket. The one exception is what a server's
// Shutdown does to wake its readers, a read deadline that has passed:
// reads then fail with os.ErrDeadlineExceeded, and a reader waiting in
// poll(2) is woken by shutting the socket's read side, while replies can
// still be written.
func (s *socket) SetReadDeadline(t time.Time) error {
	if t.IsZero() || t.After(time.Now()) {
		return errNoDeadlines
	}
	s.readStopped.Store(true)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return net.ErrClosed
	}
	return os.NewSyscallError("shutdown", unix.Shutdown(s.fd, unix.SHUT_RD))
}

func (s *socket) SetDeadline(time.Time) error      { return errNoDeadlines }
func (s *socket) SetWriteDeadline(time.Time) error { return errNoDeadlines }

// SyscallConn makes socket a syscall.Conn, for rawConn.
func (s *socket) SyscallConn() (syscall.RawConn, error) { return socketRaw{s}, nil }

// socketRaw is the syscall.RawConn of a socket: its Read and Write wait in
// poll(2) where a net.Conn's wait in the netpoller.
type socketRaw struct{ s *socket }

func (r socketRaw) Control(f func(fd uintptr)) error {
	return r.s.await(0, func(fd uintptr) bool { f(fd); return true })
}
func (r socketRaw) Read(f func(fd uintptr) bool) error  { return r.s.await(unix.POLLIN, f) }
func (r socketRaw) Write(f func(fd uintptr) bool) error { return r.s.await(unix.POLLOUT, f) }

func bufsLen(b net.Buffers) int {
	n := 0
	for _, p := range b {
		n += len(p)
	}
	return n
}
