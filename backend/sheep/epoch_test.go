package sheep_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/backend"
	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/local"
	"github.com/sheepblk/sheepblk/placement"
)

// These tests drive epoch changes by hand (cluster.Client.RemoveMember is
// what the membership controller does once a dead node's grace is over),
// so they test the client's side alone. The nodes only have to answer
// with their epoch, which they follow from etcd.

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
// the dead node leaves the membership (a new epoch), it is re-planned on
// the new targets and completes, and every one of them holds it.
func TestWriteInFlightCompletesAfterEpochChange(t *testing.T) {
	c := startCluster(t, 4, 3)
	vdi := createVDI(t, c, "disk", 64<<20)
	b := openOpts(t, c, sheepbackend.Options{VDI: "disk", CallTimeout: 500 * time.Millisecond, IOTimeout: 20 * time.Second})
	idx := objectOn(t, c, vdi, "node-1")
	if err := c.KillNode(1); err != nil {
		t.Fatal(err)
	}
	p := bytes.Repeat([]byte("epoch change "), 6000)[:64<<10]
	const inObj = 8192
	r, w := asyncReq(backend.OpWrite, int64(idx)*vdi.ObjectSize+inObj, p)
	b.Submit(r)
	select {
	case <-w:
		t.Fatalf("write acknowledged (result %d) with a target dead and no epoch change", r.Result)
	case <-time.After(1500 * time.Millisecond): // several call timeouts: resending
	}
	e, err := c.Client().RemoveMember(context.Background(), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		t.Fatal("write not done 10s after the epoch change")
	}
	if r.Result != int32(len(p)) {
		t.Fatalf("write result %d after the epoch change, want %d", r.Result, len(p))
	}
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
// io-timeout: the writes wait, and succeed once it resumes.
func TestPausedNodeWritesSucceedOnResume(t *testing.T) {
	c := startCluster(t, 3, 3)
	vdi := createVDI(t, c, "disk", 64<<20)
	b := openOpts(t, c, sheepbackend.Options{VDI: "disk", CallTimeout: 300 * time.Millisecond, IOTimeout: 15 * time.Second})
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
}

// A node that moved to a newer epoch than the client's answers WrongEpoch
// with it; the client waits for that epoch and re-plans the write on it.
func TestWrongEpochFromNodeAheadReplans(t *testing.T) {
	c := startCluster(t, 4, 3)
	vdi := createVDI(t, c, "disk", 64<<20)
	b := openOpts(t, c, sheepbackend.Options{VDI: "disk", CallTimeout: 500 * time.Millisecond, IOTimeout: 20 * time.Second})
	e, err := c.Client().Epoch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	idx := objectOn(t, c, vdi, "node-0")
	c.Node(0).SetEpoch(e.Number + 1) // node-0 saw the next epoch first
	p := bytes.Repeat([]byte("ahead"), 2000)[:8192]
	r, w := asyncReq(backend.OpWrite, int64(idx)*vdi.ObjectSize, p)
	b.Submit(r)
	select {
	case <-w:
		t.Fatalf("write done (result %d) before the epoch node-0 is at exists", r.Result)
	case <-time.After(time.Second):
	}
	next, err := c.Client().RemoveMember(context.Background(), "node-3")
	if err != nil {
		t.Fatal(err)
	}
	if next.Number != e.Number+1 {
		t.Fatalf("epoch %d after the removal, want %d", next.Number, e.Number+1)
	}
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		t.Fatal("write not done 10s after the epoch change")
	}
	if r.Result != int32(len(p)) {
		t.Fatalf("write result %d, want %d", r.Result, len(p))
	}
	heldByTargets(t, c, next, vdi, idx, 0, p)
}

// Fewer targets than min-copies: a write fails at once with EIO and says
// so; reads still work.
func TestBelowMinCopiesFailsAtOnce(t *testing.T) {
	c := startCluster(t, 3, 3)
	createVDI(t, c, "disk", 64<<20)
	b := openOpts(t, c, sheepbackend.Options{VDI: "disk", CallTimeout: time.Second, IOTimeout: 20 * time.Second})
	p := bytes.Repeat([]byte{9}, 4096)
	if _, err := b.WriteAt(p, 0); err != nil {
		t.Fatal(err)
	}
	var last cluster.Epoch
	for _, id := range []string{"node-1", "node-2"} {
		e, err := c.Client().RemoveMember(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		last = e
	}
	waitEpoch(t, b, last.Number)
	start := time.Now()
	_, err := b.WriteAt(p, 4<<20)
	if err == nil {
		t.Fatal("write with 1 of 3 replicas succeeded")
	}
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Fatalf("write below min-copies failed after %v, not at once", took)
	}
	if !strings.Contains(err.Error(), "only 1 of 3 replicas") || !strings.Contains(err.Error(), "below min-copies") {
		t.Fatalf("write below min-copies: %v", err)
	}
	r, w := asyncReq(backend.OpWrite, 0, p)
	b.Submit(r)
	if <-w; r.Result != -5 {
		t.Fatalf("async write below min-copies: result %d, want -EIO", r.Result)
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
