package rpc

import "fmt"

// replyReader parses a session's reply frames and completes the calls they
// answer. It never reads by itself: next says where the next bytes from the
// socket should go and got is told how many arrived. So one parser serves
// both ways a session is read: its reader goroutine, which blocks in Read,
// and a Poller's thread, which reads only what the socket already holds and
// may stop in the middle of a frame (see poller.go).
//
// Small frames go through a staging buffer, many per read. A large payload
// part (a read's body) is read straight into the caller's buffer once the
// staged bytes are used up, so big replies are not copied twice.
type replyReader struct {
	cc *clientConn
	s  *session

	buf    []byte // staging: buf[r:w] arrived and is not parsed yet
	r, w   int
	direct bool // the last next() pointed into a payload part, not buf

	// The frame being read, once its header is parsed.
	inFrame bool
	hl, bl  int
	idx     int
	call    *Call // nil: the frame is skipped
	result  error // the call's outcome if the frame reads whole
	remote  bool  // an error reply: parts[0] is its message
	parts   [2]part
	pi      int // current part
	scratch []byte
}

// part is where a stretch of a frame's payload goes: dst[:n], or nowhere
// (discarded) when dst is nil.
type part struct {
	dst  []byte
	n    int
	done int
}

func newReplyReader(cc *clientConn, s *session, size int) *replyReader {
	return &replyReader{cc: cc, s: s, buf: make([]byte, size)}
}

// next returns the buffer the next read from the socket should fill.
func (r *replyReader) next() []byte {
	if r.inFrame && r.r == r.w {
		if p := &r.parts[r.pi]; p.dst != nil && p.n-p.done >= len(r.buf)/2 {
			r.direct = true
			return p.dst[p.done:p.n]
		}
	}
	r.direct = false
	// parse leaves at most a partial frame header staged: a short move.
	r.w = copy(r.buf, r.buf[r.r:r.w])
	r.r = 0
	return r.buf[r.w:]
}

// got takes the n bytes that arrived in the buffer next returned and parses
// what it can. An error means the stream can no longer be trusted.
func (r *replyReader) got(n int) error {
	if r.direct {
		r.parts[r.pi].done += n
		r.step()
		return r.parse()
	}
	r.w += n
	return r.parse()
}

// parse consumes the staged bytes: frame headers, and payload into the
// parts of the frame being read.
func (r *replyReader) parse() error {
	for {
		if !r.inFrame {
			if r.w-r.r < frameHeaderSize {
				return nil
			}
			if err := r.begin(r.buf[r.r : r.r+frameHeaderSize]); err != nil {
				return err
			}
			r.r += frameHeaderSize
			r.step()
			continue
		}
		if r.r == r.w {
			return nil
		}
		p := &r.parts[r.pi]
		k := min(p.n-p.done, r.w-r.r)
		if p.dst != nil {
			copy(p.dst[p.done:], r.buf[r.r:r.r+k])
		}
		p.done += k
		r.r += k
		r.step()
	}
}

// step moves past the parts that are full and finishes the frame after
// the last one.
func (r *replyReader) step() {
	for r.inFrame && r.parts[r.pi].done == r.parts[r.pi].n {
		if r.pi == len(r.parts)-1 {
			r.finish()
			return
		}
		r.pi++
	}
}

// begin decodes a frame header and finds the call it answers, marking the
// call's buffers busy until the frame is read (or the session fails).
func (r *replyReader) begin(hb []byte) error {
	cc := r.cc
	h, err := decodeFrameHeader(hb, cc.c.lim, flagResponse, flagResponse|flagError)
	if err != nil {
		return err
	}
	hl, bl := int(h.headerLen), int(h.bodyLen)
	idx, gen := splitID(h.id)

	cc.mu.Lock()
	if r.s.outstanding > 0 {
		r.s.outstanding-- // a reply, even a late one, answers one request
	}
	var call *Call
	if idx < len(cc.slots) {
		if sl := &cc.slots[idx]; sl.gen == gen && sl.state == slotSent && !sl.finished {
			call = sl.call
			sl.busy++
		}
	}
	cc.mu.Unlock()

	r.inFrame, r.pi = true, 0
	r.hl, r.bl, r.idx, r.call, r.result, r.remote = hl, bl, idx, call, nil, false
	switch {
	case call == nil:
		// A late reply to an expired call, or an ID never issued: skip it.
		r.parts = [2]part{{n: hl + bl}, {}}
	case h.flags&flagError != 0:
		if cap(r.scratch) < hl {
			r.scratch = make([]byte, hl)
		}
		r.remote = true
		r.parts = [2]part{{dst: r.scratch[:hl], n: hl}, {n: bl}}
	case hl > cap(call.RespHeader) || bl > cap(call.RespBody):
		r.result = fmt.Errorf("%w: reply header %d / body %d bytes, buffers hold %d / %d",
			ErrTooLarge, hl, bl, cap(call.RespHeader), cap(call.RespBody))
		r.parts = [2]part{{n: hl + bl}, {}}
	default:
		r.parts = [2]part{{dst: call.RespHeader[:hl], n: hl}, {dst: call.RespBody[:bl], n: bl}}
	}
	return nil
}

// finish completes the call of the frame just read.
func (r *replyReader) finish() {
	r.inFrame = false
	call := r.call
	if call == nil {
		return
	}
	r.call = nil
	result := r.result
	if r.remote {
		result = &RemoteError{Msg: string(r.scratch[:r.hl])}
	}
	cc := r.cc
	cc.mu.Lock()
	if !cc.slots[r.idx].finished && result == nil {
		call.RespHeader = call.RespHeader[:r.hl]
		call.RespBody = call.RespBody[:r.bl]
	}
	cc.finishLocked(r.idx, result)
	fired := cc.releaseLocked(r.idx)
	cc.mu.Unlock()
	if fired != nil {
		fired.fire()
	}
}

// abort lets go of the buffers of the call whose reply was being read when
// the stream failed. The call stays pending unless it already finished:
// dropping the session fails it with a connection error.
func (r *replyReader) abort() {
	call := r.call
	r.inFrame, r.call = false, nil
	if call == nil {
		return
	}
	cc := r.cc
	cc.mu.Lock()
	fired := cc.releaseLocked(r.idx)
	cc.mu.Unlock()
	if fired != nil {
		fired.fire()
	}
}
