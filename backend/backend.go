package backend

import (
	"errors"
	"io"
	"syscall"
)

// Backend is the storage behind a block device.
type Backend interface {
	io.ReaderAt
	io.WriterAt
	// Size is the device size in bytes.
	Size() int64
	Close() error
}

// Flusher is a backend with a volatile write cache: a write is durable only
// after Flush returns. The device then advertises a volatile cache, and the
// kernel sends FLUSH requests (fsync, journal commits) down to it.
type Flusher interface {
	Flush() error
}

// Discarder is a backend that can forget a range (TRIM/UNMAP); reads of a
// discarded range return zeroes.
type Discarder interface {
	Discard(off, length int64) error
}

// ZeroWriter is a backend that writes zeroes without being handed a buffer.
type ZeroWriter interface {
	WriteZeroes(off, length int64) error
}

// Op is the operation of a Request.
type Op uint8

const (
	OpRead Op = iota
	OpWrite
	OpFlush
	OpDiscard
	OpWriteZeroes
)

var opNames = [...]string{"read", "write", "flush", "discard", "write-zeroes"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "unknown"
}

// Completer receives finished requests. The ublk queue implements it; a
// request is handed back exactly once.
type Completer interface {
	Complete(r *Request)
}

// Request is one block I/O. Requests are allocated once per tag by the
// queue that owns them and reused for the life of the device, so nothing on
// the I/O path allocates.
type Request struct {
	Op     Op
	FUA    bool   // the write must be durable when it completes
	Offset int64  // byte offset on the device
	Length int    // bytes
	Buf    []byte // Length bytes for OpRead/OpWrite: this tag's I/O buffer

	// Result: the byte count done (for reads and writes) or 0, or a
	// negative errno. Set by Done.
	Result int32

	Tag       uint16 // the queue's tag; lets a Completer find its slot
	completer Completer
}

// Bind attaches the request to the completer that owns it. Called once, by
// the queue that allocates the request.
func (r *Request) Bind(c Completer, tag uint16) {
	r.completer = c
	r.Tag = tag
}

// Done records the outcome and hands the request back to its queue. A nil
// err means the whole request was done. Done may be called from any
// goroutine, exactly once per submission.
func (r *Request) Done(err error) {
	r.Result = ResultOf(r, err)
	r.completer.Complete(r)
}

// ResultOf is the kernel result for a request that ended with err: the byte
// count on success for reads and writes, 0 for other ops, else a negative
// errno (EIO unless err carries a syscall.Errno).
func ResultOf(r *Request, err error) int32 {
	if err == nil {
		if r.Op == OpRead || r.Op == OpWrite {
			return int32(r.Length)
		}
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && errno != 0 {
		return -int32(errno)
	}
	return -int32(syscall.EIO)
}

// AsyncBackend is a backend that completes requests by itself. Submit
// must not block: it starts the I/O and returns; the backend calls r.Done
// once it is finished, from any goroutine.
type AsyncBackend interface {
	Backend
	Submit(r *Request)
}

// SocketPoller is a thread that watches sockets for a backend: the ublk
// queue thread, through its io_uring. WatchSocket asks it to call
// ready(true) on its thread whenever fd is readable, until ready returns
// false; it reports false if the poller takes no more sockets. A poller
// that stops calls ready(false) once for each socket it still watches.
// ready must not block. (rpc.Poller is the same contract.)
type SocketPoller interface {
	WatchSocket(fd int, ready func(ok bool) bool) bool
}

// PolledBackend is an AsyncBackend whose requests complete when replies
// arrive on sockets: each queue offers its thread to read them, so a reply
// wakes the queue thread directly. A backend may use one poller and ignore
// the other offers.
type PolledBackend interface {
	AsyncBackend
	UsePoller(p SocketPoller)
}

// PluggedBackend is an AsyncBackend that starts a round of requests
// together, as the block layer plugs a queue: the ublk queue submits the
// requests it fetched in one round with SubmitPlugged, which may hold them
// back, and then calls Unplug once, which starts them all. Neither blocks.
type PluggedBackend interface {
	AsyncBackend
	SubmitPlugged(r *Request)
	Unplug()
}

// RingFile is a backend kept in one file descriptor, whose reads, writes
// and flushes the queue submits on its own io_uring, as ublksrv's loop
// target does: no handoff to another thread, no copy. Operations the ring
// cannot express for it (discard on a block device, say) still go through
// ReaderAt/WriterAt and the optional interfaces.
type RingFile interface {
	Backend
	// RingFD is the descriptor to submit on; ok is false when ring I/O
	// must not be used.
	RingFD() (fd int, ok bool)
}

// InlineServer is a synchronous backend that can say its requests cost
// no more than a memory copy (a file on tmpfs), so the queue serves them
// on its own thread, as it does an AsyncBackend that completes inline,
// rather than handing each one to another thread and back.
type InlineServer interface {
	Backend
	ServesInline() bool
}
