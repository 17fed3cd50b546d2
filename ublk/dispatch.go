package ublk

import (
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/backend"
)

// dispatcher runs a queue's requests against its backend and hands the
// finished ones back to the queue thread. It is the part of a queue that
// needs no kernel, so it is tested and benchmarked on any host.
//
// Finished requests go on a lock-free stack of tags (each tag is on it at
// most once: it cannot be dispatched again before the queue commits it).
// The queue takes the whole stack at once, so there is no ABA hazard, and
// reverses it, so requests are committed in the order they finished. The
// first completion after the queue last looked writes the eventfd that the
// queue's ring is reading; later ones only push.
type dispatcher struct {
	be      backend.Backend
	async   backend.AsyncBackend   // nil for synchronous backends
	plugged backend.PluggedBackend // nil unless the backend batches rounds
	held    bool                   // requests were submitted plugged since the last unplug
	reqs    []backend.Request
	next    []int32      // next[tag]: the tag below it on the done stack
	head    atomic.Int32 // top of the done stack, -1 when empty
	pending atomic.Bool  // an eventfd wakeup is on its way
	efd     int
	order   []uint16 // scratch for draining in FIFO order
	kick    []chan struct{}
	// inline is set while the queue thread runs an AsyncBackend's Submit:
	// a request completed inside it needs no eventfd wakeup, since the
	// queue drains right after.
	inline atomic.Bool
}

func newDispatcher(be backend.Backend, depth int, efd int) *dispatcher {
	d := &dispatcher{
		be:    be,
		reqs:  make([]backend.Request, depth),
		next:  make([]int32, depth),
		efd:   efd,
		order: make([]uint16, 0, depth),
	}
	d.head.Store(-1)
	for tag := range d.reqs {
		d.reqs[tag].Bind(d, uint16(tag))
	}
	if a, ok := be.(backend.AsyncBackend); ok {
		d.async = a
		d.plugged, _ = be.(backend.PluggedBackend)
		return d
	}
	if in, ok := be.(backend.InlineServer); ok && in.ServesInline() {
		d.async = inlineServer{be}
		return d
	}
	// One goroutine per tag, created now: a request never waits for a
	// worker, nothing is allocated per request, and a slow request holds
	// up only its own tag.
	d.kick = make([]chan struct{}, depth)
	for tag := range d.kick {
		d.kick[tag] = make(chan struct{}, 1)
		go d.worker(&d.reqs[tag], d.kick[tag])
	}
	return d
}

// dispatch starts request r (already filled in by the queue).
func (d *dispatcher) dispatch(r *backend.Request) {
	switch {
	case d.plugged != nil:
		d.inline.Store(true)
		d.plugged.SubmitPlugged(r)
		d.inline.Store(false)
		d.held = true
	case d.async != nil:
		d.inline.Store(true)
		d.async.Submit(r)
		d.inline.Store(false)
	default:
		d.kick[r.Tag] <- struct{}{}
	}
}

// unplug starts the requests of the round that a PluggedBackend held back.
// The queue calls it once per round, after dispatching and before
// draining.
func (d *dispatcher) unplug() {
	if !d.held {
		return
	}
	d.held = false
	d.inline.Store(true)
	d.plugged.Unplug()
	d.inline.Store(false)
}

// inlineServer serves a synchronous backend's requests on the calling
// (queue) thread: for backends whose requests are memory copies.
type inlineServer struct{ backend.Backend }

func (s inlineServer) Submit(r *backend.Request) { r.Done(backend.Serve(s.Backend, r)) }

func (d *dispatcher) worker(r *backend.Request, kick chan struct{}) {
	for range kick {
		r.Done(backend.Serve(d.be, r))
	}
}

// stop ends the worker goroutines; only after the last request finished.
func (d *dispatcher) stop() {
	for _, k := range d.kick {
		close(k)
	}
}

// Complete implements backend.Completer: it may run on any goroutine.
func (d *dispatcher) Complete(r *backend.Request) {
	tag := int32(r.Tag)
	for {
		old := d.head.Load()
		d.next[tag] = old
		if d.head.CompareAndSwap(old, tag) {
			break
		}
	}
	// The push above comes before this check, and the queue clears
	// inline before it drains, so a request pushed while inline was set
	// (by the queue thread itself, or by a backend goroutine at that
	// moment) is always in that drain.
	if d.inline.Load() {
		return
	}
	if d.pending.CompareAndSwap(false, true) {
		d.wake()
	}
}

var one = [8]byte{1}

func (d *dispatcher) wake() {
	if d.efd < 0 {
		return
	}
	for {
		_, err := unix.Write(d.efd, one[:])
		if err != unix.EINTR {
			return
		}
	}
}

// drain takes every finished request, oldest first, and calls fn for each.
// The queue calls it after its eventfd read completed.
func (d *dispatcher) drain(fn func(r *backend.Request)) int {
	// Clear pending before taking the stack: a completion that lands after
	// the swap then sees pending false and wakes the queue again.
	d.pending.Store(false)
	top := d.head.Swap(-1)
	order := d.order[:0]
	for t := top; t >= 0; t = d.next[t] {
		order = append(order, uint16(t))
	}
	for i := len(order) - 1; i >= 0; i-- {
		fn(&d.reqs[order[i]])
	}
	return len(order)
}
