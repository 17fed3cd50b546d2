package rpc

import (
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawRead is read(2) on a non-blocking socket as a raw system call. It
// never blocks, so the scheduler need not know it is in a system call,
// and not telling it matters: syscall.Syscall's entersyscall wakes the
// runtime's sysmon thread whenever the process was idle, and sysmon then
// polls every 20 µs while the request runs. At queue depth 1, where a
// node is idle between requests, that measured about 3 of the node's 4
// context switches per request. vecWriter's writev is raw for the same
// reason.
func rawRead(fd uintptr, p []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		default:
			return 0, e
		}
	}
}

// rawReader reads a socket with rawRead through its RawConn. A Poller's
// thread reads without waiting (read, wait false: unix.EAGAIN when the
// socket is empty); as an io.Reader (Read, over rc) it waits in the
// netpoller, honouring the connection's read deadline. Its state and the
// function it hands the RawConn are made once, so a read allocates
// nothing.
type rawReader struct {
	rc   syscall.RawConn // Read's socket
	p    []byte
	n    int
	err  error
	wait bool
	fn   func(fd uintptr) bool
	// reads counts the system calls made, for the tests that check a
	// reply costs one (atomic: a test reads it while a poller may read
	// the socket).
	reads atomic.Uint64
}

// read reads what rc's socket holds into p, once. Its error is the read's
// errno as it is, or the RawConn's (the connection closed, the deadline
// passed).
func (r *rawReader) read(rc syscall.RawConn, p []byte, wait bool) (int, error) {
	if r.fn == nil {
		r.fn = r.try
	}
	r.p, r.wait, r.n, r.err = p, wait, 0, nil
	err := rc.Read(r.fn)
	r.p = nil
	if err != nil {
		return 0, err
	}
	return r.n, r.err
}

func (r *rawReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.read(r.rc, p, true)
	if err != nil {
		return 0, readError(err)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// readError names a read's errno as the failed system call (os.SyscallError),
// as a net.Conn's Read would; other errors pass as they are.
func readError(err error) error {
	if errno, ok := err.(unix.Errno); ok {
		return os.NewSyscallError("read", errno)
	}
	return err
}

// try reads once; false (let the RawConn wait) only when waiting and the
// socket is empty.
func (r *rawReader) try(fd uintptr) bool {
	r.reads.Add(1)
	r.n, r.err = rawRead(fd, r.p)
	return !r.wait || r.err != unix.EAGAIN
}
