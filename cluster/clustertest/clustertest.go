package clustertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/embedetcd"
)

// Embedded starts an in-process etcd and returns its client URL.
func Embedded(t testing.TB) string {
	t.Helper()
	srv, err := embedetcd.Start(embedetcd.Options{Dir: filepath.Join(t.TempDir(), "etcd")})
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv.ClientURL()
}

// External starts the `etcd` binary found on $PATH (Debian's etcd-server
// package) and returns its client URL; it skips the test if there is none.
func External(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("no etcd binary on $PATH: apt-get install -y etcd-server to run the tests against a real etcd")
	}
	clientPort, err := embedetcd.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	peerPort, err := embedetcd.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "etcd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--name", "test",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL,
		"--log-level", "error",
		"--logger", "zap",
	)
	// Debian's 3.4 refuses to start on some platforms without this.
	cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH=")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	var exited atomic.Bool
	waitDone := make(chan struct{})
	go func() { _ = cmd.Wait(); exited.Store(true); close(waitDone) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waitDone
		logf.Close()
	})
	if err := WaitReady(clientURL, 20*time.Second); err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("etcd %s not ready (exited=%v): %v\n%s", bin, exited.Load(), err, tail(string(log), 2000))
	}
	return clientURL
}

// WaitReady polls etcd at url until it answers a read or timeout passes.
func WaitReady(url string, timeout time.Duration) error {
	c, err := cluster.Connect(cluster.Options{Endpoints: []string{url}, RequestTimeout: time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Etcd().Get(ctx, "/ready-probe")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd at %s: %w", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:][strings.IndexByte(s[len(s)-n:], '\n')+1:]
}

// Client connects to url under a prefix unique to the test, so tests may
// share one etcd, and closes the client when the test ends.
func Client(t testing.TB, url string) *cluster.Client {
	t.Helper()
	c, err := cluster.Connect(cluster.Options{
		Endpoints: []string{url},
		Prefix:    "/test/" + strings.ReplaceAll(t.Name(), "/", "_") + "/",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ClosedAddr is a 127.0.0.1 address nothing listens on (a port just freed),
// for tests of unreachable peers. A fixed port such as 1 is not safe: as
// root, anything may listen there.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	port, err := embedetcd.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// Unregister makes node id's registration vanish as if its lease had
// expired (the node crashed or was partitioned for longer than its TTL):
// it revokes the lease of the node's entry.
func Unregister(t testing.TB, c *cluster.Client, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Etcd().Get(ctx, c.Prefix()+"nodes/"+id)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		t.Fatalf("node %s is not registered", id)
	}
	if _, err := c.Etcd().Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatalf("revoke the lease of node %s: %v", id, err)
	}
}
