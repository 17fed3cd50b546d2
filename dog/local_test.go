package dog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/dog"
	"github.com/sheepblk/sheepblk/internal/testutil"
	"github.com/sheepblk/sheepblk/sheep"
)

// testutil.LogBuffer is a bytes.Buffer safe to read while a command writes it.

// startLocal runs `dog cluster start-local --json` (plus extra flags) in
// the background and returns its etcd URL and a stop function that returns
// its exit status.
func startLocal(t *testing.T, dir string, extra ...string) (string, func() int) {
	t.Helper()
	nodes := 3
	for i, a := range extra {
		if a == "--nodes" && i+1 < len(extra) {
			nodes, _ = strconv.Atoi(extra[i+1])
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb testutil.LogBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- dog.Execute(ctx, append([]string{"cluster", "start-local", "--json", "--dir", dir,
			"--etcd-port", "0", "--base-port", "0", "--log-level", "warn"}, extra...),
			dog.IO{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var info dog.LocalCluster
		if err := json.Unmarshal([]byte(out.String()), &info); err == nil {
			if len(info.Nodes) != nodes || info.Etcd == "" {
				t.Fatalf("start-local printed %+v", info)
			}
			stop := func() int {
				cancel()
				select {
				case code := <-exit:
					return code
				case <-time.After(30 * time.Second):
					t.Fatal("start-local did not stop")
					return -1
				}
			}
			return info.Etcd, stop
		}
		select {
		case code := <-exit:
			t.Fatalf("start-local exited %d: %s", code, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("start-local printed nothing in 30s; stderr: %s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dogIO runs dog with stdin and returns stdout as bytes.
func dogIO(t *testing.T, etcd string, stdin io.Reader, args ...string) (int, []byte, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dog.Execute(context.Background(), append(args, "--etcd", etcd), dog.IO{
		Stdin: stdin, Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" },
	})
	return code, out.Bytes(), errb.String()
}

func TestStartLocalAndVDIReadWrite(t *testing.T) {
	dir := t.TempDir()
	etcd, stop := startLocal(t, dir, "--insecure") // local_auth_test.go runs one with a secret

	nl := dogRun(t, etcd, "node", "list", "--json").must(t, 0).stdout
	if strings.Count(nl, `"id"`) != 3 {
		t.Fatalf("node list: %s", nl)
	}
	dogRun(t, etcd, "vdi", "create", "img", "64M").must(t, 0)

	// An image smaller than the VDI, not a multiple of anything.
	image := make([]byte, 20<<20+12345)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range image {
		image[i] = byte(rng.Uint32())
	}
	if code, _, stderr := dogIO(t, etcd, bytes.NewReader(image), "vdi", "write", "img"); code != 0 {
		t.Fatalf("vdi write: exit %d: %s", code, stderr)
	}
	code, got, stderr := dogIO(t, etcd, nil, "vdi", "read", "img")
	if code != 0 {
		t.Fatalf("vdi read: exit %d: %s", code, stderr)
	}
	want := append(image, make([]byte, 64<<20-len(image))...)
	if len(got) != len(want) || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("vdi read: %d bytes, checksum mismatch=%v", len(got), sha256.Sum256(got) != sha256.Sum256(want))
	}

	// Too large an image fails (exit 1) without touching the VDI when its
	// size is known; from a pipe, once it is past the end.
	if code, _, stderr := dogIO(t, etcd, bytes.NewReader(make([]byte, 65<<20)), "vdi", "write", "img"); code != 1 || !strings.Contains(stderr, "larger than the vdi") {
		t.Fatalf("oversized write: exit %d: %s", code, stderr)
	}
	dogRun(t, etcd, "vdi", "create", "small", "1M").must(t, 0)
	if code, _, stderr := dogIO(t, etcd, io.MultiReader(bytes.NewReader(make([]byte, 3<<20))), "vdi", "write", "small"); code != 1 || !strings.Contains(stderr, "larger than the vdi") {
		t.Fatalf("oversized write from a pipe: exit %d: %s", code, stderr)
	}
	if code, _, _ := dogIO(t, etcd, nil, "vdi", "read", "nope"); code != 1 {
		t.Fatalf("read of a missing vdi: exit %d", code)
	}

	// Deleting a VDI removes its objects from the nodes.
	dogRun(t, etcd, "vdi", "create", "tmp", "16M").must(t, 0)
	if code, _, stderr := dogIO(t, etcd, bytes.NewReader(image[:9<<20]), "vdi", "write", "tmp"); code != 0 {
		t.Fatalf("vdi write tmp: exit %d: %s", code, stderr)
	}
	var deleted dog.DeletedVDI
	if err := json.Unmarshal([]byte(dogRun(t, etcd, "vdi", "delete", "tmp", "--json").must(t, 0).stdout), &deleted); err != nil {
		t.Fatal(err)
	}
	if deleted.Purge == nil || deleted.Purge.Removed != 3*3 || len(deleted.Purge.Unreached) != 0 {
		t.Fatalf("delete tmp (3 objects x 3 copies): %+v", deleted.Purge)
	}

	if code := stop(); code != 0 {
		t.Fatalf("start-local exit %d after SIGINT-equivalent", code)
	}

	// The same directory again: formatted already, data still there.
	etcd, stop = startLocal(t, dir, "--insecure")
	defer stop()
	code, got, stderr = dogIO(t, etcd, nil, "vdi", "read", "img")
	if code != 0 || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("vdi read after restart: exit %d, %s, match=%v", code, stderr, sha256.Sum256(got) == sha256.Sum256(want))
	}
}

func TestStartLocalBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"cluster", "start-local"},
		{"cluster", "start-local", "--dir", t.TempDir(), "--nodes", "2", "--copies", "3"},
		{"cluster", "start-local", "--dir", t.TempDir(), "--nodes", "-1"},
		{"cluster", "start-local", "--dir", t.TempDir(), "--nodes", "0", "--copies", "0"},
		{"cluster", "start-local", "--dir", t.TempDir(), "--nodes", "0", "--copies", "32"},
		{"cluster", "start-local", "--dir", t.TempDir(), "--nodes", "64", "--copies", "32"},
		{"cluster", "start-local", "--dir", t.TempDir(), "--base-port", "-1"},
		{"cluster", "start-local", "--dir", t.TempDir(), "--log-level", "loud"},
	} {
		dogRun(t, "", args...).must(t, 2)
	}
}

// With --nodes 0 start-local runs etcd alone, formatted with --copies, and
// the nodes are started on their own, as `sheep --etcd URL` does (here in
// this process, through package sheep): a VDI written through them reads
// back.
func TestStartLocalEtcdAlone(t *testing.T) {
	etcd, stop := startLocal(t, t.TempDir(), "--insecure", "--nodes", "0", "--copies", "2")
	defer stop()
	if nl := dogRun(t, etcd, "node", "list", "--json").must(t, 0).stdout; strings.Count(nl, `"id"`) != 0 {
		t.Fatalf("node list of a cluster without nodes: %s", nl)
	}
	cl, err := cluster.Connect(cluster.Options{Endpoints: []string{etcd}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if s, err := cl.Settings(context.Background()); err != nil || s.Copies != 2 {
		t.Fatalf("settings: %+v, %v", s, err)
	}
	for i := range 2 {
		n, err := sheep.NewNode(sheep.Options{Dir: t.TempDir(), ID: fmt.Sprintf("n%d", i), Cluster: cl, RegisterTTL: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go n.Serve(l)
	}
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(dogRun(t, etcd, "node", "list", "--json").must(t, 0).stdout, `"id"`) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the two nodes did not register in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	dogRun(t, etcd, "vdi", "create", "img", "8M").must(t, 0)
	image := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range image {
		image[i] = byte(rng.Uint32())
	}
	if code, _, stderr := dogIO(t, etcd, bytes.NewReader(image), "vdi", "write", "img"); code != 0 {
		t.Fatalf("vdi write: exit %d: %s", code, stderr)
	}
	if code, got, stderr := dogIO(t, etcd, nil, "vdi", "read", "img"); code != 0 || !bytes.Equal(got, image) {
		t.Fatalf("vdi read: exit %d, %d bytes, equal=%v: %s", code, len(got), bytes.Equal(got, image), stderr)
	}
}
