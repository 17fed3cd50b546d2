package uring

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RegisterBuffers pins bufs once for the life of the ring (or until
// they are registered again): READ_FIXED and WRITE_FIXED on them then
// skip pinning and unpinning the pages of every request, which for a
// 128 KiB request is 32 page lookups each way. Buffer i is index i of
// PrepReadFixed and PrepWriteFixed. The memory must stay mapped while
// the ring lives; the kernel charges it to RLIMIT_MEMLOCK unless the
// process has CAP_IPC_LOCK.
func (r *Ring) RegisterBuffers(bufs [][]byte) error {
	iov := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		if len(b) == 0 {
			return fmt.Errorf("register buffer %d: empty", i)
		}
		iov[i].Base = &b[0]
		iov[i].SetLen(len(b))
	}
	if err := r.register(registerBuffers, unsafe.Pointer(&iov[0]), uint32(len(iov))); err != nil {
		return fmt.Errorf("register %d buffers: %w", len(bufs), err)
	}
	return nil
}

// RegisterSparseBuffers makes a buffer table of n empty slots. A driver
// fills a slot with the pages of one of its requests (ublk's automatic
// buffer registration); READ_FIXED and WRITE_FIXED on that slot then move
// data between a file and those pages directly, with no copy through the
// process's memory. See PrepReadFixedAt.
func (r *Ring) RegisterSparseBuffers(n int) error {
	if n <= 0 || n > 1<<16 {
		return fmt.Errorf("register %d sparse buffer slots: want 1..65536", n)
	}
	reg := rsrcRegister{Nr: uint32(n), Flags: rsrcRegisterSparse}
	if err := r.register(registerBuffers2, unsafe.Pointer(&reg), uint32(unsafe.Sizeof(reg))); err != nil {
		return fmt.Errorf("register %d sparse buffer slots: %w", n, err)
	}
	return nil
}

// RegisterFiles installs fds in the ring's fixed file table: fds[i] is
// then file i of an SQE with SQEFixedFile, and the kernel skips looking
// the descriptor up (and its reference counting) on every request.
func (r *Ring) RegisterFiles(fds []int32) error {
	if len(fds) == 0 {
		return fmt.Errorf("register files: none given")
	}
	if err := r.register(registerFiles, unsafe.Pointer(&fds[0]), uint32(len(fds))); err != nil {
		return fmt.Errorf("register %d files: %w", len(fds), err)
	}
	return nil
}

func (r *Ring) register(op uint32, arg unsafe.Pointer, n uint32) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uintptr(op), uintptr(arg), uintptr(n), 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}
