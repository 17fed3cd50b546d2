package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire constants; see the package documentation for the frame layout.
const (
	frameMagic      uint16 = 0x4253 // "SB" on the wire, little-endian
	frameVersion    uint8  = 1
	frameHeaderSize        = 24
	// Where the u32 lengths of the service header and the body sit in
	// the fixed header.
	frameHeaderLenOffset = 16
	frameBodyLenOffset   = 20

	// DefaultMaxHeader bounds the service header of a frame.
	DefaultMaxHeader = 64 << 10
	// DefaultMaxBody bounds the body of a frame: one 8 MiB I/O plus room for
	// a service trailer.
	DefaultMaxBody = 8<<20 + 64<<10

	// maxFrameBound caps the configurable bounds so a length always fits the
	// u32 on the wire and an int on every platform.
	maxFrameBound = 1 << 30
)

// frameFlags says what a frame is.
type frameFlags uint8

const (
	flagRequest  frameFlags = 1 << 0
	flagResponse frameFlags = 1 << 1
	flagError    frameFlags = 1 << 2 // with flagResponse: header is an error message
)

// ErrMalformedFrame is wrapped by every frame decoding error.
var ErrMalformedFrame = errors.New("rpc: malformed frame")

// frameHeader is the decoded fixed part of a frame.
type frameHeader struct {
	flags     frameFlags
	id        uint64
	headerLen uint32
	bodyLen   uint32
}

// frameLimits are the bounds a decoder enforces before reading a payload.
type frameLimits struct {
	maxHeader, maxBody int
}

func (l frameLimits) withDefaults() frameLimits {
	l.maxHeader = boundOrDefault(l.maxHeader, DefaultMaxHeader)
	l.maxBody = boundOrDefault(l.maxBody, DefaultMaxBody)
	return l
}

func boundOrDefault(v, def int) int {
	switch {
	case v <= 0:
		return def
	case v > maxFrameBound:
		return maxFrameBound
	}
	return v
}

// encode writes h into b, which must hold frameHeaderSize bytes.
func (h *frameHeader) encode(b []byte) {
	_ = b[frameHeaderSize-1]
	binary.LittleEndian.PutUint16(b[0:], frameMagic)
	b[2] = frameVersion
	b[3] = byte(h.flags)
	binary.LittleEndian.PutUint32(b[4:], 0)
	binary.LittleEndian.PutUint64(b[8:], h.id)
	binary.LittleEndian.PutUint32(b[frameHeaderLenOffset:], h.headerLen)
	binary.LittleEndian.PutUint32(b[frameBodyLenOffset:], h.bodyLen)
}

// decodeFrameHeader parses and validates the fixed header in b. The flags
// must be one of the combinations in allowed (a request for a server, a
// response or an error response for a client), and both lengths must be
// within lim, so a caller may allocate or read that many bytes afterwards.
func decodeFrameHeader(b []byte, lim frameLimits, allowed ...frameFlags) (frameHeader, error) {
	if len(b) < frameHeaderSize {
		return frameHeader{}, fmt.Errorf("%w: %d header bytes, want %d", ErrMalformedFrame, len(b), frameHeaderSize)
	}
	if m := binary.LittleEndian.Uint16(b[0:]); m != frameMagic {
		return frameHeader{}, fmt.Errorf("%w: bad magic %#04x", ErrMalformedFrame, m)
	}
	if v := b[2]; v != frameVersion {
		return frameHeader{}, fmt.Errorf("%w: unsupported version %d (want %d)", ErrMalformedFrame, v, frameVersion)
	}
	if r := binary.LittleEndian.Uint32(b[4:]); r != 0 {
		return frameHeader{}, fmt.Errorf("%w: reserved field is %#x, want 0", ErrMalformedFrame, r)
	}
	h := frameHeader{
		flags:     frameFlags(b[3]),
		id:        binary.LittleEndian.Uint64(b[8:]),
		headerLen: binary.LittleEndian.Uint32(b[frameHeaderLenOffset:]),
		bodyLen:   binary.LittleEndian.Uint32(b[frameBodyLenOffset:]),
	}
	ok := false
	for _, f := range allowed {
		ok = ok || h.flags == f
	}
	if !ok {
		return frameHeader{}, fmt.Errorf("%w: unexpected flags %#02x", ErrMalformedFrame, uint8(h.flags))
	}
	if uint64(h.headerLen) > uint64(lim.maxHeader) {
		return frameHeader{}, fmt.Errorf("%w: header length %d over limit %d", ErrMalformedFrame, h.headerLen, lim.maxHeader)
	}
	if uint64(h.bodyLen) > uint64(lim.maxBody) {
		return frameHeader{}, fmt.Errorf("%w: body length %d over limit %d", ErrMalformedFrame, h.bodyLen, lim.maxBody)
	}
	return h, nil
}
