package rpcflags

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/sheepblk/sheepblk/rpc"
)

func parse(t *testing.T, role Role, args ...string) Security {
	t.Helper()
	var s Security
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	s.Register(fs, role)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestApply(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "secret")
	secret, err := rpc.CreateSecretFile(good)
	if err != nil {
		t.Fatal(err)
	}
	var so rpc.ServerOptions
	if err := parse(t, Server, "--secret-file", good).ApplyServer(&so); err != nil || !bytes.Equal(so.Secret, secret) || so.TLSConfig != nil {
		t.Fatalf("server options %+v, %v", so, err)
	}
	var co rpc.ClientOptions
	if err := parse(t, Client).ApplyClient(&co); err != nil || co.Secret != nil || co.TLSConfig != nil {
		t.Fatalf("no flags: client options %+v, %v; want no secret, no TLS", co, err)
	}

	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("0123456789abcdefghij"), 0o644)
	err = parse(t, Client, "--secret-file", open).ApplyClient(&co)
	if err == nil || !strings.Contains(err.Error(), "--secret-file") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable secret file: %v", err)
	}
	err = parse(t, Server, "--tls-cert", filepath.Join(dir, "c.pem")).ApplyServer(&so)
	if err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("--tls-cert without --tls-key: %v", err)
	}
	err = parse(t, Client, "--tls-ca", filepath.Join(dir, "missing.pem")).ApplyClient(&co)
	if err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("missing CA file: %v", err)
	}
}
