package sheep_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sheepblk/sheepblk/backend"
	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
	"github.com/sheepblk/sheepblk/cluster/local"
	"github.com/sheepblk/sheepblk/internal/pollertest"
	"github.com/sheepblk/sheepblk/placement"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

const callTimeout = 2 * time.Second

func startCluster(t testing.TB, nodes, copies int) *local.Cluster {
	t.Helper()
	c, err := local.Start(context.Background(), local.Options{
		Dir: t.TempDir(), Nodes: nodes, Copies: copies, NodeCapacity: 1 << 40,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func createVDI(t testing.TB, c *local.Cluster, name string, size int64) cluster.VDI {
	t.Helper()
	v, err := c.Client().CreateVDI(context.Background(), cluster.CreateVDIOptions{Name: name, Size: size})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// open opens a VDI with the short call timeout the failure tests bound
// their failures by.
func open(t testing.TB, c *local.Cluster, name string) *sheepbackend.Backend {
	t.Helper()
	return openWith(t, c, name, callTimeout)
}

// bulkTimeout is the call timeout of tests that move a lot of data: they
// test content, and a -race build on a loaded machine is slow.
const bulkTimeout = 60 * time.Second

func openWith(t testing.TB, c *local.Cluster, name string, timeout time.Duration) *sheepbackend.Backend {
	t.Helper()
	return openOpts(t, c, sheepbackend.Options{VDI: name, CallTimeout: timeout})
}

// ioTimeout is the request deadline of the failure tests: a write that
// cannot reach every replica of an epoch fails after it.
const ioTimeout = 3 * time.Second

// openFailing opens a VDI with the short call and request timeouts the
// failure tests bound their failures by.
func openFailing(t testing.TB, c *local.Cluster, name string) *sheepbackend.Backend {
	t.Helper()
	return openOpts(t, c, sheepbackend.Options{VDI: name, CallTimeout: callTimeout, IOTimeout: ioTimeout})
}

func openOpts(t testing.TB, c *local.Cluster, opts sheepbackend.Options) *sheepbackend.Backend {
	t.Helper()
	opts.Cluster = c.Client()
	b, err := sheepbackend.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type extent struct {
	off  int64
	n    int
	seed uint64
	sum  [32]byte
}

func (e *extent) data() []byte {
	p := make([]byte, e.n)
	r := rand.New(rand.NewPCG(e.seed, 7))
	for i := 0; i+8 <= len(p); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			p[i+j] = byte(v >> (8 * j))
		}
	}
	return p
}

// writeExtents writes count non-overlapping extents of up to 1 MiB, one per
// random 1 MiB slot of the VDI, from 8 goroutines.
func writeExtents(t *testing.T, b *sheepbackend.Backend, count int, seed uint64) []extent {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	slots := int(b.Size() >> 20)
	perm := r.Perm(slots)[:count]
	exts := make([]extent, count)
	for i, s := range perm {
		n := (1 + r.IntN(256)) * 4096 // 4 KiB .. 1 MiB
		off := int64(s)<<20 + int64(r.IntN((1<<20-n)/512+1))*512
		exts[i] = extent{off: off, n: n, seed: r.Uint64()}
	}
	parallel(t, len(exts), func(i int) error {
		e := &exts[i]
		p := e.data()
		e.sum = sha256.Sum256(p)
		_, err := b.WriteAt(p, e.off)
		return err
	})
	return exts
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

// verify reads every extent back and compares checksums, plus the bytes
// just around it (never written: zeros).
func verify(t *testing.T, b *sheepbackend.Backend, exts []extent) {
	t.Helper()
	parallel(t, len(exts), func(i int) error {
		e := &exts[i]
		p := make([]byte, e.n)
		if _, err := b.ReadAt(p, e.off); err != nil {
			return fmt.Errorf("read extent %d at %d: %w", i, e.off, err)
		}
		if sha256.Sum256(p) != e.sum {
			want := e.data()
			first := 0
			for first < len(p) && p[first] == want[first] {
				first++
			}
			last := len(p) - 1
			for last > first && p[last] == want[last] {
				last--
			}
			return fmt.Errorf("extent %d at %d+%d: checksum mismatch: bytes %d..%d differ (got %x, want %x)",
				i, e.off, e.n, first, last, p[first:min(first+8, len(p))], want[first:min(first+8, len(p))])
		}
		return nil
	})
}

func TestReplicatedIO(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MiB to a 3-node cluster")
	}
	c := startCluster(t, 3, 3)
	vdi := createVDI(t, c, "disk", 1<<30)
	b := openWith(t, c, "disk", bulkTimeout)

	start := time.Now()
	exts := writeExtents(t, b, 400, 1) // ~200 MiB over 400 of the 1024 slots
	var total int
	for _, e := range exts {
		total += e.n
	}
	t.Logf("wrote %d MiB in %v", total>>20, time.Since(start))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	verify(t, b, exts)

	// Unwritten ranges read as zeros: the first slot not used.
	used := map[int64]bool{}
	for _, e := range exts {
		used[e.off>>20] = true
	}
	for s := int64(0); s < 1024; s++ {
		if !used[s] {
			p := bytes.Repeat([]byte{0xff}, 1<<20)
			if _, err := b.ReadAt(p, s<<20); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, make([]byte, 1<<20)) {
				t.Fatalf("never-written slot %d does not read as zeros", s)
			}
			break
		}
	}

	// Every object written is on exactly 3 nodes, with identical bytes;
	// no other object exists.
	objects := map[uint32]bool{}
	for _, e := range exts {
		for o := e.off / vdi.ObjectSize; o <= (e.off+int64(e.n)-1)/vdi.ObjectSize; o++ {
			objects[uint32(o)] = true
		}
	}
	checkReplicas(t, c, vdi, objects, 3)

	// Past the end: refused.
	if _, err := b.WriteAt(make([]byte, 4096), vdi.Size); err == nil {
		t.Fatal("write past the end succeeded")
	}
	// Discard and write-zeroes read back as zeros.
	e := exts[0]
	if err := b.Discard(e.off, 4096); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteZeroes(e.off+4096, 4096); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 8192)
	if _, err := b.ReadAt(p, e.off); err != nil || !bytes.Equal(p, make([]byte, 8192)) {
		t.Fatalf("discarded range: %v, zeros=%v", err, bytes.Equal(p, make([]byte, 8192)))
	}
}

// checkReplicas reads each object straight from each node's store.
func checkReplicas(t *testing.T, c *local.Cluster, vdi cluster.VDI, objects map[uint32]bool, copies int) {
	t.Helper()
	buf := make([]byte, vdi.ObjectSize)
	ref := make([]byte, vdi.ObjectSize)
	stored := 0
	for i := range c.Nodes() {
		stored += c.Node(i).Store().Stats().Objects
	}
	if stored != len(objects)*copies {
		t.Fatalf("nodes hold %d objects, want %d (%d objects x %d copies)", stored, len(objects)*copies, len(objects), copies)
	}
	for idx := range objects {
		oid := proto.NewObjectID(vdi.ID, idx)
		holders := 0
		for i := range c.Nodes() {
			st := c.Node(i).Store()
			if !st.Exists(oid) {
				continue
			}
			if err := st.ReadAt(oid, buf, 0); err != nil {
				t.Fatalf("node %d: read %v: %v", i, oid, err)
			}
			if holders == 0 {
				copy(ref, buf)
			} else if !bytes.Equal(ref, buf) {
				t.Fatalf("object %v differs between replicas", oid)
			}
			holders++
		}
		if holders != copies {
			t.Fatalf("object %v on %d nodes, want %d", oid, holders, copies)
		}
	}
}

// TestPlacementFollowsRing: with 5 nodes and 2 copies each object lives
// exactly on the 2 nodes placement names.
func TestPlacementFollowsRing(t *testing.T) {
	c := startCluster(t, 5, 2)
	vdi := createVDI(t, c, "disk", 256<<20)
	b := openWith(t, c, "disk", bulkTimeout)
	p := bytes.Repeat([]byte("sheep"), 1000)
	objects := map[uint32]bool{}
	for idx := uint32(0); idx < 64; idx++ {
		if _, err := b.WriteAt(p, int64(idx)*vdi.ObjectSize+100); err != nil {
			t.Fatal(err)
		}
		objects[idx] = true
	}
	e, err := c.Client().Epoch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var members []placement.Node
	for _, m := range e.Members {
		members = append(members, placement.Node{ID: placement.NodeID(m.ID), Zone: m.Zone, Capacity: m.Capacity})
	}
	ring, err := placement.New(members)
	if err != nil {
		t.Fatal(err)
	}
	for idx := range objects {
		oid := proto.NewObjectID(vdi.ID, idx)
		want := ring.Replicas(uint64(oid), 2, nil)
		for i := range c.Nodes() {
			has := c.Node(i).Store().Exists(oid)
			id := placement.NodeID(fmt.Sprintf("node-%d", i))
			if has != (id == want[0] || id == want[1]) {
				t.Fatalf("object %v: node %s has=%v, placement says %v", oid, id, has, want)
			}
		}
	}
	checkReplicas(t, c, vdi, objects, 2)

	// Deleting the VDI: the open client stops taking I/O, and a purge
	// leaves no object behind. The cluster's nodes joined one epoch at a
	// time, and a delete waits for the last epoch's recovery (on a loaded
	// machine it can still run).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		_, err := c.Client().DeleteVDI(context.Background(), "disk")
		if err == nil {
			break
		}
		if !errors.Is(err, cluster.ErrRecovering) || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		_, err := b.WriteAt(p, 0)
		return err != nil && strings.Contains(err.Error(), "was deleted")
	})
	b.Close()
	res, err := sheepbackend.Purge(context.Background(), sheepbackend.PurgeOptions{Cluster: c.Client(), VDI: vdi})
	if err != nil || res.Removed != 2*len(objects) || len(res.Unreached) != 0 {
		t.Fatalf("purge: %+v, %v; want %d removed", res, err, 2*len(objects))
	}
	for i := range c.Nodes() {
		if n := c.Node(i).Store().Stats().Objects; n != 0 {
			t.Fatalf("node %d holds %d objects after the purge", i, n)
		}
	}
}

func TestNodeFailureAndRestart(t *testing.T) {
	c := startCluster(t, 3, 3)
	vdi := createVDI(t, c, "disk", 256<<20)
	writer := openWith(t, c, "disk", bulkTimeout)
	exts := writeExtents(t, writer, 64, 2)
	if err := writer.Flush(); err != nil {
		t.Fatal(err)
	}
	writer.Close()
	b := openFailing(t, c, "disk") // failures below are bounded by its timeouts

	// Node 1 stops answering while still listed (hung, then gone: a crash
	// before its lease expires). A proxy in front of it plays the fault.
	proxy := newProxy(t, c.NodeAddr(1))
	ghost, err := c.Client().Register(context.Background(), cluster.Node{ID: "node-1", Addr: proxy.addr()}, cluster.RegisterOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	waitNode(t, b, "node-1", proxy.addr())
	verify(t, b, exts[:8]) // through the proxy
	for _, fault := range []string{"hung", "refusing"} {
		proxy.fail(fault)
		verify(t, b, exts[:12]) // reads fail over on timeout or error
		// A write resends to the silent replica until the io-timeout
		// (no epoch change comes), then fails naming it.
		start := time.Now()
		if _, err := b.WriteAt(make([]byte, 4096), 0); err == nil {
			t.Fatalf("%s node: write succeeded", fault)
		} else if took := time.Since(start); took < ioTimeout-100*time.Millisecond || took > ioTimeout+time.Second {
			t.Fatalf("%s node: write failed after %v, want the %v io-timeout: %v", fault, took, ioTimeout, err)
		} else if !strings.Contains(err.Error(), "node node-1") || !strings.Contains(err.Error(), "io-timeout") {
			t.Fatalf("%s node: write error does not name the node and the io-timeout: %v", fault, err)
		} else {
			t.Logf("%s node: write failed after %v: %v", fault, took.Round(time.Millisecond), err)
		}
	}
	// Something else at a node's address is never trusted: a listener
	// there that is not node-1 gets no I/O (it would read back zeros).
	impostor := c.NodeAddr(2) // node-2 answers, but is not node-1
	if err := ghost.Update(context.Background(), cluster.Node{ID: "node-1", Addr: impostor}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.Node("node-1").Addr == impostor })
	time.Sleep(300 * time.Millisecond) // verification attempts run meanwhile
	if st := b.Node("node-1"); st.Verified {
		t.Fatalf("node-2 was accepted as node-1: %+v", st)
	}
	verify(t, b, exts[:12])
	ghost.Close()

	// One node dies and stays a member (no epoch change): reads still
	// succeed (fail over), writes to its objects (all of them, with 3
	// copies on 3 nodes) fail at the io-timeout.
	if err := c.KillNode(1); err != nil {
		t.Fatal(err)
	}
	verify(t, b, exts)
	start := time.Now()
	_, err = b.WriteAt(make([]byte, 4096), 0)
	if err == nil {
		t.Fatal("write with a replica down succeeded")
	}
	if took := time.Since(start); took > ioTimeout+time.Second {
		t.Fatalf("failed write took %v", took)
	}
	if !strings.Contains(err.Error(), "node-1") {
		t.Fatalf("write error does not name the dead node: %v", err)
	}
	t.Logf("write with a replica down: %v", err)

	// A request through the async interface fails with EIO, not a hang.
	r, w := asyncReq(backend.OpWrite, 0, make([]byte, 4096))
	b.Submit(r)
	select {
	case <-w:
	case <-time.After(ioTimeout + time.Second):
		t.Fatal("async write with a replica down did not complete")
	}
	if r.Result != -5 {
		t.Fatalf("async write result %d, want -EIO", r.Result)
	}

	// Every node restarts: the acknowledged and flushed data is there.
	for i := range c.Nodes() {
		if err := c.StopNode(i); err != nil {
			t.Fatal(err)
		}
	}
	// With no node up, I/O fails in bounded time.
	start = time.Now()
	if _, err := b.ReadAt(make([]byte, 4096), 0); err == nil {
		t.Fatal("read with every node down succeeded")
	}
	if took := time.Since(start); took > ioTimeout+time.Second {
		t.Fatalf("read with every node down took %v", took)
	}
	for i := range c.Nodes() {
		if err := c.StartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	fresh := openWith(t, c, "disk", bulkTimeout)
	verify(t, fresh, exts)
	// The old client recovers too (it redials with backoff).
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := b.WriteAt([]byte("back"), vdi.Size-4096)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old client did not recover: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	verify(t, b, exts)
}

// waitNode waits until the backend (which watches etcd) has verified node
// id at addr.
func waitNode(t *testing.T, b *sheepbackend.Backend, id, addr string) {
	t.Helper()
	waitFor(t, func() bool {
		st := b.Node(id)
		return st.Up && st.Verified && st.Addr == addr
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proxy forwards TCP connections to a node until told to fail: "hung"
// stops forwarding (connections stay open, nothing answers, what is sent
// is lost), "refusing" closes everything and stops listening. pause stops
// reading (what is sent waits in the socket buffers) until resume: a
// SIGSTOP of the node, as its peers see it.
type proxy struct {
	t      *testing.T
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	hung   bool
	paused bool
	resume chan struct{} // closed by unpause
}

func newProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, l: l, target: target, resume: make(chan struct{})}
	t.Cleanup(func() { p.fail("refusing") })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		p.mu.Lock()
		paused, resume := p.paused, p.resume
		p.mu.Unlock()
		if paused {
			<-resume
		}
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		p.mu.Lock()
		hung, paused, resume := p.hung, p.paused, p.resume
		p.mu.Unlock()
		if paused { // held here as if still in the socket buffer
			<-resume
			p.mu.Lock()
			hung = p.hung
			p.mu.Unlock()
		}
		if hung {
			continue // swallow: the peer waits forever
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func (p *proxy) fail(how string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resume)
	}
	switch how {
	case "paused":
		p.paused, p.resume = true, make(chan struct{})
	case "hung":
		p.hung = true
	case "resumed":
	case "refusing":
		p.l.Close()
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

type waiter chan *backend.Request

func (w waiter) Complete(r *backend.Request) { w <- r }

func asyncReq(op backend.Op, off int64, buf []byte) (*backend.Request, waiter) {
	w := make(waiter, 1)
	r := &backend.Request{Op: op, Offset: off, Length: len(buf), Buf: buf}
	r.Bind(w, 0)
	return r, w
}

func TestClosedAndBadRequests(t *testing.T) {
	c := startCluster(t, 1, 1)
	createVDI(t, c, "disk", 64<<20)
	b, err := sheepbackend.Open(context.Background(), sheepbackend.Options{Cluster: c.Client(), VDI: "disk"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sheepbackend.Open(context.Background(), sheepbackend.Options{Cluster: c.Client(), VDI: "nope"}); !errors.Is(err, cluster.ErrVDINotFound) {
		t.Fatalf("open missing vdi: %v", err)
	}
	r, w := asyncReq(backend.OpRead, 64<<20-4096, make([]byte, 8192))
	b.Submit(r)
	<-w
	if r.Result >= 0 {
		t.Fatalf("read past the end: result %d", r.Result)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	r, w = asyncReq(backend.OpRead, 0, make([]byte, 4096))
	b.Submit(r)
	<-w
	if r.Result >= 0 {
		t.Fatalf("read after close: result %d", r.Result)
	}
}

// TestOpenWithUnreachableNode: a listed node nobody can reach does not hold
// Open up; I/O avoids it (reads) or fails at the io-timeout naming it
// (writes).
func TestOpenWithUnreachableNode(t *testing.T) {
	c := startCluster(t, 3, 2)
	// Registered before any VDI exists, so it is a member, not a spare.
	reg, err := c.Client().Register(context.Background(), cluster.Node{ID: "node-x", Addr: clustertest.ClosedAddr(t), Capacity: 1 << 40}, cluster.RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	createVDI(t, c, "disk", 64<<20)
	start := time.Now()
	b := openOpts(t, c, sheepbackend.Options{VDI: "disk", CallTimeout: callTimeout, IOTimeout: 300 * time.Millisecond})
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Open took %v with an unreachable node listed", took)
	}
	if st := b.Node("node-x"); !st.Up || st.Verified {
		t.Fatalf("node-x: %+v", st)
	}
	p := make([]byte, 1<<20)
	failedWrites := 0
	for off := int64(0); off < 64<<20; off += 4 << 20 {
		if _, err := b.ReadAt(p, off); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if _, err := b.WriteAt(p[:4096], off); err != nil {
			if !strings.Contains(err.Error(), "node node-x: no verified connection") {
				t.Fatalf("write at %d: %v", off, err)
			}
			failedWrites++
		}
	}
	if failedWrites == 0 || failedWrites == 16 {
		t.Fatalf("%d of 16 objects have node-x as a replica: placement ignores it or uses only it", failedWrites)
	}
}

func newOID(vdi, idx uint32) proto.ObjectID { return proto.NewObjectID(vdi, idx) }

// TestRepliesOnPoller: with a poller (the ublk queue thread in the daemon)
// reading the nodes' replies, writes and reads of random extents on 3
// nodes, copies=3, read back intact; the idle connections opened before
// the poller came are replaced by 3 it reads; when it stops, the backend
// reads its sockets on its own again and I/O goes on.
func TestRepliesOnPoller(t *testing.T) {
	c := startCluster(t, 3, 3)
	createVDI(t, c, "disk", 256<<20)
	b := openWith(t, c, "disk", bulkTimeout)
	// A write goes to all 3 nodes: every connection is open before the
	// poller comes.
	if _, err := b.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}

	p := pollertest.New(t)
	b.UsePoller(p)
	b.UsePoller(pollertest.New(t)) // a second queue's offer is ignored
	exts := writeExtents(t, b, 64, 1)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	verify(t, b, exts)
	if p.Watched.Load() != 3 || p.Wakes.Load() == 0 {
		t.Fatalf("poller took %d sockets, woke %d times; want the 3 node connections", p.Watched.Load(), p.Wakes.Load())
	}

	p.Stop()
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	verify(t, b, exts)
}
