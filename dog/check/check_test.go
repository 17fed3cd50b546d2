package check_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/local"
	"github.com/sheepblk/sheepblk/dog/check"
	"github.com/sheepblk/sheepblk/dog/nodeclient"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

const objSize = 64 << 10

// startCluster runs 3 nodes (copies 3) and waits until they are members
// and the epoch is recovered.
func startCluster(t *testing.T) *local.Cluster {
	t.Helper()
	ctx := context.Background()
	lc, err := local.Start(ctx, local.Options{Dir: t.TempDir(), Nodes: 3, Copies: 3, ObjectSize: objSize, RegisterTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	waitRecovered(t, lc.Client(), 3)
	return lc
}

// waitRecovered waits until the epoch has n members and is recovery-complete.
func waitRecovered(t *testing.T, cl *cluster.Client, n int) cluster.Epoch {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		e, err1 := cl.Epoch(ctx)
		last, err2 := cl.LastComplete(ctx)
		if err1 == nil && err2 == nil && len(e.Members) == n && last >= e.Number {
			return e
		}
		if time.Now().After(deadline) {
			st, _ := cl.RecoveryStatuses(ctx)
			t.Fatalf("epoch %+v not recovered (complete through %d, statuses %+v)", e, last, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fill writes random data to every object of vdi through the client.
func fill(t *testing.T, cl *cluster.Client, vdi string, size int64) []byte {
	t.Helper()
	b, err := sheepbackend.Open(context.Background(), sheepbackend.Options{Cluster: cl, VDI: vdi})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := make([]byte, size)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	if _, err := b.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	return data
}

func node(t *testing.T, lc *local.Cluster, id string) *nodeclient.Client {
	t.Helper()
	nodes, err := lc.Client().Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == id {
			nc := nodeclient.Dial(n.ID, n.Addr, rpc.ClientOptions{}, 5*time.Second)
			t.Cleanup(func() { nc.Close() })
			return nc
		}
	}
	t.Fatalf("node %s not registered", id)
	return nil
}

func TestCheckAndRepair(t *testing.T) {
	lc := startCluster(t)
	cl := lc.Client()
	ctx := context.Background()
	v3, err := cl.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "three", Size: 4 * objSize})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := cl.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "two", Size: 2 * objSize, Copies: 2})
	if err != nil {
		t.Fatal(err)
	}
	data3 := fill(t, cl, "three", v3.Size)
	fill(t, cl, "two", v2.Size)
	e, _ := cl.Epoch(ctx)

	res, err := check.Run(ctx, check.Options{Cluster: cl})
	if err != nil || len(res.Problems) != 0 || res.Objects != 6 || res.VDIs != 2 || res.Epoch != e.Number {
		t.Fatalf("clean cluster: %+v, %v", res, err)
	}

	ring, err := e.Ring()
	if err != nil {
		t.Fatal(err)
	}
	// Object 1 of "three": one replica corrupted, one removed (absent:
	// reads as zeros). Majority: none — 3 different contents. So make
	// it two problems on different objects instead.
	o1 := proto.NewObjectID(v3.ID, 1)
	t1 := ring.Replicas(uint64(o1), 3, nil)
	garbage := bytes.Repeat([]byte{0xEE}, 4096)
	if err := node(t, lc, string(t1[0])).Write(ctx, e.Number, o1, 8192, garbage); err != nil {
		t.Fatal(err)
	}
	o2 := proto.NewObjectID(v3.ID, 2)
	t2 := ring.Replicas(uint64(o2), 3, nil)
	if err := node(t, lc, string(t2[1])).Remove(ctx, e.Number, o2); err != nil {
		t.Fatal(err)
	}
	// Object 0 of "two": its two replicas differ: a tie.
	o3 := proto.NewObjectID(v2.ID, 0)
	t3 := ring.Replicas(uint64(o3), 2, nil)
	if err := node(t, lc, string(t3[0])).Write(ctx, e.Number, o3, 0, garbage); err != nil {
		t.Fatal(err)
	}

	res, err = check.Run(ctx, check.Options{Cluster: cl})
	if err != nil || len(res.Problems) != 3 || res.Repaired != 0 {
		t.Fatalf("damaged cluster: %+v, %v", res, err)
	}
	for i, want := range []struct {
		oid  proto.ObjectID
		node string
	}{{o1, string(t1[0])}, {o2, string(t2[1]) + " (not listed)"}, {o3, string(t3[0])}} {
		p := find(res, want.oid)
		if p == nil || p.Kind != "differ" || !strings.Contains(p.Message, want.node) {
			t.Fatalf("problem %d: %+v in %+v", i, p, res.Problems)
		}
	}

	// Repair the check-only VDI "two": the tie is refused.
	res, err = check.Run(ctx, check.Options{Cluster: cl, VDI: "two", Repair: true})
	if err != nil || len(res.Problems) != 1 || res.Repaired != 0 || !strings.Contains(res.Problems[0].RepairError, "no majority") {
		t.Fatalf("repair a tie: %+v, %v", res, err)
	}
	res, err = check.Run(ctx, check.Options{Cluster: cl, Repair: true})
	if err != nil || len(res.Problems) != 3 || res.Repaired != 2 || res.Unrepaired() != 1 {
		t.Fatalf("repair: %+v, %v", res, err)
	}
	res, err = check.Run(ctx, check.Options{Cluster: cl, VDI: "three"})
	if err != nil || len(res.Problems) != 0 || res.Objects != 4 {
		t.Fatalf("after repair: %+v, %v", res, err)
	}
	// Every replica holds the written data again.
	for idx := range 4 {
		oid := proto.NewObjectID(v3.ID, uint32(idx))
		for _, n := range ring.Replicas(uint64(oid), 3, nil) {
			got := make([]byte, objSize)
			if err := node(t, lc, string(n)).Read(ctx, e.Number, oid, 0, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data3[idx*objSize:(idx+1)*objSize]) {
				t.Fatalf("object %d on %s differs from what was written", idx, n)
			}
		}
	}
}

// TestCheckUnreachableReplica: a dead target (still a member, within the
// grace) makes its objects' replicas unreadable: reported, not repairable.
func TestCheckUnreachableReplica(t *testing.T) {
	lc := startCluster(t)
	cl := lc.Client()
	ctx := context.Background()
	v, err := cl.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "v", Size: 4 * objSize})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, cl, "v", v.Size)
	if err := lc.KillNode(1); err != nil {
		t.Fatal(err)
	}
	res, err := check.Run(ctx, check.Options{Cluster: cl, Repair: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var nodeProblems, unreadable int
	for _, p := range res.Problems {
		switch {
		case p.Kind == "node" && strings.Contains(p.Message, "node-1"):
			nodeProblems++
		case p.Kind == "unreadable" && strings.Contains(p.Message, "2 of 3 replicas readable") && strings.Contains(p.Message, "node-1") &&
			strings.Contains(p.RepairError, "cannot be written"):
			unreadable++
		default:
			t.Errorf("unexpected problem %+v", p)
		}
	}
	if nodeProblems != 1 || unreadable != 4 || res.Repaired != 0 || res.Unrepaired() != 5 {
		t.Fatalf("with node-1 dead: %+v", res)
	}
}

func find(res check.Result, oid proto.ObjectID) *check.Problem {
	for i := range res.Problems {
		if res.Problems[i].Object == uint64(oid) {
			return &res.Problems[i]
		}
	}
	return nil
}

func TestCheckRefusedDuringRecovery(t *testing.T) {
	lc := startCluster(t)
	cl := lc.Client()
	ctx := context.Background()
	// A fourth member that never reports: the epoch is not recovered.
	if _, err := cl.Join(ctx, cluster.Member{ID: "ghost"}); err != nil {
		t.Fatal(err)
	}
	_, err := check.Run(ctx, check.Options{Cluster: cl})
	if !errors.Is(err, cluster.ErrRecovering) || !strings.Contains(err.Error(), "dog cluster info") {
		t.Fatalf("check during recovery: %v", err)
	}
}
