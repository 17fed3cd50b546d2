package rpc

import (
	"math/bits"
	"sync"
)

// buffer is a pooled byte slice. Pools hold *buffer rather than []byte so that
// putting one back does not allocate a slice header on the heap.
type buffer struct {
	b []byte
}

// Size classes: powers of two from 512 B to 4 MiB, then whole MiB up to the
// largest frame bound, so an 8 MiB + 64 KiB body takes a 9 MiB buffer rather
// than a 16 MiB one.
const (
	minClassShift = 9  // 512 B
	maxPow2Shift  = 22 // 4 MiB
	mib           = 1 << 20
	numPow2       = maxPow2Shift - minClassShift + 1
	// maxPooled is the largest buffer kept in a pool; larger requests (only
	// possible with raised bounds) are allocated and left to the GC.
	maxPooled   = 16 * mib
	numClasses  = numPow2 + (maxPooled-(1<<maxPow2Shift))/mib
	pow2MaxSize = 1 << maxPow2Shift
)

var bufferPools [numClasses]sync.Pool

// classOf returns the size class for n bytes and that class's buffer size.
func classOf(n int) (class, size int) {
	if n <= 1<<minClassShift {
		return 0, 1 << minClassShift
	}
	if n <= pow2MaxSize {
		shift := bits.Len(uint(n - 1))
		return shift - minClassShift, 1 << shift
	}
	mibs := (n + mib - 1) / mib
	return numPow2 + mibs - (pow2MaxSize/mib + 1), mibs * mib
}

// getBuffer returns a buffer whose b has length n.
func getBuffer(n int) *buffer {
	if n > maxPooled {
		return &buffer{b: make([]byte, n)}
	}
	class, size := classOf(n)
	if v := bufferPools[class].Get(); v != nil {
		buf := v.(*buffer)
		buf.b = buf.b[:n]
		return buf
	}
	return &buffer{b: make([]byte, n, size)}
}

// putBuffer returns buf to its pool; buf must not be used afterwards.
func putBuffer(buf *buffer) {
	c := cap(buf.b)
	if c > maxPooled {
		return
	}
	class, size := classOf(c)
	if size != c {
		return // not one of ours
	}
	bufferPools[class].Put(buf)
}
