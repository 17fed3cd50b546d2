package rpc

import (
	"net"
	"os"
	"syscall"

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

// writeBuffers writes bufs to the socket with writev, consuming what was
// written from bufs. Without wait it stops when the socket is full and
// leaves the rest in bufs; with wait the RawConn waits for room (in the
// netpoller for a net.Conn, in poll(2) for a detached socket) until all
// is written.
func writeBuffers(rc syscall.RawConn, bufs *net.Buffers, wait bool) error {
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for len(*bufs) > 0 {
			n, e := unix.Writev(int(fd), (*bufs)[:min(len(*bufs), maxIovecs)])
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN:
				return !wait // full: stop, or let rc wait for room
			case e != nil:
				werr = os.NewSyscallError("writev", e)
				return true
			}
			advance(bufs, n)
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return err
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
