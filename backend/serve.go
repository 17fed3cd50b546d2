package backend

import (
	"io"
	"syscall"
)

// Serve runs one request on a synchronous backend: the ReaderAt and
// WriterAt, and the optional interfaces where the backend has them.
func Serve(be Backend, r *Request) error {
	switch r.Op {
	case OpRead:
		n, err := be.ReadAt(r.Buf, r.Offset)
		if err == io.EOF && n < len(r.Buf) {
			clear(r.Buf[n:]) // past the end of a short backing store: zeroes
			err = nil
		}
		return err
	case OpWrite:
		if _, err := be.WriteAt(r.Buf, r.Offset); err != nil {
			return err
		}
		if r.FUA {
			return flush(be)
		}
		return nil
	case OpFlush:
		return flush(be)
	case OpDiscard:
		if dis, ok := be.(Discarder); ok {
			return dis.Discard(r.Offset, int64(r.Length))
		}
		return syscall.EOPNOTSUPP
	case OpWriteZeroes:
		if z, ok := be.(ZeroWriter); ok {
			return z.WriteZeroes(r.Offset, int64(r.Length))
		}
		return writeZeroes(be, r.Offset, int64(r.Length))
	}
	return syscall.EOPNOTSUPP
}

func flush(be Backend) error {
	if f, ok := be.(Flusher); ok {
		return f.Flush()
	}
	return nil
}

const zeroChunk = 64 << 10

// zeroes is what backends without ZeroWriter write zeroes from.
var zeroes [zeroChunk]byte

func writeZeroes(be Backend, off, n int64) error {
	for n > 0 {
		c := min(n, int64(len(zeroes)))
		if _, err := be.WriteAt(zeroes[:c], off); err != nil {
			return err
		}
		off, n = off+c, n-c
	}
	return nil
}
