package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func rawFrame(flags frameFlags, id uint64, header, body []byte) []byte {
	b := make([]byte, frameHeaderSize, frameHeaderSize+len(header)+len(body))
	h := frameHeader{flags: flags, id: id, headerLen: uint32(len(header)), bodyLen: uint32(len(body))}
	h.encode(b)
	return append(append(b, header...), body...)
}

// withField returns a valid request frame header with one field changed.
func withField(off int, put func([]byte)) []byte {
	b := rawFrame(flagRequest, 1, nil, nil)
	put(b[off:])
	return b
}

// Bad frames close only their own connection: the server stays up and a
// well-behaved client on another connection keeps working throughout.
func TestBadFramesCloseOnlyThatConnection(t *testing.T) {
	ts := startServer(t, checksumHandler{}, ServerOptions{})
	good := newTestClient(t, ts.addr, ClientOptions{})
	goodCall := func() {
		t.Helper()
		call := &Call{ReqHeader: make([]byte, 12), ReqBody: []byte("still here"),
			RespHeader: make([]byte, 12), RespBody: make([]byte, 32)}
		if err := good.Do(context.Background(), call); err != nil {
			t.Fatalf("good client: %v", err)
		}
		if err := checkReply(call); err != nil {
			t.Fatalf("good client: %v", err)
		}
	}
	goodCall()

	valid := rawFrame(flagRequest, 7, make([]byte, 12), []byte("payload"))
	cases := []struct {
		name   string
		data   []byte
		closeW bool // half-close after writing, as a crashed sender would
	}{
		{"garbage", bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 4), false},
		{"bad magic", withField(0, func(b []byte) { binary.LittleEndian.PutUint16(b, 0xdead) }), false},
		{"bad version", withField(2, func(b []byte) { b[0] = 9 }), false},
		{"reserved set", withField(4, func(b []byte) { b[0] = 1 }), false},
		{"response flag", withField(3, func(b []byte) { b[0] = byte(flagResponse) }), false},
		{"no flags", withField(3, func(b []byte) { b[0] = 0 }), false},
		{"oversized header", withField(16, func(b []byte) { binary.LittleEndian.PutUint32(b, DefaultMaxHeader+1) }), false},
		{"oversized body", withField(20, func(b []byte) { binary.LittleEndian.PutUint32(b, 0xffffffff) }), false},
		{"truncated payload", valid[:len(valid)-3], true},
		{"truncated header", valid[:10], true},
		{"valid then garbage", append(append([]byte{}, valid...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tc.data); err != nil {
				t.Fatal(err)
			}
			if tc.closeW {
				conn.(*net.TCPConn).CloseWrite()
			}
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			got, err := io.ReadAll(conn)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("server kept the connection open after %s", tc.name)
			}
			// Only the one valid frame may have been answered.
			if tc.name == "valid then garbage" {
				if len(got) < frameHeaderSize {
					t.Fatalf("valid frame before the garbage not answered (%d bytes)", len(got))
				}
				h, err := decodeFrameHeader(got, frameLimits{}.withDefaults(), flagResponse)
				if err != nil || h.id != 7 || h.bodyLen != 7 {
					t.Fatalf("reply to the valid frame: %+v, %v", h, err)
				}
			} else if len(got) > 0 {
				t.Fatalf("server answered a bad frame with %d bytes", len(got))
			}
			goodCall()
		})
	}
}

// A server sending a malformed or unexpected reply makes the client drop that
// connection (failing its calls with ErrConnection); the next call redials.
func TestClientRejectsBadReplies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(reqID uint64) []byte
	}{
		{"garbage", func(uint64) []byte { return bytes.Repeat([]byte{0xab}, 64) }},
		{"request flag", func(id uint64) []byte { return rawFrame(flagRequest, id, nil, nil) }},
		{"oversized body", func(id uint64) []byte {
			b := rawFrame(flagResponse, id, nil, nil)
			binary.LittleEndian.PutUint32(b[20:], DefaultMaxBody+1)
			return b
		}},
		{"truncated", func(id uint64) []byte { return rawFrame(flagResponse, id, nil, []byte("abcdef"))[:26] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					conn, err := l.Accept()
					if err != nil {
						return
					}
					go func() {
						defer conn.Close()
						var hb [frameHeaderSize]byte
						if _, err := io.ReadFull(conn, hb[:]); err != nil {
							return
						}
						h, err := decodeFrameHeader(hb[:], frameLimits{}.withDefaults(), flagRequest)
						if err != nil {
							return
						}
						io.CopyN(io.Discard, conn, int64(h.headerLen)+int64(h.bodyLen))
						conn.Write(tc.reply(h.id))
						if tc.name == "truncated" {
							return
						}
						io.Copy(io.Discard, conn)
					}()
				}
			}()
			c := newTestClient(t, l.Addr().String(), ClientOptions{CallTimeout: 5 * time.Second})
			for i := range 2 { // the second call proves the client redials
				call := &Call{ReqHeader: []byte("h"), RespBody: make([]byte, 16)}
				start := time.Now()
				if err := c.Do(context.Background(), call); !errors.Is(err, ErrConnection) {
					t.Fatalf("call %d: got %v, want ErrConnection", i, err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("call %d failed only after %v", i, d)
				}
			}
		})
	}
}
