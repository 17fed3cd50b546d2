package etcdquorum

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
	"github.com/sheepblk/sheepblk/dog/check"
	"github.com/sheepblk/sheepblk/internal/testutil"
	"github.com/sheepblk/sheepblk/sheep"
)

const (
	objectSize = 1 << 20
	blockSize  = 4096
	ttl        = 2 * time.Second
	grace      = 2 * time.Second
)

// harness is the sheep cluster over the etcd cluster.
type harness struct {
	t     *testing.T
	etcd  *clustertest.EtcdCluster
	admin *cluster.Client
	log   testutil.LogBuffer
	nodes map[string]*sheep.Node
}

func (h *harness) connect() *cluster.Client {
	h.t.Helper()
	c, err := cluster.Connect(cluster.Options{Endpoints: h.etcd.ClientURLs(), RequestTimeout: 2 * time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// startNode starts a sheep node with its own etcd connection (as its own
// process would have).
func (h *harness) startNode(id string) {
	h.t.Helper()
	n, err := sheep.NewNode(sheep.Options{
		Dir: filepath.Join(h.t.TempDir(), id), ID: id, Cluster: h.connect(), RegisterTTL: ttl,
		Capacity: 1 << 30, Logger: zerolog.New(&h.log).With().Str("node", id).Logger(),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	go n.Serve(l)
	h.nodes[id] = n
	h.t.Cleanup(func() { n.Close() })
}

func (h *harness) killNode(id string) {
	h.t.Helper()
	h.nodes[id].Close()
	delete(h.nodes, id)
}

// waitEpoch waits until the members are want (comma-separated) and, if
// recovered, the epoch is recovery-complete.
func (h *harness) waitEpoch(want string, recovered bool, timeout time.Duration) cluster.Epoch {
	h.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		e, err := h.admin.Epoch(ctx)
		if err == nil && members(e) == want {
			last, err := h.admin.LastComplete(ctx)
			if !recovered || (err == nil && last >= e.Number) {
				return e
			}
		}
		if time.Now().After(deadline) {
			st, _ := h.admin.RecoveryStatuses(ctx)
			h.t.Fatalf("members %q (recovered %v) not reached in %v: epoch %+v, %v; recovery %+v", want, recovered, timeout, e, err, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func members(e cluster.Epoch) string {
	ids := make([]string, len(e.Members))
	for i, m := range e.Members {
		ids[i] = m.ID
	}
	return strings.Join(ids, ",")
}

// workload writes checksummed blocks at random and reads each back,
// recording what every block must hold.
type workload struct {
	b      *sheepbackend.Backend
	blocks int
	mu     sync.Mutex
	want   map[int][]byte // acknowledged content per block
	ops    atomic.Int64
	errs   atomic.Int64
	lastEr atomic.Value
}

func block(idx int, seq uint64, r *rand.Rand) []byte {
	p := make([]byte, blockSize)
	binary.LittleEndian.PutUint64(p, seq)
	binary.LittleEndian.PutUint32(p[8:], uint32(idx))
	for i := 12; i < blockSize-4; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], r.Uint64())
	}
	binary.LittleEndian.PutUint32(p[blockSize-4:], crc32.ChecksumIEEE(p[:blockSize-4]))
	return p
}

func (w *workload) run(ctx context.Context) {
	r := rand.New(rand.NewPCG(1, 2))
	for seq := uint64(1); ctx.Err() == nil; seq++ {
		idx := r.IntN(w.blocks)
		p := block(idx, seq, r)
		if _, err := w.b.WriteAt(p, int64(idx)*blockSize); err != nil {
			w.fail(fmt.Errorf("write block %d: %w", idx, err))
			continue
		}
		w.mu.Lock()
		w.want[idx] = p
		w.mu.Unlock()
		q := make([]byte, blockSize)
		if _, err := w.b.ReadAt(q, int64(idx)*blockSize); err != nil {
			w.fail(fmt.Errorf("read block %d: %w", idx, err))
			continue
		}
		if crc32.ChecksumIEEE(q[:blockSize-4]) != binary.LittleEndian.Uint32(q[blockSize-4:]) || !bytes.Equal(p, q) {
			w.fail(fmt.Errorf("block %d read back wrong (seq %d)", idx, seq))
			continue
		}
		w.ops.Add(1)
	}
}

func (w *workload) fail(err error) {
	w.errs.Add(1)
	w.lastEr.Store(err.Error())
}

// progressing checks that I/O completes without error for d.
func (w *workload) progressing(t *testing.T, what string, d time.Duration) {
	t.Helper()
	ops, errs := w.ops.Load(), w.errs.Load()
	time.Sleep(d)
	if n := w.ops.Load() - ops; n < 10 {
		t.Fatalf("%s: only %d checksummed write+reads in %v", what, n, d)
	}
	if n := w.errs.Load() - errs; n != 0 {
		t.Fatalf("%s: %d I/O errors, last: %v", what, n, w.lastEr.Load())
	}
	t.Logf("%s: %d checksummed write+reads in %v, no error", what, w.ops.Load()-ops, d)
}

// verify reads every block back and compares it with its last
// acknowledged content.
func (w *workload) verify(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for idx, p := range w.want {
		q := make([]byte, blockSize)
		if _, err := w.b.ReadAt(q, int64(idx)*blockSize); err != nil {
			t.Fatalf("final read of block %d: %v", idx, err)
		}
		if !bytes.Equal(p, q) {
			t.Fatalf("block %d lost its last acknowledged write", idx)
		}
	}
}

func TestDataPathWithoutEtcdQuorum(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testQuorum(t, clustertest.EmbeddedCluster(t, 3)) })
	t.Run("external", func(t *testing.T) { testQuorum(t, clustertest.ExternalCluster(t, 3)) })
}

func testQuorum(t *testing.T, ec *clustertest.EtcdCluster) {
	ctx := context.Background()
	h := &harness{t: t, etcd: ec, nodes: map[string]*sheep.Node{}}
	h.admin = h.connect()
	if _, err := h.admin.Format(ctx, cluster.FormatOptions{Copies: 3, ObjectSize: objectSize, MemberGrace: grace}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n0", "n1", "n2", "n3"} {
		h.startNode(id)
	}
	h.waitEpoch("n0,n1,n2,n3", true, 60*time.Second)

	// One object: three of the four members are its targets; the fourth
	// can die without touching the data path.
	v, err := h.admin.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "disk", Size: objectSize})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sheepbackend.Open(ctx, sheepbackend.Options{Cluster: h.connect(), VDI: "disk", IOTimeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w := &workload{b: b, blocks: objectSize / blockSize, want: map[int][]byte{}}
	ioCtx, stopIO := context.WithCancel(ctx)
	ioDone := make(chan struct{})
	go func() { defer close(ioDone); w.run(ioCtx) }()
	defer func() { stopIO(); <-ioDone }()
	w.progressing(t, "all etcd members up", 2*time.Second)

	// 2 of 3 etcd members: the data path works and membership changes.
	ec.Stop(0)
	ec.WaitQuorum()
	w.progressing(t, "2 of 3 etcd members", 3*time.Second)
	h.startNode("n4")
	h.waitEpoch("n0,n1,n2,n3,n4", true, 60*time.Second)
	h.killNode("n4")
	e := h.waitEpoch("n0,n1,n2,n3", true, 60*time.Second)
	if !strings.Contains(e.Reason, "node n4 gone") {
		t.Fatalf("epoch %d reason %q", e.Number, e.Reason)
	}
	w.progressing(t, "2 of 3 etcd members, after n4 came and went", 2*time.Second)

	// 1 of 3: the data path still works (it does not need etcd); killing
	// the member that holds no replica of the object is a change that
	// must wait for quorum.
	ring, err := e.Ring()
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, id := range ring.Replicas(v.ObjectID(0), 3, nil) {
		targets[string(id)] = true
	}
	var spare string
	for _, m := range e.Members {
		if !targets[m.ID] {
			spare = m.ID
		}
	}
	ec.Stop(1)
	h.killNode(spare)
	w.progressing(t, "1 of 3 etcd members, "+spare+" killed", 3*(ttl+grace))
	waitLog(t, &h.log, "membership change waiting for etcd quorum", 20*time.Second)

	// Quorum back: the change happens.
	ec.Start(1)
	var rest []string
	for _, m := range e.Members {
		if m.ID != spare {
			rest = append(rest, m.ID)
		}
	}
	e2 := h.waitEpoch(strings.Join(rest, ","), true, 60*time.Second)
	if e2.Number != e.Number+1 || !strings.Contains(e2.Reason, "node "+spare+" gone") {
		t.Fatalf("after quorum came back: epoch %+v (was %d)", e2, e.Number)
	}
	w.progressing(t, "quorum back, "+spare+" removed", 2*time.Second)

	stopIO()
	<-ioDone
	w.verify(t)
	res, err := check.Run(ctx, check.Options{Cluster: h.admin})
	if err != nil || len(res.Problems) != 0 || res.Objects != 1 {
		t.Fatalf("cluster check: %+v, %v", res, err)
	}
}

func waitLog(t *testing.T, log *testutil.LogBuffer, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the nodes' logs after %v", want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
