package netns_test

import (
	"crypto/sha256"
	"math/rand/v2"
	"slices"
)

// blockSize is the write model's unit.
const blockSize = 4096

// extent is a byte range of the VDI.
type extent struct {
	off int64
	n   int
}

// model is what the VDI must hold: per 4 KiB block, the token its content
// is generated from (absent: never written, zeros). Writes are whole
// blocks; reads may be any range.
type model struct {
	size    int64
	blocks  map[int64]uint64 // block index -> token
	next    uint64           // last token handed out
	written []extent         // every extent ever written
}

func newModel(size int64) *model {
	return &model{size: size, blocks: map[int64]uint64{}}
}

// randomExtents picks count extents of 4 KiB..1 MiB, block aligned, each in
// its own random 1 MiB slot (so they may be written concurrently), and
// records their new content.
func (m *model) randomExtents(r *rand.Rand, count int) []extent {
	slots := r.Perm(int(m.size >> 20))[:count]
	exts := make([]extent, count)
	for k, s := range slots {
		n := (1 + r.IntN(1<<20/blockSize)) * blockSize
		off := int64(s)<<20 + int64(r.IntN((1<<20-n)/blockSize+1))*blockSize
		exts[k] = extent{off: off, n: n}
		for blk := off / blockSize; blk < (off+int64(n))/blockSize; blk++ {
			m.next++
			m.blocks[blk] = m.next
		}
	}
	m.written = append(m.written, exts...)
	return exts
}

// fillBlock writes the content of token into p (one block).
func fillBlock(p []byte, token uint64) {
	r := rand.New(rand.NewPCG(token, 11))
	for i := 0; i+8 <= len(p); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			p[i+j] = byte(v >> (8 * j))
		}
	}
}

// bytes is the content the VDI must have at [off, off+n).
func (m *model) bytes(off int64, n int) []byte {
	out := make([]byte, n)
	blk := make([]byte, blockSize)
	for b := off / blockSize; b*blockSize < off+int64(n); b++ {
		token, ok := m.blocks[b]
		if !ok {
			continue // zeros
		}
		fillBlock(blk, token)
		lo, hi := max(b*blockSize, off), min((b+1)*blockSize, off+int64(n))
		copy(out[lo-off:hi-off], blk[lo-b*blockSize:hi-b*blockSize])
	}
	return out
}

// sum is the sha256 of the whole VDI.
func (m *model) sum() []byte {
	h := sha256.New()
	for off := int64(0); off < m.size; off += 1 << 20 {
		h.Write(m.bytes(off, 1<<20))
	}
	return h.Sum(nil)
}

// objects lists, ascending, the indexes of the objects of objSize bytes
// that hold written blocks.
func (m *model) objects(objSize int64) []uint32 {
	seen := map[uint32]bool{}
	for b := range m.blocks {
		seen[uint32(b*blockSize/objSize)] = true
	}
	var idxs []uint32
	for idx := range seen {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	return idxs
}
