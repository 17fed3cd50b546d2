package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
)

// etcds runs f against an embedded etcd v3.7 and against Debian's etcd
// binary (3.4), which a real deployment may well run.
func etcds(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("embedded", func(t *testing.T) { f(t, clustertest.Embedded(t)) })
	t.Run("external", func(t *testing.T) { f(t, clustertest.External(t)) })
}

func TestFormat(t *testing.T) {
	etcds(t, func(t *testing.T, url string) {
		c := clustertest.Client(t, url)
		ctx := context.Background()
		if _, err := c.Settings(ctx); !errors.Is(err, cluster.ErrNotFormatted) {
			t.Fatalf("settings of fresh cluster: got %v, want ErrNotFormatted", err)
		}
		if _, err := c.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "a", Size: 1 << 20}); !errors.Is(err, cluster.ErrNotFormatted) {
			t.Fatalf("create vdi on unformatted cluster: got %v, want ErrNotFormatted", err)
		}
		if _, err := c.Format(ctx, cluster.FormatOptions{Copies: 0}); !errors.Is(err, cluster.ErrInvalid) {
			t.Fatalf("format with 0 copies: got %v, want ErrInvalid", err)
		}
		if _, err := c.Format(ctx, cluster.FormatOptions{Copies: 3, ObjectSize: 3 << 20}); !errors.Is(err, cluster.ErrInvalid) {
			t.Fatalf("format with 3 MiB objects: got %v, want ErrInvalid", err)
		}
		s, err := c.Format(ctx, cluster.FormatOptions{Copies: 3})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Settings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Copies != 3 || got.ObjectSize != cluster.DefaultObjectSize || !got.FormattedAt.Equal(s.FormattedAt) || got.FormattedAt.IsZero() {
			t.Fatalf("settings = %+v, want %+v", got, s)
		}
		if _, err := c.Format(ctx, cluster.FormatOptions{Copies: 2}); !errors.Is(err, cluster.ErrAlreadyFormatted) {
			t.Fatalf("re-format without force: got %v, want ErrAlreadyFormatted", err)
		}
		v1, err := c.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "a", Size: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Format(ctx, cluster.FormatOptions{Copies: 2, ObjectSize: 1 << 20, Force: true}); err != nil {
			t.Fatalf("re-format with force: %v", err)
		}
		if got, _ := c.Settings(ctx); got.Copies != 2 || got.ObjectSize != 1<<20 {
			t.Fatalf("settings after forced format = %+v", got)
		}
		if vdis, err := c.VDIs(ctx); err != nil || len(vdis) != 0 {
			t.Fatalf("vdis after forced format = %v, %v; want none", vdis, err)
		}
		v2, err := c.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "a", Size: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if v2.ID <= v1.ID || v2.Copies != 2 || v2.ObjectSize != 1<<20 {
			t.Fatalf("vdi after re-format = %+v (before: %+v): want a new id and the new defaults", v2, v1)
		}
	})
}

func format(t *testing.T, c *cluster.Client, copies int) {
	t.Helper()
	if _, err := c.Format(context.Background(), cluster.FormatOptions{Copies: copies}); err != nil {
		t.Fatal(err)
	}
}

func TestVDILifecycle(t *testing.T) {
	etcds(t, func(t *testing.T, url string) {
		c := clustertest.Client(t, url)
		ctx := context.Background()
		format(t, c, 3)
		for _, bad := range []cluster.CreateVDIOptions{
			{Name: "", Size: 1 << 20},
			{Name: "a/b", Size: 1 << 20},
			{Name: "a b", Size: 1 << 20},
			{Name: "x", Size: 0},
			{Name: "x", Size: 1000},
			{Name: "x", Size: 1 << 20, BlockSize: 1024},
			{Name: "x", Size: 1 << 20, Copies: 99},
			{Name: "x", Size: 1 << 62},
		} {
			if _, err := c.CreateVDI(ctx, bad); !errors.Is(err, cluster.ErrInvalid) {
				t.Errorf("create %+v: got %v, want ErrInvalid", bad, err)
			}
		}
		v, err := c.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "disk0", Size: 20 << 30, Copies: 2, BlockSize: 512})
		if err != nil {
			t.Fatal(err)
		}
		if v.Name != "disk0" || v.ID == 0 || v.Size != 20<<30 || v.Copies != 2 || v.BlockSize != 512 || v.ObjectSize != 4<<20 || v.Objects() != 5120 {
			t.Fatalf("created %+v", v)
		}
		if _, err := c.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "disk0", Size: 1 << 20}); !errors.Is(err, cluster.ErrVDIExists) {
			t.Fatalf("second create: got %v, want ErrVDIExists", err)
		}
		got, err := c.VDI(ctx, "disk0")
		if err != nil || got != v {
			t.Fatalf("VDI(disk0) = %+v, %v; want %+v", got, err, v)
		}
		if _, err := c.VDI(ctx, "nope"); !errors.Is(err, cluster.ErrVDINotFound) {
			t.Fatalf("VDI(nope): got %v, want ErrVDINotFound", err)
		}
		grown, err := c.ResizeVDI(ctx, cluster.ResizeVDIOptions{Name: "disk0", Size: 30 << 30})
		if err != nil || grown.Size != 30<<30 {
			t.Fatalf("grow: %+v, %v", grown, err)
		}
		if _, err := c.ResizeVDI(ctx, cluster.ResizeVDIOptions{Name: "disk0", Size: 1 << 30}); !errors.Is(err, cluster.ErrShrink) {
			t.Fatalf("shrink without force: got %v, want ErrShrink", err)
		}
		if got, _ := c.VDI(ctx, "disk0"); got.Size != 30<<30 {
			t.Fatalf("size after refused shrink = %d", got.Size)
		}
		if s, err := c.ResizeVDI(ctx, cluster.ResizeVDIOptions{Name: "disk0", Size: 1 << 30, Force: true}); err != nil || s.Size != 1<<30 {
			t.Fatalf("forced shrink: %+v, %v", s, err)
		}
		if _, err := c.ResizeVDI(ctx, cluster.ResizeVDIOptions{Name: "nope", Size: 1 << 30}); !errors.Is(err, cluster.ErrVDINotFound) {
			t.Fatalf("resize missing: got %v", err)
		}
		if _, err := c.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "b", Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		list, err := c.VDIs(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "b" || list[1].Name != "disk0" || list[0].Copies != 3 {
			t.Fatalf("VDIs = %+v, %v", list, err)
		}
		if _, err := c.DeleteVDI(ctx, "disk0"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeleteVDI(ctx, "disk0"); !errors.Is(err, cluster.ErrVDINotFound) {
			t.Fatalf("second delete: got %v, want ErrVDINotFound", err)
		}
		if list, _ := c.VDIs(ctx); len(list) != 1 || list[0].Name != "b" {
			t.Fatalf("VDIs after delete = %+v", list)
		}
	})
}

// TestCreateRace: concurrent creates of one name, exactly one wins; and
// ids are never reused, even across deletes.
func TestCreateRace(t *testing.T) {
	etcds(t, func(t *testing.T, url string) {
		ctx := context.Background()
		admin := clustertest.Client(t, url)
		format(t, admin, 1)
		const racers = 8
		clients := make([]*cluster.Client, racers)
		for i := range clients {
			clients[i] = clustertest.Client(t, url) // separate connections
		}
		seen := map[uint32]string{}
		for round := 0; round < 5; round++ {
			var wg sync.WaitGroup
			var mu sync.Mutex
			var wins []cluster.VDI
			var exists int
			for i := 0; i < racers; i++ {
				wg.Add(1)
				go func(c *cluster.Client) {
					defer wg.Done()
					v, err := c.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "contested", Size: 1 << 20})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						wins = append(wins, v)
					case errors.Is(err, cluster.ErrVDIExists):
						exists++
					default:
						t.Errorf("create: %v", err)
					}
				}(clients[i])
			}
			wg.Wait()
			if len(wins) != 1 || exists != racers-1 {
				t.Fatalf("round %d: %d winners, %d ErrVDIExists; want 1 and %d", round, len(wins), exists, racers-1)
			}
			if prev, dup := seen[wins[0].ID]; dup {
				t.Fatalf("id %d reused (was %s)", wins[0].ID, prev)
			}
			seen[wins[0].ID] = fmt.Sprint("round ", round)
			if _, err := admin.DeleteVDI(ctx, "contested"); err != nil {
				t.Fatal(err)
			}
		}
		// Distinct names in parallel: all win, all ids distinct.
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				v, err := clients[i].CreateVDI(ctx, cluster.CreateVDIOptions{Name: fmt.Sprint("vdi", i), Size: 1 << 20})
				if err != nil {
					t.Errorf("create vdi%d: %v", i, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if prev, dup := seen[v.ID]; dup {
					t.Errorf("id %d given to vdi%d and %s", v.ID, i, prev)
				}
				seen[v.ID] = v.Name
			}(i)
		}
		wg.Wait()
	})
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func nodeIDs(nodes []cluster.Node) string {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	return strings.Join(ids, ",")
}

func TestNodeRegistration(t *testing.T) {
	etcds(t, func(t *testing.T, url string) {
		ctx := context.Background()
		admin := clustertest.Client(t, url)
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		updates := admin.WatchNodes(watchCtx)
		if first := <-updates; len(first) != 0 {
			t.Fatalf("first watch list = %v, want empty", first)
		}

		// A node whose process dies (its etcd connection closes without a
		// revoke) vanishes once its lease expires.
		dying, err := cluster.Connect(cluster.Options{Endpoints: []string{url}, Prefix: admin.Prefix()})
		if err != nil {
			t.Fatal(err)
		}
		regA, err := dying.Register(ctx, cluster.Node{ID: "a", Addr: "127.0.0.1:7000", Zone: "z1", Capacity: 1 << 40}, cluster.RegisterOptions{TTL: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_ = regA
		live := clustertest.Client(t, url)
		regB, err := live.Register(ctx, cluster.Node{ID: "b", Addr: "127.0.0.1:7001", Capacity: 1 << 40}, cluster.RegisterOptions{TTL: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := admin.Nodes(ctx)
		if err != nil || nodeIDs(nodes) != "a,b" {
			t.Fatalf("nodes = %v, %v", nodes, err)
		}
		if n := nodes[0]; n.Addr != "127.0.0.1:7000" || n.Zone != "z1" || n.Capacity != 1<<40 || n.State != cluster.NodeUp || n.Started.IsZero() {
			t.Fatalf("node a = %+v", n)
		}
		if _, err := live.Register(ctx, cluster.Node{ID: "b", Addr: "127.0.0.1:9"}, cluster.RegisterOptions{}); !errors.Is(err, cluster.ErrNodeExists) {
			t.Fatalf("duplicate id: got %v, want ErrNodeExists", err)
		}
		waitFor(t, "watch sees a,b", 5*time.Second, func() bool {
			select {
			case l := <-updates:
				return nodeIDs(l) == "a,b"
			default:
				return false
			}
		})

		// Keep-alive works: both survive several TTLs.
		time.Sleep(5 * time.Second)
		if nodes, _ := admin.Nodes(ctx); nodeIDs(nodes) != "a,b" {
			t.Fatalf("after 5s of keep-alive: nodes = %s", nodeIDs(nodes))
		}

		dying.Close() // the "crash": no revoke, keep-alives stop
		took := waitFor(t, "node a expires", 10*time.Second, func() bool {
			nodes, err := admin.Nodes(ctx)
			return err == nil && nodeIDs(nodes) == "b"
		})
		t.Logf("lease of a crashed node expired after %v", took)
		waitFor(t, "watch sees a leave", 5*time.Second, func() bool {
			select {
			case l := <-updates:
				return nodeIDs(l) == "b"
			default:
				return false
			}
		})

		// Update keeps the lease; Close removes at once.
		n := regB.Node()
		n.State = cluster.NodeLeaving
		if err := regB.Update(ctx, n); err != nil {
			t.Fatal(err)
		}
		if nodes, _ := admin.Nodes(ctx); len(nodes) != 1 || nodes[0].State != cluster.NodeLeaving {
			t.Fatalf("after update: %+v", nodes)
		}
		if err := regB.Close(); err != nil {
			t.Fatal(err)
		}
		if nodes, _ := admin.Nodes(ctx); len(nodes) != 0 {
			t.Fatalf("after close: %+v", nodes)
		}

		// A restarted node may take over its still-live old entry with Replace.
		regC, err := live.Register(ctx, cluster.Node{ID: "c", Addr: "127.0.0.1:7002"}, cluster.RegisterOptions{TTL: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer regC.Close()
		regC2, err := live.Register(ctx, cluster.Node{ID: "c", Addr: "127.0.0.1:7003"}, cluster.RegisterOptions{Replace: true})
		if err != nil {
			t.Fatalf("replace: %v", err)
		}
		defer regC2.Close()
		if nodes, _ := admin.Nodes(ctx); len(nodes) != 1 || nodes[0].Addr != "127.0.0.1:7003" {
			t.Fatalf("after replace: %+v", nodes)
		}
	})
}

func TestUnreachableEtcdFailsFast(t *testing.T) {
	c, err := cluster.Connect(cluster.Options{Endpoints: []string{"http://" + clustertest.ClosedAddr(t)}, RequestTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.VDIs(context.Background())
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("VDIs against no etcd: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v to fail", d)
	}
}

func TestEpochMembership(t *testing.T) {
	etcds(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := clustertest.Client(t, url)
		epochs := c.WatchEpoch(ctx)
		if e := <-epochs; e.Number != 0 || len(e.Members) != 0 {
			t.Fatalf("initial epoch %+v", e)
		}
		// Registering does not make a member: the controller does.
		regB, err := c.Register(ctx, cluster.Node{ID: "b", Addr: "127.0.0.1:7001", Zone: "z", Capacity: 2 << 40}, cluster.RegisterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer regB.Close()
		if e, err := c.Epoch(ctx); err != nil || e.Number != 0 {
			t.Fatalf("epoch after a registration: %+v, %v", e, err)
		}
		if ms, err := c.Members(ctx); err != nil || len(ms) != 1 || ms[0].State != cluster.NodeJoining {
			t.Fatalf("members: %+v, %v", ms, err)
		}
		if _, err := c.Join(ctx, cluster.Member{ID: "b", Zone: "z", Capacity: 2 << 40}); err != nil {
			t.Fatal(err)
		}
		e, err := c.Join(ctx, cluster.Member{ID: "a", Capacity: 1 << 40})
		if err != nil || e.Number != 2 || len(e.Members) != 2 || e.Members[0] != (cluster.Member{ID: "a", Capacity: 1 << 40}) ||
			e.Members[1] != (cluster.Member{ID: "b", Zone: "z", Capacity: 2 << 40}) || e.Reason != "operator joined node a" {
			t.Fatalf("epoch after two joins: %+v, %v", e, err)
		}
		if again, err := c.Join(ctx, cluster.Member{ID: "a"}); err != nil || again.Number != 2 {
			t.Fatalf("joining a member again: %+v, %v", again, err)
		}
		waitFor(t, "watch sees epoch 2", 5*time.Second, func() bool {
			select {
			case e := <-epochs:
				return e.Number == 2
			default:
				return false
			}
		})
		// a is a member but not registered: down; b has not reported
		// recovering epoch 2: recovering.
		if ms, err := c.Members(ctx); err != nil || len(ms) != 2 || ms[0].State != cluster.NodeDown || ms[1].State != cluster.NodeRecovering {
			t.Fatalf("members: %+v, %v", ms, err)
		}
		if e, err := c.RemoveMember(ctx, "b"); err != nil || e.Number != 3 || len(e.Members) != 1 || e.Has("b") || !e.Has("a") || e.Reason != "operator removed node b" {
			t.Fatalf("remove b: %+v, %v", e, err)
		}
		if _, err := c.RemoveMember(ctx, "b"); !errors.Is(err, cluster.ErrInvalid) {
			t.Fatalf("remove b twice: %v", err)
		}
		// b: registered, not a member: joining again; with Gone, nobody
		// else is gone (a is down, b registered).
		ns, err := c.ListNodes(ctx, cluster.ListNodesOptions{Gone: true})
		if err != nil || nodeIDs(ns) != "a,b" || ns[0].State != cluster.NodeDown || ns[1].State != cluster.NodeJoining {
			t.Fatalf("list nodes: %+v, %v", ns, err)
		}
		regB.Close()
		ns, err = c.ListNodes(ctx, cluster.ListNodesOptions{Gone: true})
		if err != nil || nodeIDs(ns) != "a,b" || ns[1].State != cluster.NodeGone || ns[1].Zone != "z" {
			t.Fatalf("list nodes with b gone: %+v, %v", ns, err)
		}
		if ns, err := c.ListNodes(ctx, cluster.ListNodesOptions{}); err != nil || nodeIDs(ns) != "a" {
			t.Fatalf("list nodes without gone: %+v, %v", ns, err)
		}
	})
}

func TestCorruptVDIRecordIsAnError(t *testing.T) {
	url := clustertest.Embedded(t)
	c := clustertest.Client(t, url)
	ctx := context.Background()
	format(t, c, 1)
	if _, err := c.Etcd().Put(ctx, c.Prefix()+"vdis/bad", `{"name":"bad","id":7,"size":4096,"copies":1,"block_size":4096,"object_size":0}`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VDI(ctx, "bad"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("VDI(bad) = %v, want a corrupt-record error", err)
	}
}
