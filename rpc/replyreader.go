package rpc

import "fmt"

// replyReader gives a session's reply frames their meaning: it completes
// the calls they answer. Its frameStream does the reading (see there), on
// the session's reader goroutine or on a Poller's thread.
type replyReader struct {
	frameStream
	cc *clientConn
	s  *session

	// The frame being read, once its header is parsed.
	hl, bl  int
	idx     int
	call    *Call // nil: the frame is skipped
	result  error // the call's outcome if the frame reads whole
	remote  bool  // an error reply: parts[0] is its message
	scratch []byte
}

func newReplyReader(cc *clientConn, s *session, size int) *replyReader {
	r := &replyReader{cc: cc, s: s}
	r.frameStream = frameStream{sink: r, buf: make([]byte, size)}
	return r
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
