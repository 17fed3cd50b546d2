package rpc

import (
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// Poller is a thread that can watch sockets for the client: the ublk queue
// thread, which already sleeps in io_uring_enter for its own completions.
// A reply then wakes that thread directly and is parsed and completed on
// it, instead of waking the Go netpoller, a reader goroutine and then the
// queue thread (measured on the lab guest, 4 KiB reads at queue depth 1:
// the daemon's context switches per request went from 4.7-5.8 to 3.3-3.6).
//
// WatchSocket asks the poller to call ready(true) on its thread each time
// fd is readable, until ready returns false. It reports false if the poller
// no longer takes sockets (then nothing is called). A poller that stops
// calls ready(false) once for every socket it still watches, and forgets
// it: the client then reads that socket on a goroutine again. ready never
// blocks; it reads only what the socket holds.
type Poller interface {
	WatchSocket(fd int, ready func(ok bool) bool) bool
}

// SetPoller makes p read the replies of the client's plain TCP connections
// (TLS connections keep their reader goroutine). Set it once; nil is
// ignored. A connection open now is still known to the Go netpoller,
// which would wake a thread for each of its replies whoever reads them:
// it is closed as soon as it is idle (now, or when its last call ends and
// its writer lets go), and the next call dials one the poller reads.
func (c *Client) SetPoller(p Poller) {
	if p == nil || !c.poller.CompareAndSwap(nil, &p) {
		return
	}
	for _, cc := range c.conns {
		cc.mu.Lock()
		if s := cc.sess; s != nil && s.raw != nil {
			s.retire = true
			cc.retireIfIdleLocked()
		}
		cc.mu.Unlock()
	}
}

// watch hands s's reading to the client's poller, if it has one and s is a
// plain socket, and reports whether it did.
func (cc *clientConn) watch(s *session) bool {
	p := cc.c.poller.Load()
	if p == nil || s.raw == nil {
		return false
	}
	var fd int
	if s.raw.Control(func(f uintptr) { fd = int(f) }) != nil {
		return false
	}
	return (*p).WatchSocket(fd, func(ok bool) bool { return cc.readReady(s, ok) })
}

// readReady runs on the poller's thread when s's socket is readable: it
// reads and parses everything the socket holds, without waiting. It
// reports whether the poller should keep watching.
func (cc *clientConn) readReady(s *session, ok bool) bool {
	if !ok {
		// The poller stopped; a goroutine carries on, mid-frame if need be.
		go cc.readLoop(s)
		return false
	}
	r := s.reader
	for {
		p := r.next()
		n, err := s.pollRead.read(s.raw, p, false) // never wait: the poller calls again
		switch {
		case err == unix.EAGAIN:
			return true
		case err == nil && n == 0:
			err = io.EOF
		case err == nil:
			s.lastRecv.Store(time.Now().UnixNano())
			if err = r.got(n); err == nil && n < len(p) {
				// A stream socket's read takes all it holds up to
				// len(p), so a short one emptied it: the next read
				// would only say EAGAIN. The poll, armed again, reports
				// what comes after (at once if some came meanwhile).
				return true
			}
		}
		if err != nil {
			cc.readFailed(s, readError(err))
			cc.c.wg.Done()
			return false
		}
	}
}
