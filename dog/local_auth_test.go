package dog_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sheepblk/sheepblk/dog"
)

// start-local makes a secret file in --dir and its nodes serve only clients
// that pass it: vdi write, read and delete work with --secret-file and
// fail without it.
func TestStartLocalWithSecret(t *testing.T) {
	dir := t.TempDir()
	etcd, stop := startLocal(t, dir)
	defer stop()
	secretFile := filepath.Join(dir, "secret")
	fi, err := os.Stat(secretFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, mode %v; want one with mode 0600", err, fi.Mode())
	}
	dogRun(t, etcd, "vdi", "create", "img", "8M").must(t, 0)
	image := make([]byte, 5<<20+7)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range image {
		image[i] = byte(rng.Uint32())
	}
	if code, _, stderr := dogIO(t, etcd, bytes.NewReader(image), "vdi", "write", "img", "--secret-file", secretFile); code != 0 {
		t.Fatalf("vdi write with the secret: exit %d: %s", code, stderr)
	}
	code, got, stderr := dogIO(t, etcd, nil, "vdi", "read", "img", "--secret-file", secretFile)
	want := append(image, make([]byte, 8<<20-len(image))...)
	if code != 0 || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("vdi read with the secret: exit %d, %s, match=%v", code, stderr, sha256.Sum256(got) == sha256.Sum256(want))
	}

	// Without the secret, or with another one, nothing is read or written.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.WriteFile(other, []byte("some-other-cluster-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--secret-file", other}} {
		args := append([]string{"vdi", "read", "img", "--timeout", "1s", "--io-timeout", "2s"}, extra...)
		if code, out, _ := dogIO(t, etcd, nil, args...); code != 1 || bytes.Equal(out, want) {
			t.Fatalf("dog %s: exit %d with %d bytes out; want exit 1 and not the data", strings.Join(args, " "), code, len(out))
		}
	}
	// A secret file others may read is refused before anything happens.
	open := filepath.Join(t.TempDir(), "open")
	os.WriteFile(open, []byte("0123456789abcdef0123\n"), 0o644)
	if code, _, stderr := dogIO(t, etcd, nil, "vdi", "delete", "img", "--secret-file", open); code != 1 || !strings.Contains(stderr, "chmod 600") {
		t.Fatalf("delete with a world-readable secret file: exit %d: %s", code, stderr)
	}

	var deleted dog.DeletedVDI
	code, out, stderr := dogIO(t, etcd, nil, "vdi", "delete", "img", "--json", "--secret-file", secretFile)
	if code != 0 || json.Unmarshal(out, &deleted) != nil || deleted.Purge == nil || deleted.Purge.Removed != 2*3 {
		t.Fatalf("delete with the secret (2 objects x 3 copies): exit %d, %s, %s", code, out, stderr)
	}
}
