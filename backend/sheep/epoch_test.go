package sheep_test

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/backend"
	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/local"
	"github.com/sheepblk/sheepblk/placement"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// The tests on a local cluster run real nodes: each runs the membership
// controller (cluster.RunMembership) and applies epoch changes. Those on a
// serviceCluster (bare sheep services, no controller) change the epoch by
// hand, to put a node ahead of the client or the membership below
// min-copies.

// targets is the ids of the targets of object idx of vdi in epoch e.
func targets(t *testing.T, e cluster.Epoch, vdi cluster.VDI, idx uint32) []string {
	t.Helper()
	var members []placement.Node
	for _, m := range e.Members {
		members = append(members, placement.Node{ID: placement.NodeID(m.ID), Zone: m.Zone, Capacity: m.Capacity})
	}
	ring, err := placement.New(members)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, id := range ring.Replicas(uint64(newOID(vdi.ID, idx)), vdi.Copies, nil) {
		ids = append(ids, string(id))
	}
	return ids
}

// objectOn is the first object of vdi that node id is a target of in the
// current epoch.
func objectOn(t *testing.T, c *local.Cluster, vdi cluster.VDI, id string) uint32 {
	t.Helper()
	e, err := c.Client().Epoch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for idx := range uint32(vdi.Size / vdi.ObjectSize) {
		for _, tid := range targets(t, e, vdi, idx) {
			if tid == id {
				return idx
			}
		}
	}
	t.Fatalf("no object of vdi %s is placed on %s", vdi.Name, id)
	return 0
}

// nodeIndex is the local cluster index of node id ("node-<i>").
func nodeIndex(t *testing.T, c *local.Cluster, id string) int {
	t.Helper()
	for i := range c.Nodes() {
		if c.Node(i) != nil && "node-"+itoa(i) == id {
			return i
		}
	}
	t.Fatalf("no running node %s", id)
	return -1
}

func itoa(i int) string { return string(rune('0' + i)) }

// heldByTargets checks that every target of object idx in epoch e holds p
// at off (in the object), read straight from its store: an acknowledged
// write is on every replica of the epoch it was acknowledged in.
func heldByTargets(t *testing.T, c *local.Cluster, e cluster.Epoch, vdi cluster.VDI, idx uint32, off int64, p []byte) {
	t.Helper()
	ids := targets(t, e, vdi, idx)
	if len(ids) == 0 {
		t.Fatal("no targets")
	}
	got := make([]byte, len(p))
	for _, id := range ids {
		if err := c.Node(nodeIndex(t, c, id)).Store().ReadAt(newOID(vdi.ID, idx), got, off); err != nil {
			t.Fatalf("target %s of object %d in epoch %d: %v", id, idx, e.Number, err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("target %s of object %d in epoch %d does not hold the acknowledged write", id, idx, e.Number)
		}
	}
}

// waitEpoch waits until the backend places requests on epoch n or later.
func waitEpoch(t *testing.T, b *sheepbackend.Backend, n uint64) {
	t.Helper()
	waitFor(t, func() bool { return b.Epoch() >= n })
}

// A write in flight while one of its targets dies keeps resending; once
// the nodes' membership controller removes the dead node (after its lease
// and a short grace: a new epoch), the write is re-planned on the new
// targets and completes, and every one of them holds it.
func TestWriteInFlightCompletesAfterEpochChange(t *testing.T) {
	c, err := local.Start(context.Background(), local.Options{
		Dir: t.TempDir(), Nodes: 4, Copies: 3, NodeCapacity: 1 << 40, RegisterTTL: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A short grace for the controllers the nodes run (re-format before
	// any VDI exists; the controller reads the grace at every decision).
	if _, err := c.Client().Format(context.Background(), cluster.FormatOptions{Copies: 3, MemberGrace: time.Second, Force: true}); err != nil {
		t.Fatal(err)
	}
	vdi := createVDI(t, c, "disk", 64<<20)
	b := openOpts(t, c, sheepbackend.Options{VDI: "disk", CallTimeout: 500 * time.Millisecond, IOTimeout: 30 * time.Second})
	before := b.Epoch()
	idx := objectOn(t, c, vdi, "node-1")
	if err := c.KillNode(1); err != nil {
		t.Fatal(err)
	}
	p := bytes.Repeat([]byte("epoch change "), 6000)[:64<<10]
	const inObj = 8192
	r, w := asyncReq(backend.OpWrite, int64(idx)*vdi.ObjectSize+inObj, p)
	start := time.Now()
	b.Submit(r)
	select {
	case <-w:
	case <-time.After(25 * time.Second):
		t.Fatal("write not done 25s after its target died")
	}
	if r.Result != int32(len(p)) {
		t.Fatalf("write result %d, want %d", r.Result, len(p))
	}
	e, err := c.Client().Epoch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if e.Has("node-1") || e.Number == before {
		t.Fatalf("write done in epoch %d (members %v) without the dead node removed", e.Number, e.Members)
	}
	t.Logf("write done %v after its target died, in epoch %d (was %d)", time.Since(start).Round(time.Millisecond), e.Number, before)
	heldByTargets(t, c, e, vdi, idx, inObj, p)
	q := make([]byte, len(p))
	if _, err := b.ReadAt(q, int64(idx)*vdi.ObjectSize+inObj); err != nil || !bytes.Equal(p, q) {
		t.Fatalf("read back after the epoch change: %v, equal %v", err, bytes.Equal(p, q))
	}
}

// Without an epoch change, a write whose target is dead fails with EIO at
// the io-timeout (never hangs), naming the node.
func TestWriteFailsAtIOTimeout(t *testing.T) {
	c := startCluster(t, 3, 3)
	createVDI(t, c, "disk", 64<<20)
	const io = 1500 * time.Millisecond
	b := openOpts(t, c, sheepbackend.Options{VDI: "disk", CallTimeout: 300 * time.Millisecond, IOTimeout: io})
	if err := c.KillNode(2); err != nil {
		t.Fatal(err)
	}
	r, w := asyncReq(backend.OpWrite, 0, make([]byte, 4096))
	start := time.Now()
	b.Submit(r)
	select {
	case <-w:
	case <-time.After(io + 2*time.Second):
		t.Fatal("write to a dead target hangs past its io-timeout")
	}
	if took := time.Since(start); took < io-50*time.Millisecond {
		t.Fatalf("write failed after %v, before its %v io-timeout", took, io)
	}
	if r.Result != -5 {
		t.Fatalf("write result %d, want -EIO", r.Result)
	}
	_, err := b.WriteAt(make([]byte, 4096), 0)
	if err == nil || !strings.Contains(err.Error(), "node node-2") || !strings.Contains(err.Error(), "io-timeout") {
		t.Fatalf("write error does not name the dead node and the io-timeout: %v", err)
	}
	t.Log(err)
}

// A node that hangs (its peers see a SIGSTOP: nothing read, nothing
// answered) for longer than the call timeout but shorter than the
// io-timeout: the writes wait, and succeed once it resumes. Once with the
// connection kept through the hang (the rpc stall timeout is longer), once
// with it closed as stalled and dialed again.
func TestPausedNodeWritesSucceedOnResume(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stall time.Duration
	}{{"connection kept", 0}, {"connection redialed", 500 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) { testPausedNode(t, tc.stall) })
	}
}

func testPausedNode(t *testing.T, stall time.Duration) {
	c := startCluster(t, 3, 3)
	vdi := createVDI(t, c, "disk", 64<<20)
	// The connection's fate is read from the rpc client's log: the
	// proxy's count of connections would include the other nodes', which
	// reach node-1 at its registered (proxy) address too.
	var lost lineCounter
	lost.match = "rpc: connection lost"
	b := openOpts(t, c, sheepbackend.Options{VDI: "disk", CallTimeout: 300 * time.Millisecond, IOTimeout: 15 * time.Second,
		RPC: rpc.ClientOptions{StallTimeout: stall}, Logger: zerolog.New(&lost)}) // node clients log here
	proxy := newProxy(t, c.NodeAddr(1))
	ghost, err := c.Client().Register(context.Background(), cluster.Node{ID: "node-1", Addr: proxy.addr()}, cluster.RegisterOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Close()
	waitNode(t, b, "node-1", proxy.addr())
	proxy.fail("paused")
	const n = 8
	bufs := make([][]byte, n)
	reqs := make([]*backend.Request, n)
	done := make(waiter, n)
	for i := range n {
		bufs[i] = bytes.Repeat([]byte{byte(i + 1)}, 32<<10)
		reqs[i] = &backend.Request{Op: backend.OpWrite, Offset: int64(i)*vdi.ObjectSize + 4096, Length: len(bufs[i]), Buf: bufs[i]}
		reqs[i].Bind(done, uint16(i))
		b.Submit(reqs[i])
	}
	select {
	case r := <-done:
		t.Fatalf("write %d done (result %d) while a replica is paused", r.Tag, r.Result)
	case <-time.After(2 * time.Second): // several call timeouts
	}
	proxy.fail("resumed")
	for range n {
		select {
		case r := <-done:
			if r.Result != int32(len(bufs[r.Tag])) {
				t.Fatalf("write %d after the node resumed: result %d", r.Tag, r.Result)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("writes not done 10s after the node resumed")
		}
	}
	e, err := c.Client().Epoch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		heldByTargets(t, c, e, vdi, uint32(i), 4096, bufs[i])
	}
	if kept, n := stall == 0, lost.count.Load(); kept && n != 0 || !kept && n < 1 {
		t.Fatalf("the connection to the paused node was lost %d times (stall timeout %v)", n, stall)
	}
}

// lineCounter is a log writer that counts the lines holding match.
type lineCounter struct {
	match string
	count atomic.Int32
}

func (w *lineCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(w.match)) {
		w.count.Add(1)
	}
	return len(p), nil
}

// setEpoch makes every service check requests against epoch n, as nodes
// that applied it do.
func setEpoch(nodes map[string]*recordingNode, n uint64) {
	for _, nd := range nodes {
		nd.svc.SetEpoch(n)
	}
}

// A node that moved to a newer epoch than the client's answers WrongEpoch
// with it; the client waits for that epoch and re-plans the write on it.
func TestWrongEpochFromNodeAheadReplans(t *testing.T) {
	cl, nodes := serviceCluster(t, 4, cluster.FormatOptions{Copies: 3})
	ctx := context.Background()
	vdi, err := cl.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "d", Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e, err := cl.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	setEpoch(nodes, e.Number)
	b, err := sheepbackend.Open(ctx, sheepbackend.Options{Cluster: cl, VDI: "d", CallTimeout: 500 * time.Millisecond, IOTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// An object on "a" and "d": "a" moves ahead first, "d" is removed.
	var idx uint32
	for ; ; idx++ {
		ts := strings.Join(targets(t, e, vdi, idx), ",")
		if strings.Contains(ts, "a") && strings.Contains(ts, "d") {
			break
		}
	}
	nodes["a"].svc.SetEpoch(e.Number + 1) // "a" saw the next epoch first
	p := bytes.Repeat([]byte("ahead"), 2000)[:8192]
	r, w := asyncReq(backend.OpWrite, int64(idx)*vdi.ObjectSize, p)
	b.Submit(r)
	select {
	case <-w:
		t.Fatalf("write done (result %d) before the epoch node a is at exists", r.Result)
	case <-time.After(time.Second):
	}
	for _, nd := range nodes {
		nd.take()
	}
	next, err := cl.RemoveMember(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if next.Number != e.Number+1 {
		t.Fatalf("epoch %d after the removal, want %d", next.Number, e.Number+1)
	}
	setEpoch(nodes, next.Number)
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		t.Fatal("write not done 10s after the epoch change")
	}
	if r.Result != int32(len(p)) {
		t.Fatalf("write result %d, want %d", r.Result, len(p))
	}
	// Re-planned: the write went, with the new epoch, to each new target
	// (those that had acknowledged it in the old epoch too), not to "d".
	oid := newOID(vdi.ID, idx)
	got := make([]byte, len(p))
	for _, id := range targets(t, next, vdi, idx) {
		sent := false
		for _, req := range nodes[id].take() {
			if req.Op == proto.OpWrite && req.Object == oid {
				if req.Epoch != next.Number {
					t.Fatalf("node %s got the write with epoch %d after the change to %d", id, req.Epoch, next.Number)
				}
				sent = true
			}
		}
		if !sent {
			t.Fatalf("target %s of epoch %d never got the write in that epoch", id, next.Number)
		}
		if err := nodes[id].st.ReadAt(oid, got, 0); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("target %s does not hold the write: %v", id, err)
		}
	}
	for _, req := range nodes["d"].take() {
		if req.Object == oid {
			t.Fatalf("the removed node d got %v after the epoch change", req.Op)
		}
	}
}

// With a replica gone the cluster writes to the rest, as long as they are
// at least min-copies; fewer fails a write at once with EIO and says so.
func TestBelowMinCopiesFailsAtOnce(t *testing.T) {
	cl, nodes := serviceCluster(t, 3, cluster.FormatOptions{Copies: 3}) // min-copies: 2 of 3
	ctx := context.Background()
	if _, err := cl.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "d", Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	b, err := sheepbackend.Open(ctx, sheepbackend.Options{Cluster: cl, VDI: "d", CallTimeout: time.Second, IOTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := bytes.Repeat([]byte{9}, 4096)
	members := 3
	for _, step := range []struct {
		remove string
		ok     bool
	}{{"", true}, {"b", true}, {"c", false}} {
		if step.remove != "" {
			e, err := cl.RemoveMember(ctx, step.remove)
			if err != nil {
				t.Fatal(err)
			}
			setEpoch(nodes, e.Number)
			waitEpoch(t, b, e.Number)
			members--
		}
		start := time.Now()
		_, err := b.WriteAt(p, 4<<20)
		took := time.Since(start)
		switch {
		case step.ok && err != nil:
			t.Fatalf("write with %d of 3 replicas (min-copies 2): %v", members, err)
		case step.ok:
			continue
		case err == nil:
			t.Fatal("write with 1 of 3 replicas (min-copies 2) succeeded")
		case took > 200*time.Millisecond:
			t.Fatalf("write below min-copies failed after %v, not at once", took)
		case !strings.Contains(err.Error(), "only 1 of 3 replicas") || !strings.Contains(err.Error(), "below min-copies 2"):
			t.Fatalf("write below min-copies: %v", err)
		}
		t.Log(err)
	}
	r, w := asyncReq(backend.OpWrite, 0, p)
	b.Submit(r)
	if <-w; r.Result != -5 {
		t.Fatalf("async write below min-copies: result %d, want -EIO", r.Result)
	}
	q := make([]byte, len(p))
	if _, err := b.ReadAt(q, 4<<20); err != nil || !bytes.Equal(p, q) {
		t.Fatalf("read with 1 member: %v, equal %v", err, bytes.Equal(p, q))
	}
}

// Reads fail over, and with every replica down retry in rounds until one
// is back (within the io-timeout).
func TestReadRetriesUntilNodesReturn(t *testing.T) {
	c := startCluster(t, 3, 3)
	createVDI(t, c, "disk", 64<<20)
	b := openOpts(t, c, sheepbackend.Options{VDI: "disk", CallTimeout: 500 * time.Millisecond, IOTimeout: 20 * time.Second})
	p := bytes.Repeat([]byte("read retry "), 1000)[:8192]
	if _, err := b.WriteAt(p, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes() {
		if err := c.StopNode(i); err != nil {
			t.Fatal(err)
		}
	}
	q := make([]byte, len(p))
	r, w := asyncReq(backend.OpRead, 1<<20, q)
	b.Submit(r)
	select {
	case <-w:
		t.Fatalf("read done (result %d) with every node down", r.Result)
	case <-time.After(time.Second):
	}
	for i := range c.Nodes() {
		if err := c.StartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-w:
	case <-time.After(15 * time.Second):
		t.Fatal("read not done 15s after the nodes came back")
	}
	if r.Result != int32(len(p)) || !bytes.Equal(p, q) {
		t.Fatalf("read after the nodes came back: result %d, equal %v", r.Result, bytes.Equal(p, q))
	}
}
