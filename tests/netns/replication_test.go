package netns_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"golang.org/x/sync/errgroup"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

const (
	nodes     = 3
	copies    = 3
	vdiName   = "netdisk"
	vdiSize   = 256 << 20
	nodePort  = "7000"
	etcdURL   = "http://" + hostAddr + ":2379"
	blockSize = 4096 // the write model's unit
)

// TestReplicationAcrossNamespaces: three sheep processes, each in its own
// network namespace with its own address, copies=3. Random overlapping
// writes go through the client gateway; random reads, and a whole-VDI
// `dog vdi read`, return what the model says; afterwards every object
// written is a file on exactly the 3 nodes, with identical bytes that
// match the model.
func TestReplicationAcrossNamespaces(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster in network namespaces")
	}
	env := newClusterEnv(t, nodes, 3*time.Minute)
	ctx, tn, secretFile, secret, dog := env.ctx, env.tn, env.secretFile, env.secret, env.dog
	if err := dog(io.Discard, "cluster", "format", "--copies", fmt.Sprint(copies)); err != nil {
		t.Fatal(err)
	}

	// The nodes, each in its namespace, reaching etcd over the bridge.
	dirs := make([]string, nodes)
	procs := make([]*nodeProc, nodes)
	for i := range nodes {
		dirs[i] = filepath.Join(env.dir, fmt.Sprintf("node%d", i))
		procs[i] = startNode(t, ctx, tn, i, env.sheep(), dirs[i], secretFile)
	}
	waitNodesUp(t, dog, procs)

	if err := dog(io.Discard, "vdi", "create", vdiName, fmt.Sprint(vdiSize)); err != nil {
		t.Fatal(err)
	}
	client, err := cluster.Connect(cluster.Options{Endpoints: []string{etcdURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b, err := sheepbackend.Open(ctx, sheepbackend.Options{
		Cluster: client, VDI: vdiName,
		// Content, not failure timing, is under test: a loaded host is slow.
		CallTimeout: 60 * time.Second,
		RPC:         rpc.ClientOptions{Secret: secret},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	vdi := b.VDI()
	if b.Size() != vdiSize || vdi.Copies != copies {
		t.Fatalf("vdi %s: size %d copies %d, want %d and %d", vdiName, b.Size(), vdi.Copies, vdiSize, copies)
	}

	// Writes: rounds of 64 extents (4 KiB..1 MiB) in distinct random 1 MiB
	// slots, 8 at a time; later rounds overwrite parts of earlier ones.
	m := newModel(vdiSize)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	start := time.Now()
	written := 0
	for round := range 3 {
		exts := m.randomExtents(r, 64)
		parallel(t, len(exts), func(k int) error {
			e := exts[k]
			if _, err := b.WriteAt(m.bytes(e.off, e.n), e.off); err != nil {
				return fmt.Errorf("round %d: write %d bytes at %d: %w", round, e.n, e.off, err)
			}
			return nil
		})
		for _, e := range exts {
			written += e.n
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	t.Logf("wrote %d MiB in %v (%d objects touched)", written>>20, time.Since(start).Round(time.Millisecond), len(m.objects(vdi.ObjectSize)))

	// Random reads, half inside written data, half anywhere (zeros where
	// never written), compared by checksum.
	reads := make([]extent, 256)
	for k := range reads {
		n := (1 + r.IntN(2048)) * 512 // 512 B .. 1 MiB, not block aligned
		var off int64
		if k%2 == 0 {
			w := m.written[r.IntN(len(m.written))]
			off = min(w.off+int64(r.IntN(w.n/512))*512, vdiSize-int64(n))
		} else {
			off = int64(r.IntN(int(vdiSize-int64(n))/512+1)) * 512
		}
		reads[k] = extent{off: off, n: n}
	}
	parallel(t, len(reads), func(k int) error {
		e := reads[k]
		p := make([]byte, e.n)
		if _, err := b.ReadAt(p, e.off); err != nil {
			return fmt.Errorf("read %d bytes at %d: %w", e.n, e.off, err)
		}
		if sha256.Sum256(p) != sha256.Sum256(m.bytes(e.off, e.n)) {
			return fmt.Errorf("read %d bytes at %d: checksum differs from what was written", e.n, e.off)
		}
		return nil
	})

	// The whole VDI through dog, from the host namespace.
	h := sha256.New()
	if err := dog(h, "vdi", "read", vdiName, "--secret-file", secretFile); err != nil {
		t.Fatal(err)
	}
	if got, want := h.Sum(nil), m.sum(); !bytes.Equal(got, want) {
		t.Fatalf("dog vdi read: sha256 %x, want %x", got, want)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close the backend: %v", err)
	}

	// Stop the nodes cleanly, then look at their directories.
	for _, p := range procs {
		p.stop(t)
	}
	checkObjectFiles(t, m, vdi, dirs)
}

// checkObjectFiles: the objects written are, in every node's objects/,
// exactly the files there; each is byte-identical across the nodes and
// holds the model's bytes of its range (zeros past the file's end).
func checkObjectFiles(t *testing.T, m *model, vdi cluster.VDI, dirs []string) {
	t.Helper()
	idxs := m.objects(vdi.ObjectSize)
	var want []string // in idxs order: object ids sort as their indexes
	for _, idx := range idxs {
		want = append(want, proto.NewObjectID(vdi.ID, idx).String())
	}
	if !sort.StringsAreSorted(want) {
		t.Fatalf("object ids %v do not sort as their indexes", want)
	}
	for i, d := range dirs {
		ents, err := os.ReadDir(filepath.Join(d, "objects"))
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Fatalf("node %d holds %d objects, want exactly the %d written: missing %v, unexpected %v",
				i, len(got), len(want), minus(want, got), minus(got, want))
		}
	}
	for k, name := range want {
		var ref []byte
		for i, d := range dirs {
			data, err := os.ReadFile(filepath.Join(d, "objects", name))
			if err != nil {
				t.Fatalf("node %d: %v", i, err)
			}
			if i == 0 {
				ref = data
				continue
			}
			if !bytes.Equal(data, ref) {
				t.Fatalf("object %s: node %d's file (%d bytes) differs from node 0's (%d bytes)", name, i, len(data), len(ref))
			}
		}
		if int64(len(ref)) > vdi.ObjectSize {
			t.Fatalf("object %s: file of %d bytes, past the object size %d", name, len(ref), vdi.ObjectSize)
		}
		idx := idxs[k]
		full := append(ref, make([]byte, vdi.ObjectSize-int64(len(ref)))...)
		if !bytes.Equal(full, m.bytes(int64(idx)*vdi.ObjectSize, int(vdi.ObjectSize))) {
			t.Fatalf("object %s: the nodes agree, but not with what was written", name)
		}
	}
	t.Logf("%d objects, each on all %d nodes with identical bytes", len(want), len(dirs))
}

// minus is the sorted a without the elements of b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}

// buildBinaries builds sheep and dog from this checkout (not bin/, which
// may be stale) into a temporary directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", out+"/",
		"github.com/sheepblk/sheepblk/cmd/sheep", "github.com/sheepblk/sheepblk/cmd/dog")
	// sheep sets PR_SET_IO_FLUSHER on all threads, which a cgo binary refuses.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build sheep and dog: %v\n%s", err, msg)
	}
	return out
}

// startEtcd runs an embedded etcd listening on the bridge's host address
// only, where every namespace reaches it.
func startEtcd(t *testing.T, dir string) {
	t.Helper()
	client, _ := url.Parse(etcdURL)
	peer, _ := url.Parse("http://" + hostAddr + ":2380")
	cfg := embed.NewConfig()
	cfg.Name = "netns"
	cfg.Dir = dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.Metrics = "basic"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd on %s: %v", etcdURL, err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd on %s: %v", etcdURL, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("etcd on %s not ready after 30s", etcdURL)
	}
}

// nodeProc is one running sheep.
type nodeProc struct {
	i    int
	addr string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startNode(t *testing.T, ctx context.Context, tn *testNet, i int, sheep, dir, secretFile string) *nodeProc {
	t.Helper()
	return startNodeWith(t, ctx, tn, i, sheep, dir, secretFile)
}

// startNodeWith is startNode with extra sheep flags.
func startNodeWith(t *testing.T, ctx context.Context, tn *testNet, i int, sheep, dir, secretFile string, extra ...string) *nodeProc {
	t.Helper()
	p := &nodeProc{i: i, addr: nodeAddr(i) + ":" + nodePort, log: dir + ".log", done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = tn.command(ctx, i, sheep, append([]string{
		"--dir", dir, "--listen", p.addr, "--etcd", etcdURL, "--secret-file", secretFile,
		"--capacity", "1T", "--log-format", "json", "--log-level", "warn"}, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start node %d: %v", i, err)
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			log, _ := os.ReadFile(p.log)
			t.Logf("node %d (%s) log:\n%s", i, p.addr, tail(string(log), 3000))
		}
	})
	return p
}

// stop ends the node with SIGTERM (a clean shutdown) and waits for it.
func (p *nodeProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("node %d still running 20s after SIGTERM", p.i)
	}
	if st := p.cmd.ProcessState; st == nil || !st.Success() {
		t.Fatalf("node %d exited with %v after SIGTERM", p.i, st)
	}
}

// waitNodesUp waits until `dog node list` shows every node up at its own
// namespace's address.
func waitNodesUp(t *testing.T, dog func(io.Writer, ...string) error, procs []*nodeProc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		var out bytes.Buffer
		err := dog(&out, "node", "list", "--json")
		var list []cluster.Node
		if err == nil {
			err = json.Unmarshal(out.Bytes(), &list)
		}
		up := map[string]bool{}
		for _, n := range list {
			if n.State == cluster.NodeUp {
				up[n.Addr] = true
			}
		}
		all := err == nil
		for _, p := range procs {
			all = all && up[p.addr]
		}
		if all && len(up) == len(procs) {
			return
		}
		last = fmt.Sprintf("%s %v", strings.TrimSpace(out.String()), err)
		for _, p := range procs {
			select {
			case <-p.done:
				log, _ := os.ReadFile(p.log)
				t.Fatalf("node %d exited at start (%v):\n%s", p.i, p.cmd.ProcessState, tail(string(log), 3000))
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes not all up after 30s; dog node list: %s", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// parallel runs f for 0..n-1 on 8 goroutines and fails on the first error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error { return f(i) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}
