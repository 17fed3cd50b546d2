package ublk

import (
	"bytes"
	"crypto/rand"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/backend"
)

// syncOnly hides a backend's Submit, so the dispatcher serves it with
// its per-tag goroutines.
type syncOnly struct{ backend.Backend }

func newTestDispatcher(t testing.TB, be backend.Backend, depth int) (*dispatcher, int) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	d := newDispatcher(be, depth, efd)
	t.Cleanup(func() {
		if d.kick != nil {
			d.stop()
		}
		unix.Close(efd)
	})
	return d, efd
}

// waitAndDrain blocks on the eventfd as the queue's ring would, then drains.
func waitAndDrain(t testing.TB, d *dispatcher, efd int, want int, fn func(*backend.Request)) {
	var v [8]byte
	for got := 0; got < want; {
		if _, err := unix.Read(efd, v[:]); err != nil {
			t.Fatal(err)
		}
		got += d.drain(fn)
	}
}

// TestDispatcherRoundTrip runs writes then reads through per-tag workers
// and checks the data and the results that would be committed.
func TestDispatcherRoundTrip(t *testing.T) {
	const depth, blk = 16, 4096
	d, efd := newTestDispatcher(t, syncOnly{backend.NewMem(depth * blk)}, depth)
	bufs := make([]byte, depth*blk)
	rand.Read(bufs)
	want := append([]byte(nil), bufs...)
	for _, op := range []backend.Op{backend.OpWrite, backend.OpRead} {
		if op == backend.OpRead {
			clear(bufs)
		}
		for tag := 0; tag < depth; tag++ {
			r := &d.reqs[tag]
			r.Op, r.Offset, r.Length, r.Buf = op, int64(tag*blk), blk, bufs[tag*blk:(tag+1)*blk]
			d.dispatch(r)
		}
		seen := 0
		waitAndDrain(t, d, efd, depth, func(r *backend.Request) {
			if r.Result != blk {
				t.Errorf("%v tag %d: result %d", op, r.Tag, r.Result)
			}
			seen++
		})
		if seen != depth {
			t.Fatalf("%v: %d completions, want %d", op, seen, depth)
		}
	}
	if !bytes.Equal(bufs, want) {
		t.Fatal("read back differs from written")
	}
}

// TestDispatcherErrors: a failing range errors only the requests in it.
func TestDispatcherErrors(t *testing.T) {
	be := &backend.FailRange{Backend: syncOnly{backend.NewMem(1 << 20)}, Off: 8192, Len: 4096}
	d, efd := newTestDispatcher(t, be, 4)
	buf := make([]byte, 4*4096)
	for tag := 0; tag < 4; tag++ {
		r := &d.reqs[tag]
		r.Op, r.Offset, r.Length, r.Buf = backend.OpRead, int64(tag*4096), 4096, buf[tag*4096:(tag+1)*4096]
		d.dispatch(r)
	}
	waitAndDrain(t, d, efd, 4, func(r *backend.Request) {
		want := int32(4096)
		if r.Tag == 2 {
			want = -int32(syscall.EIO)
		}
		if r.Result != want {
			t.Errorf("tag %d: result %d, want %d", r.Tag, r.Result, want)
		}
	})
}

// TestDrainIsFIFO: completions come out in the order they happened.
func TestDrainIsFIFO(t *testing.T) {
	d, _ := newTestDispatcher(t, backend.NewNull(1<<20), 8)
	for _, tag := range []int{5, 1, 7, 0} {
		d.reqs[tag].Done(nil)
	}
	var order []uint16
	d.drain(func(r *backend.Request) { order = append(order, r.Tag) })
	if len(order) != 4 || order[0] != 5 || order[1] != 1 || order[2] != 7 || order[3] != 0 {
		t.Fatalf("drain order %v, want [5 1 7 0]", order)
	}
	if n := d.drain(func(*backend.Request) {}); n != 0 {
		t.Fatalf("second drain found %d", n)
	}
}

// BenchmarkDispatchPath measures a request's trip through the dispatch
// path (descriptor filled in, handed to a per-tag worker, backend I/O,
// completion list, eventfd, drain) with 32 in flight. It must report
// 0 allocs/op.
func BenchmarkDispatchPath(b *testing.B) {
	const depth, blk = 32, 4096
	d, efd := newTestDispatcher(b, syncOnly{backend.NewMem(depth * blk)}, depth)
	bufs := make([]byte, depth*blk)
	done := 0
	count := func(*backend.Request) { done++ }
	b.ReportAllocs()
	b.SetBytes(blk)
	b.ResetTimer()
	for i := 0; i < b.N; i += depth {
		for tag := 0; tag < depth; tag++ {
			r := &d.reqs[tag]
			r.Op, r.Offset, r.Length, r.Buf = backend.OpWrite, int64(tag*blk), blk, bufs[tag*blk:(tag+1)*blk]
			d.dispatch(r)
		}
		waitAndDrain(b, d, efd, depth, count)
	}
}

// BenchmarkDispatchPathInline is the same for a backend that completes
// inline on the queue thread (mem): no eventfd, the queue drains after
// dispatching.
func BenchmarkDispatchPathInline(b *testing.B) {
	const depth, blk = 32, 4096
	d, _ := newTestDispatcher(b, backend.NewMem(depth*blk), depth)
	bufs := make([]byte, depth*blk)
	done := 0
	count := func(*backend.Request) { done++ }
	b.ReportAllocs()
	b.SetBytes(blk)
	for i := 0; i < b.N; i += depth {
		for tag := 0; tag < depth; tag++ {
			r := &d.reqs[tag]
			r.Op, r.Offset, r.Length, r.Buf = backend.OpWrite, int64(tag*blk), blk, bufs[tag*blk:(tag+1)*blk]
			d.dispatch(r)
		}
		if n := d.drain(count); n != depth {
			b.Fatalf("drained %d, want %d", n, depth)
		}
	}
}

// TestInlineCompletionNeedsNoWakeup: a request an inline backend finishes
// inside dispatch is drained at once and writes nothing to the eventfd.
func TestInlineCompletionNeedsNoWakeup(t *testing.T) {
	d, efd := newTestDispatcher(t, backend.NewNull(1<<20), 4)
	unix.SetNonblock(efd, true)
	for tag := 0; tag < 4; tag++ {
		d.reqs[tag].Op, d.reqs[tag].Length = backend.OpRead, 4096
		d.dispatch(&d.reqs[tag])
	}
	var v [8]byte
	if _, err := unix.Read(efd, v[:]); err != unix.EAGAIN {
		t.Fatalf("eventfd read: %v, want EAGAIN (no wakeup)", err)
	}
	if n := d.drain(func(r *backend.Request) {
		if r.Result != 4096 {
			t.Errorf("tag %d: result %d", r.Tag, r.Result)
		}
	}); n != 4 {
		t.Fatalf("drained %d, want 4", n)
	}
	// A completion from another goroutine, outside dispatch, still wakes.
	done := make(chan struct{})
	go func() { d.reqs[0].Done(nil); close(done) }()
	<-done
	if _, err := unix.Read(efd, v[:]); err != nil {
		t.Fatalf("no wakeup for an out-of-line completion: %v", err)
	}
}

// inlineFile is a synchronous backend that asks to be served inline, as
// a backend.File on tmpfs does. Its Submit() (no argument) shadows the
// Mem's Submit(*Request), so it is not an AsyncBackend.
type inlineFile struct{ *backend.Mem }

func (inlineFile) Submit()            {}
func (inlineFile) ServesInline() bool { return true }

// TestInlineServerRunsOnQueueThread: a backend.InlineServer gets no worker
// goroutines; its requests finish inside dispatch, with no wakeup, and
// the data round-trips.
func TestInlineServerRunsOnQueueThread(t *testing.T) {
	const blk = 4096
	d, efd := newTestDispatcher(t, inlineFile{backend.NewMem(1 << 20)}, 2)
	if d.kick != nil {
		t.Fatal("an inline server got worker goroutines")
	}
	unix.SetNonblock(efd, true)
	want := make([]byte, blk)
	rand.Read(want)
	got := make([]byte, blk)
	for i, op := range []backend.Op{backend.OpWrite, backend.OpRead} {
		r := &d.reqs[i]
		r.Op, r.Offset, r.Length, r.Buf = op, 8*blk, blk, want
		if op == backend.OpRead {
			r.Buf = got
		}
		d.dispatch(r)
		if n := d.drain(func(r *backend.Request) {
			if r.Result != blk {
				t.Errorf("%v: result %d", r.Op, r.Result)
			}
		}); n != 1 {
			t.Fatalf("%v: drained %d right after dispatch, want 1", op, n)
		}
	}
	var v [8]byte
	if _, err := unix.Read(efd, v[:]); err != unix.EAGAIN {
		t.Fatalf("eventfd read: %v, want EAGAIN (no wakeup)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read back differs from what was written")
	}
}

// heldMem is a PluggedBackend over a Mem: SubmitPlugged holds requests,
// Unplug serves them all.
type heldMem struct {
	*backend.Mem
	held     []*backend.Request
	unplugs  int
	submitOK bool // Submit (unplugged) was called: must not be
}

func (h *heldMem) Submit(r *backend.Request)        { h.submitOK = true; r.Done(backend.Serve(h.Mem, r)) }
func (h *heldMem) SubmitPlugged(r *backend.Request) { h.held = append(h.held, r) }
func (h *heldMem) Unplug() {
	h.unplugs++
	for _, r := range h.held {
		r.Done(backend.Serve(h.Mem, r))
	}
	h.held = h.held[:0]
}

// TestPluggedBackendRound: a PluggedBackend's requests of a round are
// held until the queue unplugs, once per round; they then finish inside
// unplug (no eventfd wakeup) with their data.
func TestPluggedBackendRound(t *testing.T) {
	const depth, blk = 8, 4096
	be := &heldMem{Mem: backend.NewMem(depth * blk)}
	d, efd := newTestDispatcher(t, be, depth)
	unix.SetNonblock(efd, true)
	want := make([]byte, depth*blk)
	rand.Read(want)
	got := make([]byte, depth*blk)
	for _, op := range []backend.Op{backend.OpWrite, backend.OpRead} {
		for tag := range depth {
			r := &d.reqs[tag]
			r.Op, r.Offset, r.Length, r.Buf = op, int64(tag*blk), blk, want[tag*blk:][:blk]
			if op == backend.OpRead {
				r.Buf = got[tag*blk:][:blk]
			}
			d.dispatch(r)
		}
		if n := d.drain(func(*backend.Request) {}); n != 0 {
			t.Fatalf("%v: %d requests finished before the unplug", op, n)
		}
		d.unplug()
		d.unplug() // nothing held: must not call the backend again
		if n := d.drain(func(r *backend.Request) {
			if r.Result != blk {
				t.Errorf("%v tag %d: result %d", r.Op, r.Tag, r.Result)
			}
		}); n != depth {
			t.Fatalf("%v: drained %d after the unplug, want %d", op, n, depth)
		}
	}
	if be.unplugs != 2 || be.submitOK {
		t.Fatalf("backend saw %d unplugs (want 2, one per round) and unplugged Submit %v", be.unplugs, be.submitOK)
	}
	var v [8]byte
	if _, err := unix.Read(efd, v[:]); err != unix.EAGAIN {
		t.Fatalf("eventfd read: %v, want EAGAIN (no wakeup)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read back differs from what was written")
	}
}
