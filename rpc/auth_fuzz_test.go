package rpc

import (
	"bytes"
	"crypto/hmac"
	"testing"
)

// Fixed nonces make a handshake reproducible, so seeds can hold valid
// transcripts and the fuzzer can check acceptance exactly.
var (
	fuzzServerNonce = bytes.Repeat([]byte{0x5e}, authNonceSize)
	fuzzClientNonce = bytes.Repeat([]byte{0xc1}, authNonceSize)
	fuzzSecret      = []byte("fuzz-secret-0123456789")
)

// scriptedConn reads a peer's bytes from r and collects what is written.
type scriptedConn struct {
	r *bytes.Reader
	w bytes.Buffer
}

func (c *scriptedConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptedConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func fuzzClientProof(mac []byte) []byte {
	m := make([]byte, authMessageSize[authClientProof])
	encodeAuthHeader(m, authClientProof)
	copy(m[authHeaderSize:], fuzzClientNonce)
	copy(m[authHeaderSize+authNonceSize:], mac)
	return m
}

func fuzzServerMessages(proof []byte) []byte {
	ch := make([]byte, authMessageSize[authChallenge])
	encodeAuthHeader(ch, authChallenge)
	copy(ch[authHeaderSize:], fuzzServerNonce)
	sp := make([]byte, authMessageSize[authServerProof])
	encodeAuthHeader(sp, authServerProof)
	copy(sp[authHeaderSize:], proof)
	return append(ch, sp...)
}

// The server accepts exactly a well-formed client proof carrying the right
// MAC, reads no byte past it, and sends its own proof only then.
func FuzzServerHandshake(f *testing.F) {
	good := authMAC(nil, fuzzSecret, labelClient, fuzzServerNonce, fuzzClientNonce, nil)
	f.Add(fuzzClientProof(good))
	f.Add(append(fuzzClientProof(good), rawFrame(flagRequest, 1, []byte("h"), nil)...))
	f.Add(fuzzClientProof(make([]byte, authMACSize)))
	f.Add(fuzzClientProof(authMAC(nil, fuzzSecret, labelServer, fuzzServerNonce, fuzzClientNonce, nil)))
	f.Add(fuzzClientProof(good)[:50])
	f.Add(rawFrame(flagRequest, 1, []byte("hdr"), []byte("body")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := &scriptedConn{r: bytes.NewReader(data)}
		a := authPeer{secret: fuzzSecret, rand: bytes.NewReader(fuzzServerNonce)}
		err := a.serverHandshake(conn)

		size := authMessageSize[authClientProof]
		valid := len(data) >= size && bytes.Equal(data[:authHeaderSize+authNonceSize], fuzzClientProof(nil)[:authHeaderSize+authNonceSize]) &&
			hmac.Equal(data[authHeaderSize+authNonceSize:size], good)
		if (err == nil) != valid {
			t.Fatalf("accepted=%v, but proof valid=%v (err %v)", err == nil, valid, err)
		}
		if consumed := len(data) - conn.r.Len(); consumed > size {
			t.Fatalf("read %d bytes, more than a client proof (%d)", consumed, size)
		}
		wantOut := authMessageSize[authChallenge]
		if valid {
			wantOut += authMessageSize[authServerProof]
		}
		if conn.w.Len() != wantOut {
			t.Fatalf("wrote %d bytes, want %d", conn.w.Len(), wantOut)
		}
	})
}

// The client accepts exactly a challenge followed by the right server
// proof, sends nothing but its proof, and sends that only after a
// well-formed challenge.
func FuzzClientHandshake(f *testing.F) {
	good := authMAC(nil, fuzzSecret, labelServer, fuzzServerNonce, fuzzClientNonce, nil)
	f.Add(fuzzServerMessages(good))
	f.Add(fuzzServerMessages(make([]byte, authMACSize)))
	f.Add(fuzzServerMessages(authMAC(nil, fuzzSecret, labelClient, fuzzServerNonce, fuzzClientNonce, nil)))
	f.Add(fuzzServerMessages(good)[:40])
	f.Add(rawFrame(flagResponse, 1, []byte("hdr"), []byte("body")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := &scriptedConn{r: bytes.NewReader(data)}
		a := authPeer{secret: fuzzSecret, rand: bytes.NewReader(fuzzClientNonce)}
		err := a.clientHandshake(conn)

		chSize, spSize := authMessageSize[authChallenge], authMessageSize[authServerProof]
		_, chErr := decodeAuthMessage(data[:min(len(data), chSize)], authChallenge)
		valid := chErr == nil && len(data) >= chSize+spSize
		if valid {
			var sn = data[authHeaderSize:chSize]
			want := authMAC(nil, fuzzSecret, labelServer, sn, fuzzClientNonce, nil)
			_, spErr := decodeAuthMessage(data[chSize:chSize+spSize], authServerProof)
			valid = spErr == nil && hmac.Equal(want, data[chSize+authHeaderSize:chSize+spSize])
		}
		if (err == nil) != valid {
			t.Fatalf("accepted=%v, but transcript valid=%v (err %v)", err == nil, valid, err)
		}
		if consumed := len(data) - conn.r.Len(); consumed > chSize+spSize {
			t.Fatalf("read %d bytes, more than the server's messages (%d)", consumed, chSize+spSize)
		}
		switch {
		case chErr != nil && conn.w.Len() != 0:
			t.Fatalf("wrote %d bytes after a bad challenge", conn.w.Len())
		case chErr == nil && conn.w.Len() != authMessageSize[authClientProof]:
			t.Fatalf("wrote %d bytes, want exactly a client proof", conn.w.Len())
		}
	})
}

// Any bytes decode to an error or to a payload of the type's size that
// re-encodes to the same message.
func FuzzAuthMessage(f *testing.F) {
	f.Add(uint8(authChallenge), fuzzServerMessages(nil)[:40])
	f.Add(uint8(authClientProof), fuzzClientProof(nil))
	f.Add(uint8(authServerProof), fuzzServerMessages(nil)[40:])
	f.Add(uint8(9), []byte("SA\x01\x09\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, typ uint8, msg []byte) {
		p, err := decodeAuthMessage(msg, typ)
		if err != nil {
			return
		}
		if len(msg) != authMessageSize[typ] || len(p) != len(msg)-authHeaderSize {
			t.Fatalf("accepted %d bytes of type %d with a %d-byte payload", len(msg), typ, len(p))
		}
		re := make([]byte, authHeaderSize, len(msg))
		encodeAuthHeader(re, typ)
		if !bytes.Equal(append(re, p...), msg) {
			t.Fatal("re-encoding differs")
		}
	})
}
