package rpc

import (
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/internal/schedyield"
)

// readPoller is the one thread of the process that reads the server
// connections taken out of the Go netpoller (ServerOptions.DetachReaders).
// It waits in poll(2) on all their sockets at once and, for each that is
// readable, reads what it holds and serves the requests: inline ones on
// the spot, the rest through the connection's workers. A request thus
// wakes this thread straight into the reader, without the netpoller's
// park and wake-up, for every connection of the process, where a thread
// per connection could serve only GOMAXPROCS-1 of them (each waiting
// reader keeps a P).
//
// Nothing on this thread may wait for one connection, since all the
// others would wait with it: reads never block, replies it writes itself
// go out without waiting for room (a full socket hands the rest to a
// goroutine), and a connection whose in-flight slots are all taken is
// left out of the poll until a reply frees one.
type readPoller struct {
	wakeFd atomic.Int32 // eventfd in every poll: added, resumed, stopped or closed; -1 until made

	mu      sync.Mutex
	running bool
	added   []*serverConn // to watch
	resumed []*serverConn // a slot freed

	// The thread's own.
	conns []*serverConn
	pfds  []unix.PollFd
	idx   []int // pfds[i+1] is conns[idx[i]]
}

var serverPoller readPoller

func init() { serverPoller.wakeFd.Store(-1) }

// init makes the poller's eventfd, once; a connection is detached only
// after it succeeded.
func (p *readPoller) init() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wakeFd.Load() >= 0 {
		return nil
	}
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	p.wakeFd.Store(int32(fd))
	return nil
}

// watch makes the poller read sc (after init), starting its thread if
// need be.
func (p *readPoller) watch(sc *serverConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.added = append(p.added, sc)
	if !p.running {
		p.running = true
		go p.run()
	} else {
		p.wake()
	}
}

// resume asks the poller to read sc again: a reply freed one of its slots.
func (p *readPoller) resume(sc *serverConn) {
	p.mu.Lock()
	p.resumed = append(p.resumed, sc)
	p.mu.Unlock()
	p.wake()
}

// wake interrupts the poll, so the thread looks at what changed: the
// connections added or resumed, a server stopping, a socket closed.
func (p *readPoller) wake() {
	if fd := p.wakeFd.Load(); fd >= 0 {
		one := [8]byte{1}
		unix.Write(int(fd), one[:]) // EAGAIN: the counter is already set
	}
}

func (p *readPoller) run() {
	var yield schedyield.Pacer
	var resumed []*serverConn
	for {
		// It waits in a system call, never in the scheduler: it yields
		// now and then (see schedyield).
		if yield.Due() {
			runtime.Gosched()
		}
		p.mu.Lock()
		added := len(p.added)
		p.conns = append(p.conns, p.added...)
		clear(p.added)
		p.added = p.added[:0]
		resumed, p.resumed = p.resumed, resumed[:0]
		if len(p.conns) == 0 {
			p.running = false // watch starts a new thread
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()

		// New and resumed connections are read at once: they may hold
		// requests already (the poll reports only what comes after).
		for _, sc := range p.conns[len(p.conns)-added:] {
			p.serve(sc)
		}
		for i, sc := range resumed {
			p.serve(sc) // reads EAGAIN if it was not paused after all
			resumed[i] = nil
		}
		p.dropEnded()

		p.pfds = append(p.pfds[:0], unix.PollFd{Fd: p.wakeFd.Load(), Events: unix.POLLIN})
		p.idx = p.idx[:0]
		for i, sc := range p.conns {
			// A closed socket's descriptor may be another file's by
			// now: the check below ends the connection instead.
			if !sc.paused.Load() && !sc.sock.closed.Load() {
				p.pfds = append(p.pfds, unix.PollFd{Fd: int32(sc.sock.fd), Events: unix.POLLIN})
				p.idx = append(p.idx, i)
			}
		}
		if _, err := unix.Poll(p.pfds, -1); err != nil && err != unix.EINTR {
			// Cannot happen with valid arguments; say so and retry,
			// without spinning.
			p.conns[0].s.log.Error().Err(err).Msg("rpc: poll of detached connections failed")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if p.pfds[0].Revents != 0 {
			var b [8]byte
			unix.Read(int(p.pfds[0].Fd), b[:])
		}
		for i, pfd := range p.pfds[1:] {
			if pfd.Revents != 0 {
				p.serve(p.conns[p.idx[i]])
			}
		}
		// A server stopping, or a socket closed, wakes the poll: its
		// connections end, paused or not.
		for _, sc := range p.conns {
			if !sc.pollEnded && (sc.s.isStopping() || sc.sock.closed.Load()) {
				p.serve(sc)
			}
		}
		p.dropEnded()
	}
}

// serve reads sc and hands it back to its serve goroutine if its reading
// ended.
func (p *readPoller) serve(sc *serverConn) {
	if sc.pollEnded {
		return
	}
	if ended, err := sc.pollReady(); ended {
		sc.pollEnded = true
		sc.readEnded <- err
	}
}

// dropEnded forgets the connections whose reading ended.
func (p *readPoller) dropEnded() {
	n := 0
	for _, sc := range p.conns {
		if !sc.pollEnded {
			p.conns[n] = sc
			n++
		}
	}
	clear(p.conns[n:])
	p.conns = p.conns[:n]
}

// maxReadsPerTurn bounds the reads of one connection before the poller
// turns to the others: up to 1 MiB with a 64 KiB staging buffer.
const maxReadsPerTurn = 16

// pollReady runs on the poller's thread when sc's socket is readable (or
// may be): it reads what the socket holds, without waiting, and serves
// the requests read whole. It reports whether the reading ended, and why
// (nil: the server stopped). A connection with no slot free stops early,
// paused (see takeSlot).
func (sc *serverConn) pollReady() (ended bool, err error) {
	r := sc.reader
	if sc.s.isStopping() {
		// Shutdown: what is staged whole is still served.
		err = r.parse()
		sc.flushHeld()
		if err == nil || err == errNoSlot {
			err = errStopped
		}
		return true, r.end(err)
	}
	// Requests staged while the connection was paused come first.
	err = r.parse()
	for reads := 0; err == nil; reads++ {
		if reads == maxReadsPerTurn {
			// A peer that keeps its socket full must not keep the
			// thread from the others: the poll reports it again at
			// once.
			sc.flushHeld()
			return false, nil
		}
		p := r.next()
		var n int
		n, err = sc.rr.read(sc.rc, p, false)
		switch {
		case err == unix.EAGAIN:
			sc.flushHeld()
			return false, nil
		case err == nil && n == 0:
			err = io.EOF
		case err == nil:
			if err = r.got(n); err == nil && n < len(p) {
				// A short read emptied the socket (see readReady).
				sc.flushHeld()
				return false, nil
			}
		}
	}
	if err == errNoSlot {
		return false, nil
	}
	sc.flushHeld()
	return true, r.end(readError(err))
}
