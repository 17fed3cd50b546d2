package uring

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrSQFull is returned by NextSQE when every submission slot is taken and
// the caller must Submit (and reap) before queuing more.
var ErrSQFull = errors.New("uring: submission queue full")

// Options configures a new ring.
type Options struct {
	// Entries is the submission queue size (rounded up to a power of two by
	// the kernel). The completion queue is twice as large unless CQEntries
	// is set.
	Entries   uint32
	CQEntries uint32
	// Flags are the Setup* flags the ring must have (e.g. SetupSQE128).
	Flags uint32
	// OptionalFlags are Setup* flags to use where the kernel has them
	// (SetupCoopTaskrun, SetupSingleIssuer): a kernel that rejects them
	// gets a ring without them.
	OptionalFlags uint32
}

// Ring is one io_uring instance with its mapped queues.
type Ring struct {
	fd       int
	flags    uint32 // setup flags in effect
	features uint32

	ringMem []byte // SQ and CQ rings (one mapping with FeatSingleMmap)
	cqMem   []byte // separate CQ mapping on kernels without FeatSingleMmap
	sqeMem  []byte

	sqHead, sqTail, sqFlags *uint32
	sqMask, sqEntries       uint32
	sqeStride               uintptr
	sqes                    unsafe.Pointer
	sqeTail                 uint32 // next free slot, ahead of *sqTail until Submit
	cmdLen                  int

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           unsafe.Pointer
	cqeStride      uintptr
}

// New sets up a ring.
func New(opts Options) (*Ring, error) {
	if opts.Entries == 0 {
		return nil, errors.New("uring: Entries must be > 0")
	}
	flags := opts.Flags | opts.OptionalFlags
	for {
		r, err := setup(opts, flags)
		if err == nil {
			return r, nil
		}
		// Drop optional flags one at a time, newest first, on EINVAL.
		if !errors.Is(err, unix.EINVAL) || flags&opts.OptionalFlags == 0 {
			return nil, err
		}
		opt := flags & opts.OptionalFlags
		flags &^= 1 << (31 - bits.LeadingZeros32(opt))
	}
}

func setup(opts Options, flags uint32) (*Ring, error) {
	p := params{Flags: flags}
	if opts.CQEntries != 0 {
		p.Flags |= SetupCQSize
		p.CQEntries = opts.CQEntries
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(opts.Entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup(entries=%d, flags=%#x): %w", opts.Entries, p.Flags, errno)
	}
	r := &Ring{fd: int(fd), flags: p.Flags, features: p.Features}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mapRings(p *params) error {
	r.sqeStride = sqeSize
	r.cmdLen = int(cmdArea64)
	if r.flags&SetupSQE128 != 0 {
		r.sqeStride = 2 * sqeSize
		r.cmdLen = int(cmdArea128)
	}
	r.cqeStride = cqeSize
	if r.flags&SetupCQE32 != 0 {
		r.cqeStride = 2 * cqeSize
	}
	sqSize := uintptr(p.SQOff.Array) + uintptr(p.SQEntries)*4
	cqSize := uintptr(p.CQOff.CQEs) + uintptr(p.CQEntries)*r.cqeStride
	single := r.features&FeatSingleMmap != 0
	if single && cqSize > sqSize {
		sqSize = cqSize
	}
	var err error
	r.ringMem, err = mmap(r.fd, offSQRing, sqSize)
	if err != nil {
		return fmt.Errorf("mmap SQ ring: %w", err)
	}
	cqMem := r.ringMem
	if !single {
		if r.cqMem, err = mmap(r.fd, offCQRing, cqSize); err != nil {
			return fmt.Errorf("mmap CQ ring: %w", err)
		}
		cqMem = r.cqMem
	}
	if r.sqeMem, err = mmap(r.fd, offSQEs, uintptr(p.SQEntries)*r.sqeStride); err != nil {
		return fmt.Errorf("mmap SQEs: %w", err)
	}
	sq := unsafe.Pointer(&r.ringMem[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.SQOff.Head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.SQOff.Tail))
	r.sqFlags = (*uint32)(unsafe.Add(sq, p.SQOff.Flags))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.SQOff.RingMask))
	r.sqEntries = *(*uint32)(unsafe.Add(sq, p.SQOff.RingEntries))
	r.sqes = unsafe.Pointer(&r.sqeMem[0])
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	// The SQ array maps ring slots to SQE indexes; an identity map set once
	// lets NextSQE hand out the entry at tail&mask directly.
	array := unsafe.Slice((*uint32)(unsafe.Add(sq, p.SQOff.Array)), r.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	cq := unsafe.Pointer(&cqMem[0])
	r.cqHead = (*uint32)(unsafe.Add(cq, p.CQOff.Head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.CQOff.Tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.CQOff.RingMask))
	r.cqes = unsafe.Add(cq, p.CQOff.CQEs)
	return nil
}

func mmap(fd int, off uint64, size uintptr) ([]byte, error) {
	return unix.Mmap(fd, int64(off), int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
}

// Close unmaps the rings and closes the ring's file descriptor; requests
// still in flight are cancelled by the kernel.
func (r *Ring) Close() error {
	for _, m := range [][]byte{r.sqeMem, r.cqMem, r.ringMem} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	r.sqeMem, r.cqMem, r.ringMem = nil, nil, nil
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

// Fd is the ring's file descriptor.
func (r *Ring) Fd() int { return r.fd }

// Flags are the setup flags the ring was created with (optional flags the
// kernel refused are not among them).
func (r *Ring) Flags() uint32 { return r.flags }

// SQEntries is the submission queue size.
func (r *Ring) SQEntries() uint32 { return r.sqEntries }

// NextSQE returns the next free submission entry, zeroed (the command area
// of an SQE128 entry included), or ErrSQFull.
func (r *Ring) NextSQE() (*SQE, error) {
	head := atomic.LoadUint32(r.sqHead)
	if r.sqeTail-head >= r.sqEntries {
		return nil, ErrSQFull
	}
	p := unsafe.Add(r.sqes, uintptr(r.sqeTail&r.sqMask)*r.sqeStride)
	clear(unsafe.Slice((*byte)(p), r.sqeStride))
	r.sqeTail++
	return (*SQE)(p), nil
}

// Cmd returns the URING_CMD command area of sqe: 80 bytes in an SQE128 ring,
// 16 otherwise. sqe must come from this ring.
func (r *Ring) Cmd(sqe *SQE) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(sqe), cmdOffset)), r.cmdLen)
}

// Pending is the number of entries queued but not yet handed to the kernel.
func (r *Ring) Pending() uint32 { return r.sqeTail - atomic.LoadUint32(r.sqTail) }

// Submit hands queued entries to the kernel without waiting.
func (r *Ring) Submit() (int, error) { return r.SubmitAndWait(0) }

// SubmitAndWait hands queued entries to the kernel and waits until at least
// waitNr completions are available. EINTR is retried.
func (r *Ring) SubmitAndWait(waitNr uint32) (int, error) {
	toSubmit := r.sqeTail - atomic.LoadUint32(r.sqTail)
	// Publish the entries: the store orders every write to them before the
	// kernel can observe the new tail.
	atomic.StoreUint32(r.sqTail, r.sqeTail)
	var flags uint32
	if waitNr > 0 || atomic.LoadUint32(r.sqFlags)&sqCQOverflow != 0 {
		flags |= enterGetEvents
	}
	if toSubmit == 0 && flags == 0 {
		return 0, nil
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(waitNr), uintptr(flags), 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			if waitNr == 0 {
				return 0, nil
			}
			continue
		default:
			return int(n), fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

// CQReady is the number of completions waiting to be reaped.
func (r *Ring) CQReady() uint32 {
	return atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead)
}

// Reap hands every available completion to fn, oldest first, then releases
// their slots to the kernel in one store. It returns how many it reaped. fn
// must not keep the *CQE after it returns.
func (r *Ring) Reap(fn func(*CQE)) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	for i := head; i != tail; i++ {
		fn((*CQE)(unsafe.Add(r.cqes, uintptr(i&r.cqMask)*r.cqeStride)))
	}
	atomic.StoreUint32(r.cqHead, tail)
	return int(tail - head)
}
