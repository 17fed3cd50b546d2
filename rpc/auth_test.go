package rpc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/internal/testutil"
)

var (
	testSecret  = []byte("0123456789abcdef-the-cluster-secret")
	otherSecret = []byte("0123456789abcdef-another-secret!!!!")
)

// countingHandler is a checksumHandler that counts the requests it served,
// so a refused connection can be shown to have reached no handler.
type countingHandler struct {
	checksumHandler
	n atomic.Int64
}

func (h *countingHandler) ServeRPC(ctx context.Context, req *Request, resp *Response) error {
	h.n.Add(1)
	return h.checksumHandler.ServeRPC(ctx, req, resp)
}

// testPKI is a self-signed certificate for 127.0.0.1, as PEM files and as
// ready TLS configurations.
type testPKI struct {
	certFile, keyFile string
	server, client    *tls.Config
}

func newTestPKI(t testing.TB, name string) testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := testPKI{certFile: filepath.Join(dir, name+".crt"), keyFile: filepath.Join(dir, name+".key")}
	if err := os.WriteFile(p.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	files := TLSFiles{Cert: p.certFile, Key: p.keyFile}
	if p.server, err = files.ServerConfig(); err != nil {
		t.Fatal(err)
	}
	if p.client, err = (TLSFiles{CA: p.certFile}).ClientConfig(); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkedCall makes one call with a body of n random bytes and verifies
// the echoed reply byte for byte.
func checkedCall(c *Client, n int) error {
	call := &Call{ReqHeader: []byte("auth-test"), ReqBody: make([]byte, n),
		RespHeader: make([]byte, 12), RespBody: make([]byte, n)}
	rand.Read(call.ReqBody)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Do(ctx, call); err != nil {
		return err
	}
	return checkReply(call)
}

// transports runs a test over plain TCP and over TLS.
func transports(t *testing.T, test func(t *testing.T, serverTLS, clientTLS *tls.Config)) {
	t.Run("tcp", func(t *testing.T) { test(t, nil, nil) })
	t.Run("tls", func(t *testing.T) {
		p := newTestPKI(t, "node")
		test(t, p.server, p.client)
	})
}

func TestAuthAccepted(t *testing.T) {
	transports(t, func(t *testing.T, serverTLS, clientTLS *tls.Config) {
		h := &countingHandler{}
		ts := startServer(t, h, ServerOptions{Secret: testSecret, TLSConfig: serverTLS})
		c := newTestClient(t, ts.addr, ClientOptions{Secret: bytes.Clone(testSecret), TLSConfig: clientTLS, Conns: 2})
		for i := range 20 {
			if err := checkedCall(c, 1+i*4099); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		if got := h.n.Load(); got != 20 {
			t.Fatalf("handler served %d requests, want 20", got)
		}
	})
}

func TestAuthRefused(t *testing.T) {
	cases := []struct {
		name                 string
		serverSec, clientSec []byte
		clientErr            string // in the client's error
		serverLog            string // in the server's log, "" for none expected
	}{
		{"client without secret", testSecret, nil, "", "refused connection"},
		{"wrong secret", testSecret, otherSecret, "holds a different cluster secret", "does not hold the cluster secret"},
		{"server without secret", nil, testSecret, "does it run without a cluster secret", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			transports(t, func(t *testing.T, serverTLS, clientTLS *tls.Config) {
				h := &countingHandler{}
				var logBuf testutil.LogBuffer
				ts := startServer(t, h, ServerOptions{Secret: tc.serverSec, TLSConfig: serverTLS,
					HandshakeTimeout: 300 * time.Millisecond, Logger: zerolog.New(&logBuf)})
				c := newTestClient(t, ts.addr, ClientOptions{Secret: tc.clientSec, TLSConfig: clientTLS,
					HandshakeTimeout: 300 * time.Millisecond, CallTimeout: 3 * time.Second})
				err := checkedCall(c, 4096)
				if err == nil {
					t.Fatal("call succeeded, want a refusal")
				}
				if !errors.Is(err, ErrConnection) {
					t.Fatalf("error %v, want one wrapping ErrConnection", err)
				}
				if tc.clientErr != "" && (!errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), tc.clientErr)) {
					t.Fatalf("error %q, want ErrAuth saying %q", err, tc.clientErr)
				}
				if tc.serverLog != "" {
					waitFor(t, "the server's log line", 2*time.Second, func() bool {
						return strings.Contains(logBuf.String(), tc.serverLog)
					})
				}
				if got := h.n.Load(); got != 0 {
					t.Fatalf("a refused peer reached the handler %d times", got)
				}
			})
		})
	}
}

// dialRaw opens a plain TCP connection to addr.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readToClose reads conn until it is closed (or 5s pass) and returns what
// came and how long it took.
func readToClose(t *testing.T, conn net.Conn) ([]byte, time.Duration) {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("read until the server closes: %v (after %d bytes)", err, len(got))
	}
	return got, time.Since(start)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// A peer without the secret that sends requests gets the challenge and a
// closed connection: no reply, no error frame.
func TestAuthRefusedPeerGetsOnlyTheChallenge(t *testing.T) {
	h := &countingHandler{}
	ts := startServer(t, h, ServerOptions{Secret: testSecret})
	conn := dialRaw(t, ts.addr)
	req := rawFrame(flagRequest, 1, []byte("hdr"), []byte("body"))
	// Padded past a client proof's size, so the server reads a whole
	// (bogus) proof and decides.
	if _, err := conn.Write(append(req, make([]byte, 128)...)); err != nil {
		t.Fatal(err)
	}
	got, _ := readToClose(t, conn)
	if len(got) != authMessageSize[authChallenge] {
		t.Fatalf("got %d bytes, want only the %d-byte challenge", len(got), authMessageSize[authChallenge])
	}
	if _, err := decodeAuthMessage(got, authChallenge); err != nil {
		t.Fatalf("what came is not a challenge: %v", err)
	}
	if h.n.Load() != 0 {
		t.Fatal("the handler ran for an unauthenticated peer")
	}
}

// A client that stalls in the handshake is closed within the bound, over
// TCP and inside TLS, and while it stalls others are served.
func TestAuthStalledClientClosed(t *testing.T) {
	const bound = 300 * time.Millisecond
	transports(t, func(t *testing.T, serverTLS, clientTLS *tls.Config) {
		ts := startServer(t, &countingHandler{}, ServerOptions{Secret: testSecret, TLSConfig: serverTLS, HandshakeTimeout: bound})
		for _, stage := range []string{"silent", "after challenge"} {
			var conn net.Conn = dialRaw(t, ts.addr)
			if clientTLS != nil && stage == "after challenge" {
				tc := tls.Client(conn, clientTLSConfig(clientTLS, ts.addr))
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				conn = tc
			}
			if stage == "after challenge" {
				var msg [authHeaderSize + authNonceSize]byte
				conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := io.ReadFull(conn, msg[:]); err != nil {
					t.Fatalf("%s: read challenge: %v", stage, err)
				}
			}
			// Meanwhile an honest client is served.
			c := newTestClient(t, ts.addr, ClientOptions{Secret: testSecret, TLSConfig: clientTLS})
			if err := checkedCall(c, 100); err != nil {
				t.Fatalf("%s: honest client beside a stalled one: %v", stage, err)
			}
			_, took := readToClose(t, conn)
			if took > bound+2*time.Second {
				t.Fatalf("%s: stalled client closed after %v, bound %v", stage, took, bound)
			}
		}
	})
}

// Connections beyond MaxHandshakes are closed at once.
func TestAuthMaxHandshakes(t *testing.T) {
	ts := startServer(t, &countingHandler{}, ServerOptions{Secret: testSecret, MaxHandshakes: 2, HandshakeTimeout: 5 * time.Second})
	for range 2 {
		conn := dialRaw(t, ts.addr)
		var msg [authHeaderSize + authNonceSize]byte
		if _, err := io.ReadFull(conn, msg[:]); err != nil { // in its handshake now
			t.Fatal(err)
		}
	}
	got, took := readToClose(t, dialRaw(t, ts.addr))
	if len(got) != 0 || took > 2*time.Second {
		t.Fatalf("third connection: got %d bytes after %v, want a close at once", len(got), took)
	}
}

// Refusals are logged, but rate-limited.
func TestAuthRefusalLogRateLimited(t *testing.T) {
	var logBuf testutil.LogBuffer
	ts := startServer(t, &countingHandler{}, ServerOptions{Secret: testSecret, Logger: zerolog.New(&logBuf)})
	for range 4 * refusalLogBurst {
		conn := dialRaw(t, ts.addr)
		conn.Write(make([]byte, authMessageSize[authClientProof]))
		readToClose(t, conn)
	}
	waitFor(t, "refusal log lines", 2*time.Second, func() bool {
		return strings.Count(logBuf.String(), "refused connection") >= refusalLogBurst
	})
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(logBuf.String(), "refused connection"); n != refusalLogBurst {
		t.Fatalf("%d log lines for %d refusals, want %d (rate-limited)", n, 4*refusalLogBurst, refusalLogBurst)
	}
}

// impostor is a server that speaks the handshake without the secret. It
// reports every byte the client sends after the handshake.
func impostor(t *testing.T, proof func(challenge, clientProof []byte) []byte) (addr string, after chan []byte) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	after = make(chan []byte, 4)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				ch := make([]byte, authMessageSize[authChallenge])
				encodeAuthHeader(ch, authChallenge)
				rand.Read(ch[authHeaderSize:])
				conn.Write(ch)
				cp := make([]byte, authMessageSize[authClientProof])
				if _, err := io.ReadFull(conn, cp); err != nil {
					after <- nil
					return
				}
				conn.Write(proof(ch, cp))
				conn.SetReadDeadline(time.Now().Add(time.Second))
				rest, _ := io.ReadAll(conn)
				after <- rest
			}()
		}
	}()
	return l.Addr().String(), after
}

// A client sends no request to a server that cannot prove the secret,
// whether it sends a random proof or replays the client's own MAC.
func TestAuthServerImpostor(t *testing.T) {
	proofs := map[string]func(ch, cp []byte) []byte{
		"random": func(_, _ []byte) []byte {
			m := make([]byte, authMessageSize[authServerProof])
			encodeAuthHeader(m, authServerProof)
			rand.Read(m[authHeaderSize:])
			return m
		},
		"reflected client MAC": func(_, cp []byte) []byte {
			m := make([]byte, authMessageSize[authServerProof])
			encodeAuthHeader(m, authServerProof)
			copy(m[authHeaderSize:], cp[authHeaderSize+authNonceSize:])
			return m
		},
	}
	for name, proof := range proofs {
		t.Run(name, func(t *testing.T) {
			addr, after := impostor(t, proof)
			c := newTestClient(t, addr, ClientOptions{Secret: testSecret, CallTimeout: 3 * time.Second})
			err := checkedCall(c, 4096)
			if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "did not prove") {
				t.Fatalf("error %v, want ErrAuth: the server did not prove the secret", err)
			}
			select {
			case rest := <-after:
				if len(rest) != 0 {
					t.Fatalf("the client sent %d bytes to the impostor after the handshake", len(rest))
				}
			case <-time.After(5 * time.Second):
				t.Fatal("impostor never finished")
			}
		})
	}
}

// A TLS client that does not trust the server's certificate never gets to
// the authentication handshake.
func TestAuthTLSUntrustedServer(t *testing.T) {
	node, other := newTestPKI(t, "node"), newTestPKI(t, "other")
	h := &countingHandler{}
	ts := startServer(t, h, ServerOptions{Secret: testSecret, TLSConfig: node.server})
	c := newTestClient(t, ts.addr, ClientOptions{Secret: testSecret, TLSConfig: other.client})
	err := checkedCall(c, 10)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("error %v, want a TLS handshake failure", err)
	}
	// And a plain client to a TLS server is refused too.
	c2 := newTestClient(t, ts.addr, ClientOptions{Secret: testSecret, HandshakeTimeout: 300 * time.Millisecond})
	if err := checkedCall(c2, 10); err == nil {
		t.Fatal("a plain client was served by a TLS server")
	}
	if h.n.Load() != 0 {
		t.Fatal("the handler ran")
	}
}

// Mutual TLS from files: the server requires a client certificate signed
// by its CA.
func TestAuthMutualTLSFromFiles(t *testing.T) {
	ca := newTestPKI(t, "cluster")
	serverCfg, err := TLSFiles{Cert: ca.certFile, Key: ca.keyFile, CA: ca.certFile}.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	clientCfg, err := TLSFiles{Cert: ca.certFile, Key: ca.keyFile, CA: ca.certFile}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, &countingHandler{}, ServerOptions{Secret: testSecret, TLSConfig: serverCfg})
	c := newTestClient(t, ts.addr, ClientOptions{Secret: testSecret, TLSConfig: clientCfg})
	if err := checkedCall(c, 65536); err != nil {
		t.Fatalf("mutual TLS call: %v", err)
	}
	noCert := newTestClient(t, ts.addr, ClientOptions{Secret: testSecret, TLSConfig: ca.client, CallTimeout: 3 * time.Second})
	if err := checkedCall(noCert, 10); err == nil {
		t.Fatal("a client without a certificate was served by a server requiring one")
	}
	if _, err := (TLSFiles{Cert: ca.certFile}).ServerConfig(); err == nil {
		t.Fatal("a server TLS configuration without a key was accepted")
	}
}

// Shutdown does not wait for a connection stuck in its handshake longer
// than it takes to notice.
func TestAuthShutdownDuringHandshake(t *testing.T) {
	ts := startServer(t, &countingHandler{}, ServerOptions{Secret: testSecret, HandshakeTimeout: 30 * time.Second})
	conn := dialRaw(t, ts.addr)
	var msg [authHeaderSize + authNonceSize]byte
	if _, err := io.ReadFull(conn, msg[:]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("shutdown took %v with a connection in its handshake", took)
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  "+string(testSecret)+"\n", 0o600)
	got, err := ReadSecretFile(good)
	if err != nil || !bytes.Equal(got, testSecret) {
		t.Fatalf("ReadSecretFile = %q, %v; want %q", got, err, testSecret)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{write("group", string(testSecret), 0o640), "chmod 600"},
		{write("world", string(testSecret), 0o604), "chmod 600"},
		{write("short", "tooshort\n", 0o600), "at least 16"},
		{write("huge", strings.Repeat("x", MaxSecretSize+1), 0o600), "more than"},
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "not a regular file"},
	} {
		_, err := ReadSecretFile(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadSecretFile(%s) error %v, want one saying %q", filepath.Base(tc.path), err, tc.want)
		}
	}

	p := filepath.Join(dir, "created")
	s1, created, err := LoadOrCreateSecretFile(p)
	if err != nil || !created || len(s1) < MinSecretSize {
		t.Fatalf("LoadOrCreateSecretFile (new) = %q, %v, %v", s1, created, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created secret file mode %v, %v; want 0600", fi.Mode(), err)
	}
	s2, created, err := LoadOrCreateSecretFile(p)
	if err != nil || created || !bytes.Equal(s1, s2) {
		t.Fatalf("LoadOrCreateSecretFile (existing) = %q, %v, %v; want %q", s2, created, err, s1)
	}
}

// Client.Close does not wait out the handshake timeout of a dial stuck in
// its handshake.
func TestAuthCloseDuringClientHandshake(t *testing.T) {
	addr, accepted := silentPeer(t) // says nothing: the client waits for a challenge
	c := NewClient(addr, ClientOptions{Secret: testSecret, HandshakeTimeout: 30 * time.Second, Logger: testLogger(t)})
	c.Go(&Call{ReqHeader: []byte("x"), Done: func(*Call) {}})
	select {
	case conn := <-accepted:
		defer conn.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the client never dialed")
	}
	start := time.Now()
	c.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v with a dial in its handshake", took)
	}
}
