package backend

import (
	"sync"
	"sync/atomic"
)

// memChunk is the allocation unit of Mem: memory is taken on first write
// of a chunk, so a large RAM disk costs only what is written to it.
const memChunk = 1 << 20

// Mem keeps the device in RAM. Reads of never-written ranges return
// zeroes; discarding a whole chunk gives its memory back.
type Mem struct {
	size   int64
	chunks []atomic.Pointer[[memChunk]byte]
	mu     sync.Mutex // serialises chunk allocation and release
}

// NewMem returns a RAM backend of the given size.
func NewMem(size int64) *Mem {
	return &Mem{size: size, chunks: make([]atomic.Pointer[[memChunk]byte], (size+memChunk-1)/memChunk)}
}

func (m *Mem) Size() int64  { return m.size }
func (m *Mem) Close() error { return nil }

// span calls fn for each chunk piece of [off, off+n).
func span(off int64, n int, fn func(idx int, in int, p0, p1 int)) {
	for done := 0; done < n; {
		idx := int((off + int64(done)) / memChunk)
		in := int((off + int64(done)) % memChunk)
		c := min(n-done, memChunk-in)
		fn(idx, in, done, done+c)
		done += c
	}
}

func (m *Mem) ReadAt(p []byte, off int64) (int, error) {
	if err := checkRange(off, int64(len(p)), m.size); err != nil {
		return 0, err
	}
	span(off, len(p), func(idx, in, p0, p1 int) {
		if c := m.chunks[idx].Load(); c != nil {
			copy(p[p0:p1], c[in:])
		} else {
			clear(p[p0:p1])
		}
	})
	return len(p), nil
}

func (m *Mem) WriteAt(p []byte, off int64) (int, error) {
	if err := checkRange(off, int64(len(p)), m.size); err != nil {
		return 0, err
	}
	span(off, len(p), func(idx, in, p0, p1 int) {
		copy(m.chunk(idx)[in:], p[p0:p1])
	})
	return len(p), nil
}

func (m *Mem) chunk(idx int) *[memChunk]byte {
	if c := m.chunks[idx].Load(); c != nil {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.chunks[idx].Load(); c != nil {
		return c
	}
	c := new([memChunk]byte)
	m.chunks[idx].Store(c)
	return c
}

// Discard zeroes the range, releasing chunks it covers whole.
func (m *Mem) Discard(off, length int64) error {
	if err := checkRange(off, length, m.size); err != nil {
		return err
	}
	for length > 0 {
		idx := int(off / memChunk)
		in := off % memChunk
		c := min(length, memChunk-in)
		if in == 0 && c == memChunk {
			m.mu.Lock()
			m.chunks[idx].Store(nil)
			m.mu.Unlock()
		} else if ch := m.chunks[idx].Load(); ch != nil {
			clear(ch[in : in+c])
		}
		off, length = off+c, length-c
	}
	return nil
}

// Submit serves r at once on the caller's thread: a memory copy is
// cheaper than handing the request to another thread and back.
func (m *Mem) Submit(r *Request) { r.Done(Serve(m, r)) }

// WriteZeroes is Discard: both leave zeroes behind.
func (m *Mem) WriteZeroes(off, length int64) error { return m.Discard(off, length) }
