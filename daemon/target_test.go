package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sheepblk/sheepblk/internal/rpcflags"
)

func TestTargetSecretFile(t *testing.T) {
	mem := Target{Type: "mem", Size: 1 << 20, Security: rpcflags.Security{SecretFile: "/etc/sheepblk/secret"}}
	if err := mem.Check(); err == nil || !strings.Contains(err.Error(), "only for the sheep target") {
		t.Fatalf("mem target with a secret file: %v", err)
	}
	open := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(open, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The secret is read before etcd is dialed (this endpoint has no etcd).
	sheep := Target{Type: "sheep", VDI: "v", Etcd: "http://127.0.0.1:1", Security: rpcflags.Security{SecretFile: open}}
	if _, err := sheep.Open(OpenOptions{InFlight: 1, MaxIO: 4096}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("sheep target with a world-readable secret file: %v", err)
	}
}
