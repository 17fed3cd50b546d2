package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
	"github.com/sheepblk/sheepblk/internal/testutil"
)

// runMembership starts a controller until the test ends.
func runMembership(t *testing.T, c *cluster.Client, grace time.Duration, log *testutil.LogBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.RunMembership(ctx, cluster.MembershipOptions{Grace: grace, Logger: zerolog.New(log)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunMembership: %v", err)
		}
	})
}

func register(t *testing.T, c *cluster.Client, id string) *cluster.Registration {
	t.Helper()
	reg, err := c.Register(context.Background(), cluster.Node{ID: id, Addr: "127.0.0.1:7000", Zone: "z-" + id, Capacity: 1 << 30},
		cluster.RegisterOptions{TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

func waitMembers(t *testing.T, c *cluster.Client, want string, timeout time.Duration) cluster.Epoch {
	t.Helper()
	var e cluster.Epoch
	waitFor(t, "members "+want, timeout, func() bool {
		var err error
		e, err = c.Epoch(context.Background())
		return err == nil && memberIDs(e) == want
	})
	return e
}

// TestRunMembership: two controllers race over the same cluster: nodes
// that register are added, a node that stops is removed after the grace
// (not before, and not if it comes back in time), the last member never,
// and every change happens once (the history has no repeated membership).
func TestRunMembership(t *testing.T) {
	etcds(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := clustertest.Client(t, url)
		c2, err := cluster.Connect(cluster.Options{Endpoints: []string{url}, Prefix: c.Prefix()})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		format(t, c, 2)
		var log1, log2 testutil.LogBuffer
		const grace = 1500 * time.Millisecond
		runMembership(t, c, grace, &log1)
		runMembership(t, c2, grace, &log2)

		regA := register(t, c, "a")
		e := waitMembers(t, c, "a", 5*time.Second)
		if e.Members[0].Zone != "z-a" || e.Members[0].Capacity != 1<<30 || e.Reason != "node a joined" {
			t.Fatalf("epoch after a registered: %+v", e)
		}
		regs := map[string]*cluster.Registration{"b": register(t, c, "b"), "c": register(t, c, "c")}
		waitMembers(t, c, "a,b,c", 5*time.Second)

		// a restarts within the grace: no change.
		regA.Close()
		time.Sleep(grace / 3)
		regs["a"] = register(t, c, "a")
		time.Sleep(grace)
		if e2, _ := c.Epoch(ctx); memberIDs(e2) != "a,b,c" {
			t.Fatalf("a restarted within the grace, members now %s", memberIDs(e2))
		}

		// A leaving node is still registered: kept until it is gone.
		regB := register(t, c2, "d")
		waitMembers(t, c, "a,b,c,d", 5*time.Second)
		n := regB.Node()
		n.State = cluster.NodeLeaving
		if err := regB.Update(ctx, n); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		regB.Close()
		e = waitMembers(t, c, "a,b,c", 10*time.Second)
		if took := time.Since(stopped); took < grace {
			t.Fatalf("d removed %v after it stopped, before the %v grace", took, grace)
		}
		if !strings.Contains(e.Reason, "node d gone for") {
			t.Fatalf("reason %q", e.Reason)
		}

		// A new registration that is leaving is not added.
		regL, err := c.Register(ctx, cluster.Node{ID: "l", Addr: "127.0.0.1:7000", State: cluster.NodeLeaving}, cluster.RegisterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer regL.Close()

		// Everyone stops: all but the last one to go are removed.
		for _, id := range []string{"a", "b", "c"} {
			regs[id].Close()
			time.Sleep(100 * time.Millisecond)
		}
		e = waitMembers(t, c, "c", 10*time.Second)
		time.Sleep(2 * grace)
		if e2, _ := c.Epoch(ctx); e2.Number != e.Number {
			t.Fatalf("the last member was removed: %+v", e2)
		}

		history, err := c.Epochs(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(history); i++ {
			if memberIDs(history[i]) == memberIDs(history[i-1]) || history[i].Number != history[i-1].Number+1 {
				t.Fatalf("history repeats or skips: %+v then %+v", history[i-1], history[i])
			}
		}
		logs := log1.String() + log2.String()
		if strings.Count(logs, `"membership changed"`) != len(history) || !strings.Contains(logs, `"reason":"node d gone for`) {
			t.Fatalf("%d epochs, logs:\n%s", len(history), logs)
		}
		for _, h := range history {
			if h.Has("l") {
				t.Fatalf("a leaving node was added: %+v", h)
			}
		}
	})
}

// TestRunMembershipMarksComplete: once every member reports the current
// epoch complete, the controller raises recovery-complete by itself.
func TestRunMembershipMarksComplete(t *testing.T) {
	url := clustertest.Embedded(t)
	ctx := context.Background()
	c := clustertest.Client(t, url)
	var log testutil.LogBuffer
	runMembership(t, c, time.Second, &log)
	register(t, c, "a")
	register(t, c, "b")
	e := waitMembers(t, c, "a,b", 5*time.Second)
	if err := c.SetRecoveryStatus(ctx, cluster.RecoveryStatus{Node: "a", Epoch: e.Number, Complete: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n, _ := c.LastComplete(ctx); n != 0 {
		t.Fatalf("marked complete (%d) with b still recovering", n)
	}
	if err := c.SetRecoveryStatus(ctx, cluster.RecoveryStatus{Node: "b", Epoch: e.Number, Complete: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "recovery-complete reaches the epoch", 5*time.Second, func() bool {
		n, err := c.LastComplete(ctx)
		return err == nil && n == e.Number
	})
	if ns, err := c.Members(ctx); err != nil || ns[0].State != cluster.NodeUp || ns[1].State != cluster.NodeUp {
		t.Fatalf("members %+v, %v", ns, err)
	}
}

// TestRegistrationLive: Live while the lease is held, not once it is lost
// (revoked behind the node's back) until the node registered again, and
// not after Close.
func TestRegistrationLive(t *testing.T) {
	url := clustertest.Embedded(t)
	c := clustertest.Client(t, url)
	reg := register(t, c, "a")
	if !reg.Live() {
		t.Fatal("not live right after registering")
	}
	clustertest.Unregister(t, c, "a")
	waitFor(t, "not live after the lease was revoked", 5*time.Second, func() bool { return !reg.Live() })
	waitFor(t, "live again after registering again", 5*time.Second, reg.Live)
	if ns, err := c.Nodes(context.Background()); err != nil || nodeIDs(ns) != "a" {
		t.Fatalf("nodes after re-registering: %+v, %v", ns, err)
	}
	reg.Close()
	if reg.Live() {
		t.Fatal("live after Close")
	}
}
