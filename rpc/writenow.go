package rpc

import (
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxIovecs is the most buffers one writev takes (IOV_MAX on Linux).
const maxIovecs = 1024

// rawConn is conn's socket for non-blocking writes, or nil when conn is
// not a plain socket (TLS).
func rawConn(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// vecWriter writes net.Buffers to a socket with writev through its
// RawConn, consuming what was written. Without wait it stops when the
// socket is full and leaves the rest; with wait the RawConn waits for room
// (in the netpoller for a net.Conn, in poll(2) for a detached socket)
// until all is written. It allocates nothing per write: the iovec array and
// the function handed to the RawConn are made once per writer.
type vecWriter struct {
	bufs *net.Buffers
	wait bool
	err  error
	iov  []unix.Iovec
	fn   func(fd uintptr) bool
}

func (v *vecWriter) write(rc syscall.RawConn, bufs *net.Buffers, wait bool) error {
	if v.fn == nil {
		v.fn = v.try
	}
	v.bufs, v.wait, v.err = bufs, wait, nil
	err := rc.Write(v.fn)
	v.bufs = nil
	clear(v.iov) // hold no caller's buffer
	if err == nil {
		err = v.err
	}
	return err
}

// try writes until done, the socket is full or an error.
func (v *vecWriter) try(fd uintptr) bool {
	for len(*v.bufs) > 0 {
		v.iov = v.iov[:0]
		for _, b := range (*v.bufs)[:min(len(*v.bufs), maxIovecs)] {
			if len(b) > 0 {
				v.iov = append(v.iov, unix.Iovec{Base: &b[0], Len: uint64(len(b))})
			}
		}
		// advance leaves no empty buffer first, so iov is not empty.
		// Raw: on a non-blocking socket writev never blocks (see rawRead).
		n, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&v.iov[0])), uintptr(len(v.iov)))
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			return !v.wait // full: stop, or let the RawConn wait for room
		case e != 0:
			v.err = os.NewSyscallError("writev", e)
			return true
		}
		advance(v.bufs, int(n))
	}
	return true
}

// advance drops the first n bytes of bufs.
func advance(bufs *net.Buffers, n int) {
	b := *bufs
	for n > 0 && len(b) > 0 {
		if n < len(b[0]) {
			b[0] = b[0][n:]
			break
		}
		n -= len(b[0])
		b[0] = nil
		b = b[1:]
	}
	for len(b) > 0 && len(b[0]) == 0 {
		b = b[1:] // empty buffers (a header of length 0) need no writev
	}
	*bufs = b
}
