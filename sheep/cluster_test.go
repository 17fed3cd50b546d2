package sheep

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
	"github.com/sheepblk/sheepblk/rpc"
)

func connectCluster(t testing.TB, url, prefix string) *cluster.Client {
	t.Helper()
	cl, err := cluster.Connect(cluster.Options{Endpoints: []string{url}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNodeInCluster(t *testing.T) {
	url := clustertest.Embedded(t)
	cl := connectCluster(t, url, "/node-test/")
	ctx := context.Background()
	if _, err := NewNode(Options{Dir: t.TempDir(), Cluster: cl}); err == nil {
		t.Fatal("a node started on an unformatted cluster")
	}
	if _, err := cl.Format(ctx, cluster.FormatOptions{Copies: 2, ObjectSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}

	// A previous run of node "a" that crashed: its entry is live until its
	// lease expires. The new run must wait it out, not fail.
	stale := connectCluster(t, url, "/node-test/")
	if _, err := stale.Register(ctx, cluster.Node{ID: "a", Addr: "127.0.0.1:9"}, cluster.RegisterOptions{TTL: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	stale.Close() // the lease is not revoked: it expires

	a := startNode(t, Options{ID: "a", Zone: "z1", Cluster: cl, RegisterTTL: 2 * time.Second})
	if got := a.Store().ObjectSize(); got != 1<<20 {
		t.Fatalf("node object size %d, want the cluster's", got)
	}
	listed := func(id, addr string) bool {
		nodes, err := cl.Nodes(ctx)
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.ID == id && n.Addr == addr && n.State == cluster.NodeUp {
				return true
			}
		}
		return false
	}
	waitFor(t, "node a listed at its address", func() bool { return listed("a", a.addr) })
	waitFor(t, "node a to follow the epoch", func() bool { return a.Service().Epoch() == 1 })

	b := startNode(t, Options{ID: "b", Cluster: cl, RegisterTTL: 2 * time.Second})
	waitFor(t, "node b listed", func() bool { return listed("b", b.addr) })
	waitFor(t, "node a to see epoch 2", func() bool { return a.Service().Epoch() == 2 })

	a.shutdown(t)
	nodes, err := cl.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].ID != "b" {
		t.Fatalf("after a's shutdown the nodes are %+v, %v; want only b", nodes, err)
	}
}

func TestShutdownWithInFlightRequestsEndsInTime(t *testing.T) {
	n := startNode(t, Options{})
	c := newClient(t, n.addr)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		p := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := c.write(1, p, 0, false); err != nil {
				return // the node is gone: expected
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	if err := <-n.served; !errors.Is(err, rpc.ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if st := n.Store().Stats(); st.Dirty != 0 {
		t.Fatalf("%d objects dirty after shutdown", st.Dirty)
	}
}
