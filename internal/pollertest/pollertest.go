package pollertest

import (
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Poller watches each socket with poll(2) on a goroutine of its own,
// standing in for the ublk queue thread's io_uring in host tests.
type Poller struct {
	mu      sync.Mutex
	stopped bool
	quit    chan struct{}
	wg      sync.WaitGroup
	Watched atomic.Int64 // sockets taken
	Wakes   atomic.Int64 // ready(true) calls
	Active  atomic.Int64 // sockets still watched
}

// New returns a poller that stops when the test ends.
func New(t testing.TB) *Poller {
	p := &Poller{quit: make(chan struct{})}
	t.Cleanup(p.Stop)
	return p
}

// WatchSocket implements rpc.Poller and backend.SocketPoller.
func (p *Poller) WatchSocket(fd int, ready func(ok bool) bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.Watched.Add(1)
	p.Active.Add(1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.Active.Add(-1)
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}} // made once: tests count allocations
		for {
			select {
			case <-p.quit:
				ready(false)
				return
			default:
			}
			pfd[0].Revents = 0
			if n, err := unix.Poll(pfd, 20); err != nil || n == 0 {
				continue
			}
			p.Wakes.Add(1)
			if !ready(true) {
				return
			}
		}
	}()
	return true
}

// Stop hands every socket back (ready(false)) and takes no more.
func (p *Poller) Stop() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.quit)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
