package sheep_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/local"
	"github.com/sheepblk/sheepblk/placement"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// checkPlacement asserts every object of vdi that exists is on exactly
// the nodes the epoch's members place it on, with identical bytes.
func checkPlacement(t *testing.T, c *local.Cluster, vdi cluster.VDI, e cluster.Epoch) int {
	t.Helper()
	ring, err := placement.New(membersOf(e.Members))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]int{}
	for i := range c.Nodes() {
		if c.Node(i) != nil {
			byID[c.Node(i).ID()] = i
		}
	}
	objects := map[proto.ObjectID]bool{}
	for i := range c.Nodes() {
		if n := c.Node(i); n != nil {
			n.Store().Range(proto.NewObjectID(vdi.ID, 0), proto.NewObjectID(vdi.ID+1, 0), func(oid proto.ObjectID) bool {
				objects[oid] = true
				return true
			})
		}
	}
	buf := make([]byte, vdi.ObjectSize)
	for oid := range objects {
		want := ring.Replicas(uint64(oid), vdi.Copies, nil)
		var ref []byte
		for _, id := range want {
			i, ok := byID[string(id)]
			if !ok {
				t.Fatalf("object %v placed on %s, which is not running", oid, id)
			}
			st := c.Node(i).Store()
			if !st.Exists(oid) {
				t.Fatalf("object %v missing on its replica %s", oid, id)
			}
			if err := st.ReadAt(oid, buf, 0); err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				ref = append([]byte(nil), buf...)
			} else if !bytes.Equal(ref, buf) {
				t.Fatalf("object %v differs between replicas", oid)
			}
		}
		holders := 0
		for i := range c.Nodes() {
			if n := c.Node(i); n != nil && n.Store().Exists(oid) {
				holders++
			}
		}
		if holders != len(want) {
			t.Fatalf("object %v on %d nodes, placement says %v", oid, holders, want)
		}
	}
	return len(objects)
}

func membersOf(ms []cluster.Member) []placement.Node {
	nodes := make([]placement.Node, len(ms))
	for i, m := range ms {
		nodes[i] = placement.Node{ID: placement.NodeID(m.ID), Zone: m.Zone, Capacity: m.Capacity}
	}
	return nodes
}

func TestRecoverAfterJoinAndRemove(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, 3, 2)
	vdi := createVDI(t, c, "disk", 128<<20)
	cl := c.Client()
	b := openWith(t, c, "disk", bulkTimeout)
	exts := writeExtents(t, b, 48, 5)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	b.Close()

	// A fourth node: a spare until joined; joined, I/O still follows the
	// old placement (the data is there) until a recovery.
	i, err := c.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Join(ctx, cluster.Member{ID: c.Node(i).ID(), Capacity: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	b = openWith(t, c, "disk", bulkTimeout)
	verify(t, b, exts)
	if _, err := sheepbackend.Recover(ctx, sheepbackend.RecoverOptions{Cluster: cl}); !errors.Is(err, cluster.ErrVDIInUse) {
		t.Fatalf("recover with the vdi open: %v, want ErrVDIInUse", err)
	}
	b.Close()
	res, err := sheepbackend.Recover(ctx, sheepbackend.RecoverOptions{Cluster: cl})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after join: %+v", res)
	if res.Copied == 0 || res.Removed != res.Copied || res.ToEpoch != res.FromEpoch+1 {
		t.Fatalf("recover after join: %+v", res)
	}
	e, _ := cl.Epoch(ctx)
	if e.Recovering() || len(e.Members) != 4 {
		t.Fatalf("epoch after recover: %+v", e)
	}
	if n := c.Node(i).Store().Stats().Objects; n == 0 {
		t.Fatal("the joined node got no objects")
	}
	checkPlacement(t, c, vdi, e)
	b = openWith(t, c, "disk", bulkTimeout)
	verify(t, b, exts)
	b.Close()

	// A node dies for good and is removed: its objects are copied from the
	// surviving replicas, and every object is writable again.
	if err := c.KillNode(0); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.RemoveMember(ctx, "node-0"); err != nil {
		t.Fatal(err)
	}
	res, err = sheepbackend.Recover(ctx, sheepbackend.RecoverOptions{Cluster: cl})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after removal: %+v", res)
	e, _ = cl.Epoch(ctx)
	if e.Recovering() || e.Has("node-0") || res.Copied == 0 {
		t.Fatalf("after removal: %+v, epoch %+v", res, e)
	}
	checkPlacement(t, c, vdi, e)
	b = openWith(t, c, "disk", bulkTimeout)
	verify(t, b, exts)
	for off := int64(0); off < vdi.Size; off += vdi.ObjectSize {
		if _, err := b.WriteAt([]byte("writable again"), off); err != nil {
			t.Fatalf("write at %d after the recovery: %v", off, err)
		}
	}
	// Nothing to do now.
	b.Close()
	if res, err := sheepbackend.Recover(ctx, sheepbackend.RecoverOptions{Cluster: cl}); err != nil || res.FromEpoch != res.ToEpoch {
		t.Fatalf("recover with nothing to do: %+v, %v", res, err)
	}
}
