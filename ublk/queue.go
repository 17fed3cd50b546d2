package ublk

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/backend"
	"github.com/sheepblk/sheepblk/internal/schedyield"
	"github.com/sheepblk/sheepblk/ublk/uapi"
	"github.com/sheepblk/sheepblk/uring"
)

// user_data of a queue's SQEs: the kind in the high 32 bits, the tag low.
const (
	kindIO      = 1 << 32
	kindEventfd = 2 << 32
	kindBackend = 3 << 32 // a RingFile backend's read, write or fsync
)

// queue serves one hardware queue of a device: its own io_uring on its own
// locked OS thread, so every FETCH_REQ and COMMIT_AND_FETCH_REQ comes from
// the one task the driver binds the queue to.
type queue struct {
	id      uint16
	depth   int
	maxIO   int
	devSize int64
	cdev    int
	cpu     int // CPU to pin to, -1 for none
	log     zerolog.Logger

	ring  *uring.Ring
	descs []byte // the driver's ublksrv_io_desc array, mmapped read-only
	bufs  []byte // depth × maxIO, mmapped and mlocked; nil with zeroCopy
	disp  *dispatcher
	efd   int
	efdv  *[8]byte // where the eventfd read lands (heap: never moves)

	// Sockets of a PolledBackend this thread reads (sockets.go).
	watchMu sync.Mutex
	sockets socketWatches

	live      int // tags the kernel or the backend still owns
	inBackend int // tags handed to the backend and not yet back

	// RingFile backends: their I/O goes on this queue's ring.
	ringFD   int    // -1 when the backend is not a RingFile
	progress []int  // bytes of the tag's read or write done so far
	syncing  []bool // the tag's FUA write is done, its fdatasync runs
	// fixedFile and fixedBufs: ringFD is file 0 of the ring's fixed file
	// table and bufs is its registered buffer 0 (registerRingIO), so a
	// request's read or write neither looks the descriptor up nor pins
	// its pages each time.
	fixedFile, fixedBufs bool
	// zeroCopy: the device has UBLK_F_AUTO_BUF_REG. Before handing the
	// daemon a request, the driver registers its pages in slot tag of the
	// ring's sparse buffer table (the index is in each FETCH and COMMIT's
	// sqe.addr), and the commit unregisters them; the RingFile reads and
	// writes its file straight from and into them. The queue then has no
	// buffers of its own.
	zeroCopy bool

	stopping atomic.Bool
	tid      atomic.Int32

	onCQE  func(*uring.CQE) // method values made once: no allocation per reap
	finish func(r *backend.Request)
}

type queueOptions struct {
	id      uint16
	depth   int
	maxIO   int
	devSize int64
	cdev    int
	cpu     int
	be      backend.Backend
	log     zerolog.Logger
	// zeroCopy: see queue.zeroCopy; the backend must be a RingFile.
	zeroCopy bool
}

func newQueue(o queueOptions) (*queue, error) {
	q := &queue{id: o.id, depth: o.depth, maxIO: o.maxIO, devSize: o.devSize, cdev: o.cdev, cpu: o.cpu, log: o.log, efd: -1, efdv: new([8]byte), zeroCopy: o.zeroCopy}
	descSize := roundUp(o.depth*int(uapi.SizeofIODesc), unix.Getpagesize())
	descStride := roundUp(uapi.MaxQueueDepth*int(uapi.SizeofIODesc), unix.Getpagesize())
	var err error
	q.descs, err = unix.Mmap(o.cdev, int64(uapi.CmdBufOffset+int(o.id)*descStride), descSize, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("queue %d: mmap descriptors: %w", o.id, err)
	}
	if !q.zeroCopy {
		if q.bufs, err = allocBuffers(o.depth * o.maxIO); err != nil {
			q.close()
			return nil, fmt.Errorf("queue %d: %w", o.id, err)
		}
	}
	// A blocking eventfd: io_uring turns a read of it into a poll, while a
	// non-blocking one would complete at once with -EAGAIN.
	if q.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC); err != nil {
		q.close()
		return nil, fmt.Errorf("queue %d: eventfd: %w", o.id, err)
	}
	q.disp = newDispatcher(o.be, o.depth, q.efd)
	q.ringFD = -1
	if rf, ok := o.be.(backend.RingFile); ok {
		if fd, ok := rf.RingFD(); ok {
			q.ringFD = fd
			q.progress = make([]int, o.depth)
			q.syncing = make([]bool, o.depth)
		}
	}
	if q.zeroCopy && q.ringFD < 0 {
		q.close()
		return nil, fmt.Errorf("queue %d: zero copy needs a backend that does its I/O on the queue's ring", o.id)
	}
	q.onCQE = q.handleCQE
	q.finish = q.finishRequest
	return q, nil
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// allocBuffers maps and locks a buffer region. MCL_FUTURE would lock it
// anyway; locking it explicitly makes a missing privilege an error here
// rather than a page fault under memory pressure later.
func allocBuffers(size int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("allocate %d bytes of I/O buffers: %w", size, err)
	}
	if err := unix.Mlock(b); err != nil {
		unix.Munmap(b)
		return nil, fmt.Errorf("lock %d bytes of I/O buffers: %w (raise RLIMIT_MEMLOCK or run as root)", size, err)
	}
	return b, nil
}

// buf is tag's I/O buffer; nil with zero copy.
func (q *queue) buf(tag int) []byte {
	if q.bufs == nil {
		return nil
	}
	return q.bufs[tag*q.maxIO : (tag+1)*q.maxIO]
}

func (q *queue) desc(tag int) *uapi.IODesc {
	return (*uapi.IODesc)(unsafe.Pointer(&q.descs[tag*int(uapi.SizeofIODesc)]))
}

// run is the queue thread. It reports on ready once every FETCH_REQ is
// queued, then serves until the device stops. It never blocks on anything
// but io_uring_enter.
func (q *queue) run(ready chan<- error) error {
	// Never unlocked: when run returns the goroutine exits and the runtime
	// retires the thread with it, along with its io_uring task context.
	runtime.LockOSThread()
	q.tid.Store(int32(unix.Gettid()))
	if q.cpu >= 0 {
		var set unix.CPUSet
		set.Set(q.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			q.log.Warn().Err(err).Int("cpu", q.cpu).Msg("cannot pin queue thread")
		}
	}
	entries := uint32(1)
	for entries < uint32(q.depth)+1 {
		entries <<= 1
	}
	ring, err := uring.New(uring.Options{
		Entries: entries, Flags: uring.SetupSQE128,
		// DEFER_TASKRUN: completions (the driver's requests, the file's
		// reads and writes) are posted only when this thread waits in
		// io_uring_enter, which wakes it once for all of them instead of
		// interrupting it for each.
		OptionalFlags: uring.SetupCoopTaskrun | uring.SetupSingleIssuer | uring.SetupDeferTaskrun,
	})
	if err != nil {
		ready <- fmt.Errorf("queue %d: %w", q.id, err)
		return err
	}
	q.ring = ring
	if err := q.registerRingIO(); err != nil {
		ready <- err
		return err
	}
	for tag := 0; tag < q.depth; tag++ {
		if err := q.queueIOCmd(uapi.UIOFetchReq, tag, 0); err != nil {
			ready <- err
			return err
		}
	}
	q.live = q.depth
	if err := q.armEventfd(); err != nil {
		ready <- err
		return err
	}
	// A backend that waits on sockets gets this thread to read them (the
	// first queue to offer is the one it uses).
	defer q.releaseSockets()
	if pb, ok := q.disp.be.(backend.PolledBackend); ok {
		pb.UsePoller(q)
	}
	q.log.Debug().Int("tid", int(q.tid.Load())).Int("cpu", q.cpu).Uint32("sq_entries", ring.SQEntries()).Msg("queue ready")
	// The fetches are submitted by the first SubmitAndWait below, in the
	// same io_uring_enter that then waits: START_DEV, which needs them all,
	// cannot finish before this thread is in the kernel serving them.
	ready <- nil
	var yield schedyield.Pacer
	for q.live > 0 && !(q.stopping.Load() && q.inBackend == 0) {
		// Yield to the Go scheduler every few milliseconds, before the
		// wait (see schedyield; the thread is locked, so a yield costs
		// a few switches). The round's commits are submitted before it,
		// so that the yield holds up no request that is already answered.
		if yield.Due() {
			if err := q.enter(0); err != nil {
				return err
			}
			runtime.Gosched()
		}
		if err := q.enter(1); err != nil {
			return err
		}
		ring.Reap(q.onCQE)
		q.armNewSockets()
		// The round's requests go out together: one write per node for
		// the sheep backend, from this thread.
		q.disp.unplug()
		// Requests an inline backend (null, mem) finished during the reap
		// go back in this same round, with no eventfd trip.
		q.disp.drain(q.finish)
	}
	q.log.Debug().Msg("queue stopped")
	return nil
}

// enter submits what the queue thread queued and waits for waitNr
// completions. An error it returns stops the queue. EBUSY and EAGAIN are
// not errors here: completions must be reaped before more can be
// submitted, and the round's reap makes room.
func (q *queue) enter(waitNr uint32) error {
	_, err := q.ring.SubmitAndWait(waitNr)
	if err == nil || errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EAGAIN) {
		return nil
	}
	q.log.Error().Err(err).Msg("io_uring_enter failed; queue stops")
	return err
}

// registerRingIO registers the backing file and the I/O buffers with the
// ring for a RingFile backend. Either may fail (an old kernel, a small
// RLIMIT_MEMLOCK without CAP_IPC_LOCK): the queue then uses plain reads
// and writes, which only cost more. With zero copy the buffer table is
// the sparse one the driver fills, and without it no request can be
// served: that is an error.
func (q *queue) registerRingIO() error {
	if q.ringFD < 0 {
		return nil
	}
	if err := q.ring.RegisterFiles([]int32{int32(q.ringFD)}); err != nil {
		q.log.Info().Err(err).Msg("backing file not registered with the ring; plain descriptor used")
	} else {
		q.fixedFile = true
	}
	if q.zeroCopy {
		if err := q.ring.RegisterSparseBuffers(q.depth); err != nil {
			return fmt.Errorf("queue %d: zero copy: %w", q.id, err)
		}
		return nil
	}
	if err := q.ring.RegisterBuffers([][]byte{q.bufs}); err != nil {
		q.log.Info().Err(err).Msg("I/O buffers not registered with the ring; pages pinned per request")
	} else {
		q.fixedBufs = true
	}
	return nil
}

// nextSQE takes a submission slot. Every tag has at most one entry
// queued and the ring has room for all of them, so a full ring is
// transient: hand over what is queued and take the slot.
func (q *queue) nextSQE(tag int) (*uring.SQE, error) {
	sqe, err := q.ring.NextSQE()
	if err == uring.ErrSQFull {
		if _, err = q.ring.Submit(); err == nil {
			sqe, err = q.ring.NextSQE()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("queue %d tag %d: %w", q.id, tag, err)
	}
	return sqe, nil
}

// queueIOCmd queues a FETCH_REQ or COMMIT_AND_FETCH_REQ for tag.
func (q *queue) queueIOCmd(op uint32, tag int, result int32) error {
	sqe, err := q.nextSQE(tag)
	if err != nil {
		return err
	}
	sqe.PrepURingCmd(q.cdev, op)
	sqe.UserData = kindIO | uint64(tag)
	cmd := uapi.IOCmd{QID: q.id, Tag: uint16(tag), Result: result}
	if q.zeroCopy {
		// struct ublk_auto_buf_reg in sqe.addr: the slot for the tag's
		// next request (its own), no flags. The command's buffer address
		// must be 0.
		sqe.Addr = uapi.AutoBufReg{Index: uint16(tag)}.SQEAddr()
	} else {
		cmd.Addr = uint64(uintptr(unsafe.Pointer(&q.bufs[tag*q.maxIO])))
	}
	cmd.Encode(q.ring.Cmd(sqe))
	return nil
}

func (q *queue) armEventfd() error {
	sqe, err := q.ring.NextSQE()
	if err != nil {
		return fmt.Errorf("queue %d: arm eventfd: %w", q.id, err)
	}
	sqe.PrepRead(q.efd, q.efdv[:], 0)
	sqe.UserData = kindEventfd
	return nil
}

func (q *queue) handleCQE(cqe *uring.CQE) {
	switch cqe.UserData &^ 0xffffffff {
	case kindIO:
		tag := int(cqe.UserData & 0xffff)
		switch {
		case cqe.Res == uapi.IOResOK:
			q.startRequest(tag)
		case cqe.Res == uapi.IOResAbort:
			q.live-- // the device is going away: this tag is done
		default:
			q.live--
			q.log.Error().Int("tag", tag).Err(syscall.Errno(-cqe.Res)).Msg("io command failed")
		}
	case kindEventfd:
		q.disp.drain(q.finish)
		if err := q.armEventfd(); err != nil {
			q.log.Error().Err(err).Msg("cannot re-arm eventfd")
		}
	case kindBackend:
		q.ringIODone(int(cqe.UserData&0xffff), cqe.Res)
	case kindSocket:
		q.socketReady(int(cqe.UserData&0xffffffff), cqe.Res)
	}
}

// ringIO submits the rest of tag's read or write, or its fdatasync, on
// the queue's own ring.
func (q *queue) ringIO(tag int) {
	r := &q.disp.reqs[tag]
	sqe, err := q.nextSQE(tag)
	if err != nil {
		q.log.Error().Err(err).Msg("cannot queue backend I/O")
		r.Result = -int32(syscall.EIO)
		q.finishRequest(r)
		return
	}
	done := q.progress[tag]
	fd := q.ringFD
	if q.fixedFile {
		fd = 0 // index in the fixed file table
	}
	off := uint64(r.Offset) + uint64(done)
	switch {
	case r.Op == backend.OpFlush || q.syncing[tag]:
		sqe.PrepFsync(fd, uring.FsyncDatasync)
	case r.Op == backend.OpRead && q.zeroCopy:
		sqe.PrepReadFixedAt(fd, uint16(tag), uint64(done), r.Length-done, off)
	case q.zeroCopy:
		sqe.PrepWriteFixedAt(fd, uint16(tag), uint64(done), r.Length-done, off)
	case r.Op == backend.OpRead && q.fixedBufs:
		sqe.PrepReadFixed(fd, r.Buf[done:], off, 0)
	case r.Op == backend.OpRead:
		sqe.PrepRead(fd, r.Buf[done:], off)
	case q.fixedBufs:
		sqe.PrepWriteFixed(fd, r.Buf[done:], off, 0)
	default:
		sqe.PrepWrite(fd, r.Buf[done:], off)
	}
	if q.fixedFile {
		sqe.Flags |= uring.SQEFixedFile
	}
	sqe.UserData = kindBackend | uint64(tag)
}

// ringIODone takes the completion of a ringIO: a short transfer goes on
// where it stopped, a FUA write goes on to its fdatasync, and the rest
// is the request's result.
func (q *queue) ringIODone(tag int, res int32) {
	r := &q.disp.reqs[tag]
	switch {
	case res < 0:
		r.Result = res
	case r.Op == backend.OpFlush || q.syncing[tag]:
		r.Result = backend.ResultOf(r, nil)
	case res == 0 && r.Op == backend.OpRead && q.zeroCopy:
		// Past the end of the file (shrunk behind our back: it is sized
		// to the device when opened). The pages are the kernel's, and
		// returning them unfilled would hand out stale memory.
		r.Result = -int32(syscall.EIO)
	case res == 0 && r.Op == backend.OpRead:
		clear(r.Buf[q.progress[tag]:]) // past the end of the file: zeroes
		q.progress[tag] = r.Length
	case res == 0:
		r.Result = -int32(syscall.EIO) // a write that makes no progress
	default:
		q.progress[tag] += int(res)
	}
	if r.Result == 0 && q.progress[tag] < r.Length {
		q.ringIO(tag)
		return
	}
	if r.Result == 0 && r.FUA && r.Op == backend.OpWrite && !q.syncing[tag] {
		q.syncing[tag] = true
		q.ringIO(tag)
		return
	}
	if r.Result == 0 {
		r.Result = backend.ResultOf(r, nil)
	}
	q.finishRequest(r)
}

// startRequest turns the descriptor of tag into a backend request.
func (q *queue) startRequest(tag int) {
	r := &q.disp.reqs[tag]
	if !requestFromDesc(q.desc(tag), q.buf(tag), q.maxIO, q.devSize, r) {
		r.Result = -int32(syscall.EINVAL)
		q.commitRequest(r)
		return
	}
	q.inBackend++
	if q.ringFD >= 0 && (r.Op == backend.OpRead || r.Op == backend.OpWrite || r.Op == backend.OpFlush) {
		q.progress[tag], q.syncing[tag], r.Result = 0, false, 0
		q.ringIO(tag)
		return
	}
	q.disp.dispatch(r)
}

// finishRequest takes a request the backend is done with.
func (q *queue) finishRequest(r *backend.Request) {
	q.inBackend--
	if r.Op == backend.OpFlush {
		// Free when the level is above debug; tests read it to see that a
		// FLUSH reached the backend.
		q.log.Debug().Int32("result", r.Result).Msg("flush")
	}
	q.commitRequest(r)
}

// commitRequest hands a finished request back to the kernel and fetches
// the tag's next one in the same command.
func (q *queue) commitRequest(r *backend.Request) {
	if err := q.queueIOCmd(uapi.UIOCommitAndFetchReq, int(r.Tag), r.Result); err != nil {
		q.log.Error().Err(err).Msg("cannot commit request")
		q.live--
	}
}

// stop asks the queue thread to return once the backend holds no request.
func (q *queue) stop() {
	q.stopping.Store(true)
	q.disp.wake()
}

func (q *queue) close() {
	if q.ring != nil {
		q.ring.Close()
	}
	if q.disp != nil && q.disp.kick != nil {
		q.disp.stop()
	}
	if q.efd >= 0 {
		unix.Close(q.efd)
	}
	if q.bufs != nil {
		unix.Munmap(q.bufs)
	}
	if q.descs != nil {
		unix.Munmap(q.descs)
	}
}
