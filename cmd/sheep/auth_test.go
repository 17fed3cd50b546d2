package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// With --secret-file the node serves clients holding the secret and closes
// the connection of any other, logging it.
func TestSecretFile(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	secret, err := rpc.CreateSecretFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	rs := startSheep(t, "--dir", t.TempDir(), "--etcd", "", "--object-size", "1M", "--secret-file", secretFile)

	c := rpc.NewClient(rs.addr, rpc.ClientOptions{Secret: secret})
	defer c.Close()
	oid := proto.NewObjectID(3, 4)
	data := bytes.Repeat([]byte("only for the cluster "), 500)
	call(t, c, proto.Request{Op: proto.OpWrite, Object: oid, Length: uint32(len(data))}, data)
	if got := call(t, c, proto.Request{Op: proto.OpRead, Object: oid, Length: uint32(len(data))}, nil); !bytes.Equal(got, data) {
		t.Fatal("read back with the secret differs")
	}

	for name, opts := range map[string]rpc.ClientOptions{
		"no secret":    {CallTimeout: 3 * time.Second},
		"wrong secret": {Secret: []byte("not-the-cluster-secret"), CallTimeout: 3 * time.Second},
	} {
		bad := rpc.NewClient(rs.addr, opts)
		req := proto.Request{Op: proto.OpRead, Object: oid, Length: 16}
		hdr, _ := req.AppendBinary(nil)
		cl := &rpc.Call{ReqHeader: hdr, RespHeader: make([]byte, 64), RespBody: make([]byte, 1<<20)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := bad.Do(ctx, cl)
		cancel()
		bad.Close()
		if !errors.Is(err, rpc.ErrConnection) {
			t.Errorf("%s: read got %v, want a connection error", name, err)
		}
	}
	_, msgs := rs.stop(t)
	if !contains(msgs, "rpc: refused connection") {
		t.Fatalf("node log has no refusal line: %q", msgs)
	}
}

func TestSecretFileReadableByOthersRefused(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := runToEnd(t, "--dir", t.TempDir(), "--etcd", "", "--secret-file", secretFile)
	if last := lastLine(out); code != exitFailure || !strings.Contains(last, "chmod 600") || strings.Contains(out, "goroutine ") {
		t.Fatalf("exit %d, stderr %q; want exit 1 and a line saying chmod 600", code, out)
	}
}
