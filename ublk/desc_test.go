package ublk

import (
	"math"
	"math/big"
	"testing"
	"unsafe"

	"github.com/sheepblk/sheepblk/backend"
	"github.com/sheepblk/sheepblk/ublk/uapi"
)

const descTestMaxIO = 512 << 10

// wantAccepted is the rule requestFromDesc implements, computed without
// any fixed-width arithmetic so that it cannot wrap.
func wantAccepted(d *uapi.IODesc, maxIO int, devSize int64) bool {
	switch d.Op() {
	case uapi.IOOpFlush:
		return true
	case uapi.IOOpRead, uapi.IOOpWrite:
		if int64(d.NrSectors)*512 > int64(maxIO) {
			return false
		}
	case uapi.IOOpDiscard, uapi.IOOpWriteZeroes:
	default:
		return false
	}
	end := new(big.Int).SetUint64(d.StartSector)
	end.Add(end, big.NewInt(int64(d.NrSectors)))
	end.Mul(end, big.NewInt(512))
	return end.Cmp(big.NewInt(devSize)) <= 0
}

// checkRequest asserts the invariants of an accepted request.
func checkRequest(t *testing.T, d *uapi.IODesc, buf []byte, devSize int64, r *backend.Request) {
	t.Helper()
	if r.FUA != (d.Flags()&uapi.IOFFUA != 0) {
		t.Fatalf("FUA %v for flags %#x", r.FUA, d.Flags())
	}
	wantOp := map[uint8]backend.Op{uapi.IOOpRead: backend.OpRead, uapi.IOOpWrite: backend.OpWrite,
		uapi.IOOpFlush: backend.OpFlush, uapi.IOOpDiscard: backend.OpDiscard, uapi.IOOpWriteZeroes: backend.OpWriteZeroes}[d.Op()]
	if r.Op != wantOp {
		t.Fatalf("op %v for descriptor op %d", r.Op, d.Op())
	}
	if r.Op == backend.OpFlush {
		if r.Offset != 0 || r.Length != 0 || r.Buf != nil {
			t.Fatalf("flush with offset %d length %d buf %d", r.Offset, r.Length, len(r.Buf))
		}
		return
	}
	if r.Offset < 0 || r.Length < 0 || r.Offset > devSize || int64(r.Length) > devSize-r.Offset {
		t.Fatalf("request [%d, +%d) outside the %d-byte device", r.Offset, r.Length, devSize)
	}
	if uint64(r.Offset) != d.StartSector*512 || d.StartSector > math.MaxInt64/512 || r.Length != int(d.NrSectors)*512 {
		t.Fatalf("request [%d, +%d) is not the descriptor's sectors %d+%d", r.Offset, r.Length, d.StartSector, d.NrSectors)
	}
	switch r.Op {
	case backend.OpRead, backend.OpWrite:
		if len(r.Buf) != r.Length || r.Length > len(buf) {
			t.Fatalf("buffer of %d bytes for a %d-byte request, tag buffer %d", len(r.Buf), r.Length, len(buf))
		}
		if r.Length > 0 && unsafe.SliceData(r.Buf) != unsafe.SliceData(buf) {
			t.Fatal("request buffer is not the tag's buffer")
		}
	default:
		if r.Buf != nil {
			t.Fatalf("%v request carries a buffer", r.Op)
		}
	}
}

func TestRequestFromDesc(t *testing.T) {
	buf := make([]byte, descTestMaxIO)
	const devSize = 1 << 30
	fua := uint32(uapi.IOFFUA)
	cases := []struct {
		name string
		d    uapi.IODesc
		ok   bool
	}{
		{"read", uapi.IODesc{OpFlags: uapi.IOOpRead, NrSectors: 8, StartSector: 16}, true},
		{"write fua max io", uapi.IODesc{OpFlags: uapi.IOOpWrite | fua, NrSectors: descTestMaxIO / 512}, true},
		{"write last sector", uapi.IODesc{OpFlags: uapi.IOOpWrite, NrSectors: 1, StartSector: devSize/512 - 1}, true},
		{"write past the end", uapi.IODesc{OpFlags: uapi.IOOpWrite, NrSectors: 2, StartSector: devSize/512 - 1}, false},
		{"read beyond buffer", uapi.IODesc{OpFlags: uapi.IOOpRead, NrSectors: descTestMaxIO/512 + 1}, false},
		{"flush", uapi.IODesc{OpFlags: uapi.IOOpFlush, NrSectors: 99, StartSector: math.MaxUint64}, true},
		{"discard whole device", uapi.IODesc{OpFlags: uapi.IOOpDiscard, NrSectors: devSize / 512}, true},
		{"write zeroes past the end", uapi.IODesc{OpFlags: uapi.IOOpWriteZeroes, NrSectors: 1, StartSector: devSize / 512}, false},
		{"write same", uapi.IODesc{OpFlags: uapi.IOOpWriteSame, NrSectors: 1}, false},
		{"unknown op", uapi.IODesc{OpFlags: 0x7f, NrSectors: 1}, false},
		// Regressions: the offset used to be computed as StartSector<<9 in
		// an int64 and the end as Offset+Length, both of which wrap, so
		// these reached the backend at a wrong offset.
		{"start sector wraps to 0", uapi.IODesc{OpFlags: uapi.IOOpWrite, NrSectors: 1, StartSector: 1 << 55}, false},
		{"start sector wraps negative", uapi.IODesc{OpFlags: uapi.IOOpRead, NrSectors: 1, StartSector: 1 << 54}, false},
		{"end wraps", uapi.IODesc{OpFlags: uapi.IOOpDiscard, NrSectors: 4, StartSector: math.MaxInt64>>9 - 1}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := backend.Request{Buf: buf} // stale state from a previous request
			got := requestFromDesc(&tc.d, buf, len(buf), devSize, &r)
			if got != tc.ok || got != wantAccepted(&tc.d, len(buf), devSize) {
				t.Fatalf("accepted = %v, want %v", got, tc.ok)
			}
			if got {
				checkRequest(t, &tc.d, buf, devSize, &r)
			}
		})
	}
}

// Any descriptor is accepted exactly when it names a known operation on a
// range inside the device (and, for reads and writes, inside the tag's
// buffer), and an accepted request never reaches beyond either.
func FuzzRequestFromDesc(f *testing.F) {
	f.Add(uint32(uapi.IOOpRead), uint32(8), uint64(0), int64(1<<30), uint16(1024))
	f.Add(uint32(uapi.IOOpWrite|uapi.IOFFUA), uint32(1024), uint64(1<<21-1024), int64(1<<30), uint16(1024))
	f.Add(uint32(uapi.IOOpFlush), uint32(0), uint64(0), int64(0), uint16(0))
	f.Add(uint32(uapi.IOOpDiscard), uint32(math.MaxUint32), uint64(1), int64(math.MaxInt64), uint16(8))
	f.Add(uint32(uapi.IOOpWriteZeroes), uint32(1), uint64(1<<55), int64(1<<40), uint16(8))
	f.Add(uint32(uapi.IOOpRead), uint32(1), uint64(1<<54), int64(math.MaxInt64), uint16(8))
	f.Add(uint32(uapi.IOOpWriteSame), uint32(1), uint64(0), int64(1<<20), uint16(8))
	f.Add(uint32(0xff), uint32(1), uint64(0), int64(1<<20), uint16(8))
	buf := make([]byte, 2048*512)
	f.Fuzz(func(t *testing.T, opFlags, nrSectors uint32, startSector uint64, devSize int64, maxIOSectors uint16) {
		if devSize < 0 {
			devSize = -(devSize + 1) // a device size is never negative
		}
		tagBuf := buf[:int(maxIOSectors%2049)*512]
		d := uapi.IODesc{OpFlags: opFlags, NrSectors: nrSectors, StartSector: startSector}
		var r backend.Request
		got := requestFromDesc(&d, tagBuf, len(tagBuf), devSize, &r)
		if want := wantAccepted(&d, len(tagBuf), devSize); got != want {
			t.Fatalf("descriptor op %d sectors %d+%d, device %d, buffer %d: accepted = %v, want %v",
				d.Op(), startSector, nrSectors, devSize, len(tagBuf), got, want)
		}
		if got {
			checkRequest(t, &d, tagBuf, devSize, &r)
		}
	})
}

// In zero-copy mode the tag has no buffer in the daemon: a request is
// still bounded by the device's largest I/O, and carries no buffer.
func TestRequestFromDescZeroCopy(t *testing.T) {
	const maxLen, devSize = 1 << 20, 1 << 30
	for _, tc := range []struct {
		d  uapi.IODesc
		ok bool
	}{
		{uapi.IODesc{OpFlags: uapi.IOOpRead, NrSectors: maxLen >> 9, StartSector: 8}, true},
		{uapi.IODesc{OpFlags: uapi.IOOpWrite, NrSectors: 1}, true},
		{uapi.IODesc{OpFlags: uapi.IOOpWrite, NrSectors: maxLen>>9 + 1}, false},
		{uapi.IODesc{OpFlags: uapi.IOOpRead, NrSectors: 8, StartSector: devSize >> 9}, false},
	} {
		r := backend.Request{Buf: make([]byte, 16)} // stale state from a previous request
		if got := requestFromDesc(&tc.d, nil, maxLen, devSize, &r); got != tc.ok {
			t.Fatalf("%+v: accepted = %v, want %v", tc.d, got, tc.ok)
		}
		if tc.ok && (r.Buf != nil || r.Length != int(tc.d.NrSectors)<<9) {
			t.Fatalf("%+v: request of %d bytes with a %d-byte buffer, want no buffer", tc.d, r.Length, len(r.Buf))
		}
	}
}
