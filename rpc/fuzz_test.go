package rpc

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

var fuzzLimits = frameLimits{maxHeader: 256, maxBody: 4096}

func addFrameSeeds(f *testing.F, flags frameFlags) {
	f.Add(rawFrame(flags, 1, []byte("hdr"), []byte("body")))
	f.Add(rawFrame(flags, 0, nil, nil))
	f.Add(append(rawFrame(flags, 2, make([]byte, 12), make([]byte, 100)), rawFrame(flags, 3, []byte{1}, nil)...))
	f.Add(rawFrame(flags, 4, make([]byte, 256), make([]byte, 4096)))
	f.Add(rawFrame(flags, 5, []byte("x"), []byte("truncated"))[:30])
	over := rawFrame(flags, 6, nil, nil)
	binary.LittleEndian.PutUint32(over[20:], 1<<31)
	f.Add(over)
	f.Add(rawFrame(flagResponse|flagError, 0, []byte("remote failure"), nil))
	f.Add([]byte("SB\x01\x01garbage"))
	f.Add([]byte{})
}

// Any 24 bytes decode to an error or to a header within the limits that
// re-encodes to exactly the same bytes.
func FuzzFrameHeader(f *testing.F) {
	addFrameSeeds(f, flagRequest)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeFrameHeader(data, fuzzLimits, flagRequest, flagResponse, flagResponse|flagError)
		if err != nil {
			return
		}
		if int(h.headerLen) > fuzzLimits.maxHeader || int(h.bodyLen) > fuzzLimits.maxBody {
			t.Fatalf("decoded lengths %d/%d beyond limits", h.headerLen, h.bodyLen)
		}
		var b [frameHeaderSize]byte
		h.encode(b[:])
		if !bytes.Equal(b[:], data[:frameHeaderSize]) {
			t.Fatalf("re-encoded %x, decoded from %x", b, data[:frameHeaderSize])
		}
	})
}

// The server's request reader, fed arbitrary bytes in uneven pieces,
// delivers requests within the limits, each exactly the payload that
// followed its header, and then stops with an error or at the end; it never
// panics or reads past its bounds. (Twice: through a tiny staging buffer,
// and through one that holds whole frames, where "the next request is
// staged whole" must hold: the parse reaches it without another read.)
func FuzzReadFrame(f *testing.F) {
	addFrameSeeds(f, flagRequest)
	srv := NewServer(checksumHandler{}, ServerOptions{MaxHeader: fuzzLimits.maxHeader, MaxBody: fuzzLimits.maxBody})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, bufSize := range []int{frameHeaderSize + 8, 4096} {
			readFrames(t, srv, data, bufSize)
		}
	})
}

func readFrames(t *testing.T, srv *Server, data []byte, bufSize int) {
	sc := &serverConn{s: srv, inFlight: make(chan struct{}, 1<<10)}
	r := newRequestReader(sc, bufSize)
	consumed := 0
	promised := false // the last delivery said the next request is staged whole
	r.deliver = func(call *serverCall, more bool) {
		if len(call.req.Header) > fuzzLimits.maxHeader || len(call.req.Body) > fuzzLimits.maxBody {
			t.Fatalf("request %d/%d bytes beyond limits", len(call.req.Header), len(call.req.Body))
		}
		// The payload is exactly what followed the frame header.
		off := consumed + frameHeaderSize
		want := data[off : off+len(call.req.Header)+len(call.req.Body)]
		got := append(append([]byte{}, call.req.Header...), call.req.Body...)
		if !bytes.Equal(got, want) {
			t.Fatalf("payload mismatch")
		}
		consumed = off + len(want)
		call.release()
		<-sc.inFlight
		promised = more
	}
	for i, rest := 0, data; len(rest) > 0; i++ {
		p := r.next()
		if len(p) == 0 {
			t.Fatal("the reader offers no room to read into")
		}
		n := copy(p[:min(len(p), 1+i*7%23)], rest)
		rest = rest[n:]
		promised = false
		err := r.got(n)
		if promised && err == nil {
			t.Fatal("the parse stopped with a request it said was staged whole")
		}
		if err != nil {
			break
		}
	}
	r.end(io.EOF)
	if len(sc.inFlight) != 0 {
		t.Fatalf("%d slots still taken after the stream ended", len(sc.inFlight))
	}
}

// The client's reply reader, fed arbitrary bytes while calls are pending,
// completes calls only with replies that fit their buffers and never panics.
func FuzzReadReply(f *testing.F) {
	addFrameSeeds(f, flagResponse)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Client{lim: fuzzLimits, addr: "fuzz"}
		cc := &clientConn{c: c}
		calls := make([]*Call, 4)
		for i := range calls {
			calls[i] = &Call{RespHeader: make([]byte, 8), RespBody: make([]byte, 64)}
			cc.slots = append(cc.slots, slot{call: calls[i], state: slotSent})
			calls[i].cc, calls[i].id = cc, makeID(i, 0)
		}
		// Feed the stream in uneven pieces, as a socket hands it over, so
		// frames split anywhere (and bodies read straight into calls).
		r := newReplyReader(cc, &session{}, 64)
		for i, rest := 0, data; len(rest) > 0; i++ {
			p := r.next()
			n := copy(p[:min(len(p), 1+i*7%23)], rest)
			rest = rest[n:]
			if r.got(n) != nil {
				break
			}
		}
		r.abort() // the stream ended: let go of a call read halfway
		for i, call := range calls {
			sl := cc.slots[i]
			if sl.call != nil {
				if sl.busy != 0 || sl.finished {
					t.Fatalf("call %d left busy=%d finished=%v", i, sl.busy, sl.finished)
				}
				continue // never answered
			}
			if call.Err == nil && (len(call.RespHeader) > 8 || len(call.RespBody) > 64) {
				t.Fatalf("call %d: reply %d/%d bytes beyond its buffers", i, len(call.RespHeader), len(call.RespBody))
			}
		}
	})
}
