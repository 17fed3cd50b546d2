package ublk

import (
	"math"

	"github.com/sheepblk/sheepblk/backend"
	"github.com/sheepblk/sheepblk/ublk/uapi"
)

// maxStartSector is the largest start sector whose byte offset fits an
// int64: beyond it, shifting by 9 would wrap.
const maxStartSector = math.MaxInt64 >> 9

// requestFromDesc fills r from the kernel's descriptor d of a tag whose
// requests may carry up to maxLen bytes, for a device of devSize bytes.
// buf is the tag's I/O buffer (at least maxLen bytes), or nil when the
// data stays in the kernel's pages (zero copy): r.Buf is then nil too. It
// returns false when the descriptor must not reach a backend: an unknown
// operation, a range outside the device, or a read or write larger than
// maxLen. The descriptor is input like any other: an accepted request
// never reaches outside the device or the tag's buffer.
func requestFromDesc(d *uapi.IODesc, buf []byte, maxLen int, devSize int64, r *backend.Request) bool {
	r.FUA = d.Flags()&uapi.IOFFUA != 0
	r.Buf = nil
	switch d.Op() {
	case uapi.IOOpRead:
		r.Op = backend.OpRead
	case uapi.IOOpWrite:
		r.Op = backend.OpWrite
	case uapi.IOOpFlush:
		r.Op, r.Offset, r.Length = backend.OpFlush, 0, 0
		return true
	case uapi.IOOpDiscard:
		r.Op = backend.OpDiscard
	case uapi.IOOpWriteZeroes:
		r.Op = backend.OpWriteZeroes
	default:
		return false
	}
	if d.StartSector > maxStartSector {
		return false
	}
	r.Offset = int64(d.StartSector) << 9
	r.Length = int(d.NrSectors) << 9 // at most 2^41: no overflow
	// Offset <= devSize first, so devSize-Offset cannot overflow.
	if r.Offset > devSize || int64(r.Length) > devSize-r.Offset {
		return false
	}
	if r.Op == backend.OpRead || r.Op == backend.OpWrite {
		if r.Length > maxLen {
			return false
		}
		if buf != nil {
			r.Buf = buf[:r.Length]
		}
	}
	return true
}
