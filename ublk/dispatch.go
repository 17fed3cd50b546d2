package ublk

import (
	"io"
	"sync/atomic"
	"syscall"

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
	async   backend.AsyncBackend // nil for synchronous backends
	reqs    []backend.Request
	next    []int32      // next[tag]: the tag below it on the done stack
	head    atomic.Int32 // top of the done stack, -1 when empty
	pending atomic.Bool  // an eventfd wakeup is on its way
	efd     int
	order   []uint16 // scratch for draining in FIFO order
	kick    []chan struct{}
	zero    []byte // zeroes for backends that cannot write zeroes themselves
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
	if _, ok := be.(backend.ZeroWriter); !ok {
		d.zero = make([]byte, zeroChunk)
	}
	for tag := range d.reqs {
		d.reqs[tag].Bind(d, uint16(tag))
	}
	if a, ok := be.(backend.AsyncBackend); ok {
		d.async = a
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
	if d.async != nil {
		d.async.Submit(r)
		return
	}
	d.kick[r.Tag] <- struct{}{}
}

func (d *dispatcher) worker(r *backend.Request, kick chan struct{}) {
	for range kick {
		r.Done(d.serve(r))
	}
}

// stop ends the worker goroutines; only after the last request finished.
func (d *dispatcher) stop() {
	for _, k := range d.kick {
		close(k)
	}
}

// serve runs one request on a synchronous backend.
func (d *dispatcher) serve(r *backend.Request) error {
	switch r.Op {
	case backend.OpRead:
		n, err := d.be.ReadAt(r.Buf, r.Offset)
		if err == io.EOF && n < len(r.Buf) {
			clear(r.Buf[n:]) // past the end of a short backing store: zeroes
			err = nil
		}
		return err
	case backend.OpWrite:
		if _, err := d.be.WriteAt(r.Buf, r.Offset); err != nil {
			return err
		}
		if r.FUA {
			return flush(d.be)
		}
		return nil
	case backend.OpFlush:
		return flush(d.be)
	case backend.OpDiscard:
		if dis, ok := d.be.(backend.Discarder); ok {
			return dis.Discard(r.Offset, int64(r.Length))
		}
		return syscall.EOPNOTSUPP
	case backend.OpWriteZeroes:
		if z, ok := d.be.(backend.ZeroWriter); ok {
			return z.WriteZeroes(r.Offset, int64(r.Length))
		}
		return d.writeZeroes(r.Offset, int64(r.Length))
	}
	return syscall.EOPNOTSUPP
}

func flush(be backend.Backend) error {
	if f, ok := be.(backend.Flusher); ok {
		return f.Flush()
	}
	return nil
}

const zeroChunk = 64 << 10

func (d *dispatcher) writeZeroes(off, n int64) error {
	for n > 0 {
		c := min(n, int64(len(d.zero)))
		if _, err := d.be.WriteAt(d.zero[:c], off); err != nil {
			return err
		}
		off, n = off+c, n-c
	}
	return nil
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
