package netns_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/rpc"
)

// clusterEnv is what every cluster test here starts from: the test
// network, sheep and dog built from this checkout, etcd on the bridge and
// a cluster secret. The cluster is not formatted yet.
type clusterEnv struct {
	ctx        context.Context
	tn         *testNet
	bin        string // directory holding sheep and dog
	dir        string // the test's scratch directory
	secretFile string
	secret     []byte
}

// newClusterEnv builds the environment for a test with nodes namespaces,
// whose context ends after timeout (or with the test).
func newClusterEnv(t *testing.T, nodes int, timeout time.Duration) *clusterEnv {
	t.Helper()
	e := &clusterEnv{tn: newTestNet(t, nodes)}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	e.ctx = ctx
	e.bin = buildBinaries(t)
	e.dir = t.TempDir()
	startEtcd(t, filepath.Join(e.dir, "etcd"))
	e.secretFile = filepath.Join(e.dir, "secret")
	secret, err := rpc.CreateSecretFile(e.secretFile)
	if err != nil {
		t.Fatal(err)
	}
	e.secret = secret
	return e
}

// sheep is the path of the sheep binary.
func (e *clusterEnv) sheep() string { return filepath.Join(e.bin, "sheep") }

// dog runs dog against the test's etcd; its stdout goes to stdout, and a
// failure's error carries dog's stderr.
func (e *clusterEnv) dog(stdout io.Writer, args ...string) error {
	cmd := exec.CommandContext(e.ctx, filepath.Join(e.bin, "dog"), append([]string{"--etcd", etcdURL}, args...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dog %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
