package rpc

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The authentication handshake runs once per connection, before any frame
// (inside TLS when TLS is on). Every message has a fixed size, so nothing is
// allocated from what a peer claims:
//
//	server → client  challenge  8-byte header | server nonce (32)
//	client → server  proof      8-byte header | client nonce (32) | client MAC (32)
//	server → client  proof      8-byte header | server MAC (32)
//
// The header is magic 0x4153 ("SA" on the wire), version 1, the message
// type, and 4 zero bytes. The MACs are HMAC-SHA256 under the cluster secret
// of a direction label, both nonces and, over TLS, 32 bytes of keying
// material exported from the TLS session (so a proof cannot be relayed into
// another TLS session). The server proves itself only after the client has,
// so a peer without the secret learns nothing but a random nonce; the client
// sends its first frame only after the server has proved itself, so no
// request goes to an impostor.
//
// Without TLS the handshake controls who may connect, but the stream after
// it is neither encrypted nor integrity-protected: use TLS where the
// network between nodes is not trusted.
const (
	authMagic      uint16 = 0x4153
	authVersion    uint8  = 1
	authHeaderSize        = 8
	authNonceSize         = 32
	authMACSize           = sha256.Size

	authChallenge   uint8 = 1
	authClientProof uint8 = 2
	authServerProof uint8 = 3

	// DefaultHandshakeTimeout bounds the TLS and authentication handshakes
	// of one connection.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultMaxHandshakes bounds a server's connections that are still in
	// their handshake; more are closed at once.
	DefaultMaxHandshakes = 64

	authExporterLabel = "EXPORTER-sheepblk-rpc-auth"
	labelClient       = "sheepblk rpc auth v1 client"
	labelServer       = "sheepblk rpc auth v1 server"
)

// authMessageSize is the wire size of each message type.
var authMessageSize = [...]int{
	authChallenge:   authHeaderSize + authNonceSize,
	authClientProof: authHeaderSize + authNonceSize + authMACSize,
	authServerProof: authHeaderSize + authMACSize,
}

// ErrAuth is wrapped by every failed authentication handshake: the peer
// does not hold the cluster secret, does not use one, or does not speak the
// handshake.
var ErrAuth = errors.New("rpc: authentication failed")

var errPeerClosed = fmt.Errorf("%w: the peer closed the connection during the handshake", ErrAuth)

// encodeAuthHeader writes the header of a typ message into b.
func encodeAuthHeader(b []byte, typ uint8) {
	binary.LittleEndian.PutUint16(b[0:], authMagic)
	b[2] = authVersion
	b[3] = typ
	clear(b[4:authHeaderSize])
}

// decodeAuthMessage checks that msg is a well-formed message of type typ and
// returns its payload. msg is exactly what was read: its size was fixed by
// typ before reading.
func decodeAuthMessage(msg []byte, typ uint8) ([]byte, error) {
	if int(typ) >= len(authMessageSize) || authMessageSize[typ] == 0 {
		return nil, fmt.Errorf("%w: unknown message type %d", ErrAuth, typ)
	}
	if len(msg) != authMessageSize[typ] {
		return nil, fmt.Errorf("%w: message type %d is %d bytes, want %d", ErrAuth, typ, len(msg), authMessageSize[typ])
	}
	le := binary.LittleEndian
	switch {
	case le.Uint16(msg[0:]) != authMagic:
		return nil, fmt.Errorf("%w: bad magic %#04x (the peer does not speak the authentication handshake)", ErrAuth, le.Uint16(msg[0:]))
	case msg[2] != authVersion:
		return nil, fmt.Errorf("%w: unsupported handshake version %d", ErrAuth, msg[2])
	case msg[3] != typ:
		return nil, fmt.Errorf("%w: got message type %d, want %d", ErrAuth, msg[3], typ)
	case le.Uint32(msg[4:]) != 0:
		return nil, fmt.Errorf("%w: reserved header bytes not zero", ErrAuth)
	}
	return msg[authHeaderSize:], nil
}

// readAuthMessage reads one message of type typ into buf and decodes it.
func readAuthMessage(r io.Reader, buf []byte, typ uint8) ([]byte, error) {
	msg := buf[:authMessageSize[typ]]
	if _, err := io.ReadFull(r, msg); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errPeerClosed
		}
		return nil, fmt.Errorf("%w: read handshake: %w", ErrAuth, err)
	}
	return decodeAuthMessage(msg, typ)
}

// authMAC is the proof of one side: HMAC-SHA256(secret, label | server
// nonce | client nonce | binding).
func authMAC(dst []byte, secret []byte, label string, serverNonce, clientNonce, binding []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write(serverNonce)
	m.Write(clientNonce)
	m.Write(binding)
	return m.Sum(dst)
}

// authPeer holds what one side of a handshake needs.
type authPeer struct {
	secret  []byte
	binding []byte    // TLS exported keying material, or nil
	rand    io.Reader // nonces; crypto/rand unless a test sets it
}

func (a authPeer) nonce(b []byte) error {
	r := a.rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("rpc: handshake nonce: %w", err)
	}
	return nil
}

// serverHandshake authenticates the client on rw: it returns nil only when
// the client proved it holds the secret, and has then proved the server's
// own knowledge of it.
func (a authPeer) serverHandshake(rw io.ReadWriter) error {
	var buf [authHeaderSize + authNonceSize + authMACSize]byte
	var sn [authNonceSize]byte
	if err := a.nonce(sn[:]); err != nil {
		return err
	}
	msg := buf[:authMessageSize[authChallenge]]
	encodeAuthHeader(msg, authChallenge)
	copy(msg[authHeaderSize:], sn[:])
	if _, err := rw.Write(msg); err != nil {
		return fmt.Errorf("%w: send challenge: %w", ErrAuth, err)
	}

	p, err := readAuthMessage(rw, buf[:], authClientProof)
	if err != nil {
		return err
	}
	var cn [authNonceSize]byte
	copy(cn[:], p[:authNonceSize])
	var want [authMACSize]byte
	authMAC(want[:0], a.secret, labelClient, sn[:], cn[:], a.binding)
	if !hmac.Equal(want[:], p[authNonceSize:]) {
		return fmt.Errorf("%w: wrong proof: the client does not hold the cluster secret", ErrAuth)
	}

	msg = buf[:authMessageSize[authServerProof]]
	encodeAuthHeader(msg, authServerProof)
	authMAC(msg[authHeaderSize:authHeaderSize], a.secret, labelServer, sn[:], cn[:], a.binding)
	if _, err := rw.Write(msg); err != nil {
		return fmt.Errorf("%w: send proof: %w", ErrAuth, err)
	}
	return nil
}

// clientHandshake proves the client's knowledge of the secret to the server
// on rw and returns nil only when the server proved its own.
func (a authPeer) clientHandshake(rw io.ReadWriter) error {
	var buf [authHeaderSize + authNonceSize + authMACSize]byte
	p, err := readAuthMessage(rw, buf[:], authChallenge)
	if err != nil {
		return err
	}
	var sn, cn [authNonceSize]byte
	copy(sn[:], p)
	if err := a.nonce(cn[:]); err != nil {
		return err
	}

	msg := buf[:authMessageSize[authClientProof]]
	encodeAuthHeader(msg, authClientProof)
	copy(msg[authHeaderSize:], cn[:])
	authMAC(msg[authHeaderSize+authNonceSize:authHeaderSize+authNonceSize], a.secret, labelClient, sn[:], cn[:], a.binding)
	if _, err := rw.Write(msg); err != nil {
		return fmt.Errorf("%w: send proof: %w", ErrAuth, err)
	}

	p, err = readAuthMessage(rw, buf[:], authServerProof)
	if errors.Is(err, errPeerClosed) {
		// What a server does when our proof is wrong.
		return fmt.Errorf("%w: the server closed the connection after our proof: it holds a different cluster secret", ErrAuth)
	}
	if err != nil {
		return err
	}
	var want [authMACSize]byte
	authMAC(want[:0], a.secret, labelServer, sn[:], cn[:], a.binding)
	if !hmac.Equal(want[:], p) {
		return fmt.Errorf("%w: the server did not prove the cluster secret (an impostor, or a different secret)", ErrAuth)
	}
	return nil
}

// tlsBinding is the keying material both ends of a TLS session export for
// the handshake's MACs, or nil without TLS.
func tlsBinding(c any) ([]byte, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil
	}
	st := tc.ConnectionState()
	b, err := st.ExportKeyingMaterial(authExporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("rpc: TLS keying material for authentication (TLS 1.3, or 1.2 with extended master secret, is needed): %w", err)
	}
	return b, nil
}
