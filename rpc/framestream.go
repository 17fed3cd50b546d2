package rpc

import "encoding/binary"

// frameStream splits a connection's byte stream into frames. It never reads
// by itself: next says where the next bytes from the socket should go and
// got is told how many arrived. So one parser serves every way a stream is
// read: a goroutine blocked in Read, and a thread that reads only what the
// socket already holds and may stop in the middle of a frame (a client's
// Poller, the server's readPoller).
//
// Small frames go through a staging buffer, many per read. A large payload
// part is read straight into its destination once the staged bytes are used
// up, so big payloads are not copied twice.
//
// What a frame means is its sink's business: the client's replyReader and
// the server's requestReader.
type frameStream struct {
	sink frameSink

	buf    []byte // staging: buf[r:w] arrived and is not parsed yet
	r, w   int
	direct bool // the last next() pointed into a payload part, not buf

	inFrame bool    // a header was taken; its payload goes to parts
	parts   [2]part // set by the sink's begin
	pi      int     // current part
}

// frameSink gives frames their meaning.
type frameSink interface {
	// begin takes a frame header (frameHeaderSize bytes) and sets the
	// stream's parts to where its payload goes. An error stops the parse
	// with the header still staged: for a bad header the stream is
	// broken; a sink may also refuse for now (the server with no request
	// slot free) and be asked again by the next parse.
	begin(hb []byte) error
	// finish is called once the frame's payload is in its parts.
	finish()
}

// part is where a stretch of a frame's payload goes: dst[:n], or nowhere
// (discarded) when dst is nil.
type part struct {
	dst  []byte
	n    int
	done int
}

// next returns the buffer the next read from the socket should fill.
func (f *frameStream) next() []byte {
	if f.inFrame && f.r == f.w {
		if p := &f.parts[f.pi]; p.dst != nil && p.n-p.done >= len(f.buf)/2 {
			f.direct = true
			return p.dst[p.done:p.n]
		}
	}
	f.direct = false
	// A parse that ran to its end leaves at most a partial frame header
	// staged: a short move. (One a sink stopped is parsed again before
	// the next read.)
	f.w = copy(f.buf, f.buf[f.r:f.w])
	f.r = 0
	return f.buf[f.w:]
}

// got takes the n bytes that arrived in the buffer next returned and parses
// what it can. An error means the stream can no longer be trusted, unless
// the sink's begin returned it to stop for now.
func (f *frameStream) got(n int) error {
	if f.direct {
		f.parts[f.pi].done += n
		f.step()
		return f.parse()
	}
	f.w += n
	return f.parse()
}

// parse consumes the staged bytes: frame headers, and payload into the
// parts of the frame being read.
func (f *frameStream) parse() error {
	for {
		if !f.inFrame {
			if f.w-f.r < frameHeaderSize {
				return nil
			}
			if err := f.sink.begin(f.buf[f.r : f.r+frameHeaderSize]); err != nil {
				return err
			}
			f.r += frameHeaderSize
			f.inFrame, f.pi = true, 0
			f.step()
			continue
		}
		if f.r == f.w {
			return nil
		}
		p := &f.parts[f.pi]
		k := min(p.n-p.done, f.w-f.r)
		if p.dst != nil {
			copy(p.dst[p.done:], f.buf[f.r:f.r+k])
		}
		p.done += k
		f.r += k
		f.step()
	}
}

// step moves past the parts that are full and finishes the frame after
// the last one.
func (f *frameStream) step() {
	for f.inFrame && f.parts[f.pi].done == f.parts[f.pi].n {
		if f.pi == len(f.parts)-1 {
			f.inFrame = false
			f.sink.finish()
			return
		}
		f.pi++
	}
}

// wholeFrameStaged reports whether a whole frame waits in the staging
// buffer, so the parse gets to it without reading. (A header with lengths
// beyond the buffer counts as not staged, a malformed one too.)
func (f *frameStream) wholeFrameStaged() bool {
	if f.inFrame || f.w-f.r < frameHeaderSize {
		return false
	}
	hb := f.buf[f.r : f.r+frameHeaderSize]
	size := frameHeaderSize + uint64(binary.LittleEndian.Uint32(hb[frameHeaderLenOffset:])) +
		uint64(binary.LittleEndian.Uint32(hb[frameBodyLenOffset:]))
	return uint64(f.w-f.r) >= size
}

// midFrame reports whether the stream stopped inside a frame: an end of
// the stream here truncates it.
func (f *frameStream) midFrame() bool { return f.inFrame || f.r < f.w }
