package backend

import (
	"fmt"
	"syscall"
)

// FailRange wraps a backend so that reads and writes touching one byte
// range fail with EIO, as a disk with bad sectors would. It exists to test
// that an error reaches exactly the requests it concerns and nothing else.
type FailRange struct {
	Backend
	Off, Len int64
}

func (f *FailRange) hits(off int64, n int) bool {
	return off < f.Off+f.Len && f.Off < off+int64(n)
}

func (f *FailRange) ReadAt(p []byte, off int64) (int, error) {
	if f.hits(off, len(p)) {
		return 0, fmt.Errorf("read %d+%d: injected failure: %w", off, len(p), syscall.EIO)
	}
	return f.Backend.ReadAt(p, off)
}

func (f *FailRange) WriteAt(p []byte, off int64) (int, error) {
	if f.hits(off, len(p)) {
		return 0, fmt.Errorf("write %d+%d: injected failure: %w", off, len(p), syscall.EIO)
	}
	return f.Backend.WriteAt(p, off)
}

// Flush forwards to the wrapped backend where it has a cache.
func (f *FailRange) Flush() error {
	if fl, ok := f.Backend.(Flusher); ok {
		return fl.Flush()
	}
	return nil
}

// Discard forwards to the wrapped backend where it can discard.
func (f *FailRange) Discard(off, length int64) error {
	if d, ok := f.Backend.(Discarder); ok {
		return d.Discard(off, length)
	}
	return syscall.EOPNOTSUPP
}
