package sheep

import (
	"fmt"
	"io"

	"github.com/sheepblk/sheepblk/backend"
)

// waiter completes a synchronous request.
type waiter chan *backend.Request

func (w waiter) Complete(r *backend.Request) { w <- r }

// do runs one request and waits for it (every call has a deadline, so it
// returns). Requests larger than MaxIOSize are fine; they allocate.
func (b *Backend) do(op backend.Op, p []byte, off int64, length int) error {
	w := make(waiter, 1)
	r := &backend.Request{Op: op, Offset: off, Length: length, Buf: p}
	r.Bind(w, 0)
	var err error
	b.submit(r, &err, false)
	<-w
	if err != nil {
		return fmt.Errorf("%v of %d bytes at %d on vdi %s: %w", op, length, off, b.vdi.Name, err)
	}
	return nil
}

// ReadAt reads len(p) bytes at off; past the end of the VDI it reads what
// there is and returns io.EOF.
func (b *Backend) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: negative offset", off)
	}
	if off >= b.vdi.Size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := b.vdi.Size - off; int64(n) > rest {
		n = int(rest)
	}
	if err := b.do(backend.OpRead, p[:n], off, n); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes p at off; the range must lie inside the VDI.
func (b *Backend) WriteAt(p []byte, off int64) (int, error) {
	if err := b.do(backend.OpWrite, p, off, len(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush makes every write acknowledged so far durable on every node it
// went to.
func (b *Backend) Flush() error { return b.do(backend.OpFlush, nil, 0, 0) }

// Discard forgets a range; it reads back as zeros.
func (b *Backend) Discard(off, length int64) error {
	return b.doLong(backend.OpDiscard, off, length)
}

// WriteZeroes zeroes a range.
func (b *Backend) WriteZeroes(off, length int64) error {
	return b.doLong(backend.OpWriteZeroes, off, length)
}

// doLong runs a bufferless request over a range that may exceed an int32
// Length, in object-aligned chunks.
func (b *Backend) doLong(op backend.Op, off, length int64) error {
	const chunk = 1 << 30
	for length > 0 {
		n := min(length, chunk)
		if err := b.do(op, nil, off, int(n)); err != nil {
			return err
		}
		off, length = off+n, length-n
	}
	return nil
}
