package sheep_test

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/backend"
	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
	"github.com/sheepblk/sheepblk/placement"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep"
	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

// recordingNode is a real sheep service that also records the requests it
// gets, to check what the client sends where.
type recordingNode struct {
	id  string
	svc *sheep.Service
	st  *store.Store
	mu  sync.Mutex
	log []proto.Request
	// refuse, when set, picks requests answered NotReady (retryable)
	// instead of served.
	refuse func(proto.Request) bool
}

func (n *recordingNode) ServeRPC(ctx context.Context, req *rpc.Request, resp *rpc.Response) error {
	var r proto.Request
	if err := r.UnmarshalBinary(req.Header); err == nil && r.Op != proto.OpNodeInfo {
		n.mu.Lock()
		n.log = append(n.log, r)
		refused := n.refuse != nil && n.refuse(r)
		n.mu.Unlock()
		if refused {
			resp.Body = proto.AppendErrorMessage(nil, "refused by the test")
			resp.Header, _ = (&proto.Response{Status: proto.StatusNotReady, Length: uint32(len(resp.Body))}).AppendBinary(nil)
			return nil
		}
	}
	return n.svc.ServeRPC(ctx, req, resp)
}

func (n *recordingNode) take() []proto.Request {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.log
	n.log = nil
	return l
}

// recordingCluster: etcd, 5 recording nodes, copies 2.
func recordingCluster(t *testing.T) (*cluster.Client, map[string]*recordingNode) {
	return serviceCluster(t, 5, cluster.FormatOptions{Copies: 2})
}

// serviceCluster: etcd formatted with format, and n bare sheep services
// ("a", "b", ...) registered and joined by hand (an operator's `dog node
// join`). No membership controller runs and the services check epochs
// only once given one (SetEpoch), so a test changes epochs itself.
func serviceCluster(t *testing.T, n int, format cluster.FormatOptions) (*cluster.Client, map[string]*recordingNode) {
	url := clustertest.Embedded(t)
	cl := clustertest.Client(t, url)
	ctx := context.Background()
	if _, err := cl.Format(ctx, format); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*recordingNode{}
	for i := range n {
		id := string(rune('a' + i))
		st, err := store.Open(filepath.Join(t.TempDir(), id), store.Options{ObjectSize: cluster.DefaultObjectSize})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		svc := sheep.NewService(st, zerolog.Nop())
		svc.SetIdentity(sheep.Identity{ID: id, Capacity: 1 << 40})
		n := &recordingNode{id: id, svc: svc, st: st}
		srv := rpc.NewServer(n, rpc.ServerOptions{MaxBody: 8<<20 + 64<<10})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		reg, err := cl.Register(ctx, cluster.Node{ID: id, Addr: l.Addr().String(), Capacity: 1 << 40}, cluster.RegisterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		if _, err := cl.Join(ctx, cluster.Member{ID: id, Capacity: 1 << 40}); err != nil {
			t.Fatal(err)
		}
		nodes[id] = n
	}
	return cl, nodes
}

// recordingVDI: a recordingCluster with a 64 MiB VDI "d" open on it.
func recordingVDI(t *testing.T) (*cluster.Client, map[string]*recordingNode, cluster.VDI, *sheepbackend.Backend) {
	cl, nodes := recordingCluster(t)
	ctx := context.Background()
	vdi, err := cl.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "d", Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sheepbackend.Open(ctx, sheepbackend.Options{Cluster: cl, VDI: "d"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return cl, nodes, vdi, b
}

func TestWriteFlushFUASemantics(t *testing.T) {
	cl, nodes, vdi, b := recordingVDI(t)
	ctx := context.Background()
	e, _ := cl.Epoch(ctx)
	var members []placement.Node
	for _, m := range e.Members {
		members = append(members, placement.Node{ID: placement.NodeID(m.ID), Capacity: m.Capacity})
	}
	ring, _ := placement.New(members)
	replicasOf := func(idx uint32) map[string]bool {
		set := map[string]bool{}
		for _, id := range ring.Replicas(uint64(proto.NewObjectID(vdi.ID, idx)), 2, nil) {
			set[string(id)] = true
		}
		return set
	}
	takeAll := func() map[string][]proto.Request {
		m := map[string][]proto.Request{}
		for id, n := range nodes {
			if l := n.take(); len(l) > 0 {
				m[id] = l
			}
		}
		return m
	}

	// A write straddling objects 2 and 3 goes to both replicas of each
	// piece, split at the boundary.
	off := int64(3)*vdi.ObjectSize - 4096
	if _, err := b.WriteAt(make([]byte, 8192), off); err != nil {
		t.Fatal(err)
	}
	got := takeAll()
	for idx, want := range map[uint32]map[string]bool{2: replicasOf(2), 3: replicasOf(3)} {
		for id := range nodes {
			n := 0
			for _, r := range got[id] {
				if r.Object == proto.NewObjectID(vdi.ID, idx) {
					n++
					wantOff := uint64(0)
					if idx == 2 {
						wantOff = uint64(vdi.ObjectSize) - 4096
					}
					if r.Op != proto.OpWrite || r.Length != 4096 || r.Offset != wantOff || r.Flags&proto.FlagFUA != 0 {
						t.Fatalf("node %s got %+v for object %d", id, r, idx)
					}
				}
			}
			if (n == 1) != want[id] || n > 1 {
				t.Fatalf("object %d: node %s got %d writes, replica=%v", idx, id, n, want[id])
			}
		}
	}

	// FLUSH goes to exactly the nodes written since the last flush.
	written := map[string]bool{}
	for id := range replicasOf(2) {
		written[id] = true
	}
	for id := range replicasOf(3) {
		written[id] = true
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	got = takeAll()
	if len(got) != len(written) {
		t.Fatalf("flush went to %d nodes, %d were written", len(got), len(written))
	}
	for id, reqs := range got {
		if !written[id] || len(reqs) != 1 || reqs[0].Op != proto.OpFlush {
			t.Fatalf("node %s (written=%v) got %+v on flush", id, written[id], reqs)
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if got = takeAll(); len(got) != 0 {
		t.Fatalf("a flush with nothing written sent %+v", got)
	}

	// FUA reaches every replica write; a FUA-only write needs no flush.
	fua := &backend.Request{Op: backend.OpWrite, FUA: true, Offset: 0, Length: 4096, Buf: make([]byte, 4096)}
	w := make(waiter, 1)
	fua.Bind(w, 0)
	b.Submit(fua)
	<-w
	if fua.Result != 4096 {
		t.Fatalf("FUA write result %d", fua.Result)
	}
	got = takeAll()
	count := 0
	for id, reqs := range got {
		for _, r := range reqs {
			if r.Op != proto.OpWrite || r.Flags&proto.FlagFUA == 0 || !replicasOf(0)[id] {
				t.Fatalf("node %s got %+v for a FUA write", id, r)
			}
			count++
		}
	}
	if count != 2 {
		t.Fatalf("FUA write reached %d replicas, want 2", count)
	}

	// Reads go to one replica only.
	if _, err := b.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	got = takeAll()
	if len(got) != 1 {
		t.Fatalf("a read went to %d nodes", len(got))
	}
	for id, reqs := range got {
		if !replicasOf(0)[id] || len(reqs) != 1 || reqs[0].Op != proto.OpRead {
			t.Fatalf("read: node %s got %+v", id, reqs)
		}
	}
}

// Every update carries a write id: the same in each attempt and to each
// replica of one piece, with the attempt numbered from 1 (so a node can
// order a resend after an earlier attempt, and refuse a stale one), a new
// id for every piece and every request; reads carry none.
func TestWriteIDsAcrossResends(t *testing.T) {
	_, nodes, vdi, b := recordingVDI(t)
	obj2 := proto.NewObjectID(vdi.ID, 2)
	// Every node refuses its first write of object 2: each replica gets
	// it at least twice.
	for _, n := range nodes {
		seen := false // under n.mu, as refuse is called
		n.mu.Lock()
		n.refuse = func(r proto.Request) bool {
			if r.Op != proto.OpWrite || r.Object != obj2 || seen {
				return false
			}
			seen = true
			return true
		}
		n.mu.Unlock()
	}
	off := int64(3)*vdi.ObjectSize - 4096 // objects 2 and 3
	type attempt struct {
		node string
		id   uint64
		n    uint16
	}
	writeIDs := func() map[proto.ObjectID][]attempt {
		ids := map[proto.ObjectID][]attempt{}
		for name, n := range nodes {
			for _, r := range n.take() {
				if r.Op == proto.OpWrite {
					id, a := r.WriteID()
					ids[r.Object] = append(ids[r.Object], attempt{name, id, a})
				} else if r.Aux != 0 {
					t.Errorf("%v of %v carries aux %d", r.Op, r.Object, r.Aux)
				}
			}
		}
		return ids
	}
	// pieceID checks that every write of oid carries one nonzero id, and
	// that each node got attempts 1, 2, ... in turn.
	pieceID := func(ids map[proto.ObjectID][]attempt, oid proto.ObjectID, min int) uint64 {
		t.Helper()
		got := ids[oid]
		if len(got) < min {
			t.Fatalf("%v: %d writes recorded, want at least %d", oid, len(got), min)
		}
		next := map[string]uint16{}
		for _, a := range got {
			if a.id == 0 || a.id != got[0].id {
				t.Fatalf("%v: writes %v, want one nonzero id in every attempt", oid, got)
			}
			if next[a.node]++; a.n != next[a.node] {
				t.Fatalf("%v: node %s got attempt %d, want %d (%v)", oid, a.node, a.n, next[a.node], got)
			}
		}
		return got[0].id
	}
	if _, err := b.WriteAt(make([]byte, 8192), off); err != nil {
		t.Fatal(err)
	}
	first := writeIDs()
	id2 := pieceID(first, obj2, 4) // 2 replicas, each refused once
	id3 := pieceID(first, proto.NewObjectID(vdi.ID, 3), 2)
	if id2 == id3 {
		t.Fatalf("two pieces of one request share write id %d", id2)
	}
	if _, err := b.ReadAt(make([]byte, 8192), off); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt(make([]byte, 8192), off); err != nil {
		t.Fatal(err)
	}
	second := writeIDs()
	if again := pieceID(second, obj2, 2); again == id2 || again == id3 {
		t.Fatalf("a new write reused write id %d", again)
	}
}
