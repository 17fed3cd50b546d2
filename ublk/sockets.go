package ublk

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/backend"
)

// kindSocket: a poll of a socket a PolledBackend watches on this ring; the
// low bits are the watch's slot.
const kindSocket = 4 << 32

// socketWatch is one socket a backend asked the queue to watch.
type socketWatch struct {
	fd    int
	ready func(ok bool) bool // nil: the slot is free
}

// socketWatches is the queue's side of backend.SocketPoller: the sockets
// whose replies the queue thread reads itself, woken by a poll on its own
// ring, so a reply costs no wakeup of another thread (see rpc.Poller).
type socketWatches struct {
	// Under queue.watchMu: watches asked for and not yet armed, and
	// whether the queue stopped taking them.
	added   []socketWatch
	stopped bool
	// Queue thread only: the armed watches by slot, and the free slots.
	slots []socketWatch
	free  []int
}

var _ backend.SocketPoller = (*queue)(nil)

// WatchSocket implements backend.SocketPoller; it may run on any goroutine.
// The queue thread arms the poll in its next round.
func (q *queue) WatchSocket(fd int, ready func(ok bool) bool) bool {
	q.watchMu.Lock()
	if q.sockets.stopped {
		q.watchMu.Unlock()
		return false
	}
	q.sockets.added = append(q.sockets.added, socketWatch{fd: fd, ready: ready})
	q.watchMu.Unlock()
	q.disp.wake()
	return true
}

// armNewSockets arms a poll for each socket watched since the last round.
func (q *queue) armNewSockets() {
	q.watchMu.Lock()
	added := q.sockets.added
	q.sockets.added = nil
	q.watchMu.Unlock()
	for _, w := range added {
		slot := len(q.sockets.slots)
		if n := len(q.sockets.free); n > 0 {
			slot = q.sockets.free[n-1]
			q.sockets.free = q.sockets.free[:n-1]
		} else {
			q.sockets.slots = append(q.sockets.slots, socketWatch{})
		}
		q.sockets.slots[slot] = w
		q.armSocket(slot)
	}
}

// armSocket polls slot's socket once for input. If the ring takes no
// more, the backend reads that socket on its own again.
func (q *queue) armSocket(slot int) {
	sqe, err := q.nextSQE(slot)
	if err != nil {
		q.log.Warn().Err(err).Msg("cannot watch a backend socket; the backend reads it itself")
		q.unwatchSocket(slot, false)
		return
	}
	sqe.PrepPollAdd(q.sockets.slots[slot].fd, unix.POLLIN)
	sqe.UserData = kindSocket | uint64(slot)
}

// socketReady runs the backend's reader of slot's socket after its poll
// completed, and polls again unless the backend is done with it.
func (q *queue) socketReady(slot int, res int32) {
	w := q.sockets.slots[slot]
	if res < 0 {
		// Not readiness (the poll itself failed): give the socket back
		// rather than poll it again and again.
		q.log.Warn().Err(syscall.Errno(-res)).Msg("poll of a backend socket failed; the backend reads it itself")
		q.unwatchSocket(slot, false)
		return
	}
	// Requests completed by the reader are drained in this round, like
	// those completed inside Submit: no eventfd wakeup.
	q.disp.inline.Store(true)
	more := w.ready(true)
	q.disp.inline.Store(false)
	if more {
		q.armSocket(slot)
		return
	}
	q.freeSocket(slot)
}

// freeSocket forgets slot's watch.
func (q *queue) freeSocket(slot int) {
	q.sockets.slots[slot] = socketWatch{}
	q.sockets.free = append(q.sockets.free, slot)
}

// unwatchSocket frees slot, telling the backend with ready(ok).
func (q *queue) unwatchSocket(slot int, ok bool) {
	w := q.sockets.slots[slot]
	q.freeSocket(slot)
	w.ready(ok)
}

// releaseSockets gives every watched socket back to the backend when the
// queue thread ends (ready(false)); none is taken afterwards.
func (q *queue) releaseSockets() {
	q.watchMu.Lock()
	q.sockets.stopped = true
	added := q.sockets.added
	q.sockets.added = nil
	q.watchMu.Unlock()
	for _, w := range added {
		w.ready(false)
	}
	for slot, w := range q.sockets.slots {
		if w.ready != nil {
			q.unwatchSocket(slot, false)
		}
	}
}
