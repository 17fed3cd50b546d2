package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
)

func TestEpochHistory(t *testing.T) {
	etcds(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := clustertest.Client(t, url)
		if e, err := c.EpochAt(ctx, 0); err != nil || e.Number != 0 || len(e.Members) != 0 {
			t.Fatalf("epoch 0: %+v, %v", e, err)
		}
		if _, err := c.EpochAt(ctx, 1); !errors.Is(err, cluster.ErrNotFound) {
			t.Fatalf("epoch 1 before any: %v", err)
		}
		if es, err := c.Epochs(ctx, 0, 0); err != nil || len(es) != 0 {
			t.Fatalf("history before any: %+v, %v", es, err)
		}
		for _, id := range []string{"a", "b", "c"} {
			if _, err := c.Join(ctx, cluster.Member{ID: id, Capacity: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.RemoveMember(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		want := []string{"a", "a,b", "a,b,c", "b,c"}
		for n := uint64(1); n <= 4; n++ {
			e, err := c.EpochAt(ctx, n)
			if err != nil || e.Number != n || memberIDs(e) != want[n-1] || e.Changed.IsZero() || e.Reason == "" {
				t.Fatalf("epoch %d: %+v, %v; want members %s", n, e, err, want[n-1])
			}
		}
		if _, err := c.EpochAt(ctx, 5); !errors.Is(err, cluster.ErrNotFound) {
			t.Fatalf("epoch 5: %v", err)
		}
		all, err := c.Epochs(ctx, 0, 0)
		if err != nil || len(all) != 4 {
			t.Fatalf("all epochs: %+v, %v", all, err)
		}
		for i, e := range all {
			if e.Number != uint64(i+1) || memberIDs(e) != want[i] {
				t.Fatalf("history[%d] = %+v", i, e)
			}
		}
		if mid, err := c.Epochs(ctx, 2, 3); err != nil || len(mid) != 2 || mid[0].Number != 2 || mid[1].Number != 3 {
			t.Fatalf("epochs 2..3: %+v, %v", mid, err)
		}
		if none, err := c.Epochs(ctx, 5, 9); err != nil || len(none) != 0 {
			t.Fatalf("epochs 5..9: %+v, %v", none, err)
		}
		// A cluster from before history: the current epoch has no record
		// of its own, yet EpochAt of its number and Epochs find it.
		if _, err := c.Etcd().Put(ctx, c.Prefix()+"epoch", `{"number":9,"members":[{"id":"x","capacity":1}]}`); err != nil {
			t.Fatal(err)
		}
		if e, err := c.EpochAt(ctx, 9); err != nil || memberIDs(e) != "x" {
			t.Fatalf("pre-history current epoch: %+v, %v", e, err)
		}
		if es, err := c.Epochs(ctx, 4, 0); err != nil || len(es) != 2 || es[0].Number != 4 || es[1].Number != 9 {
			t.Fatalf("epochs 4.. with a pre-history current one: %+v, %v", es, err)
		}
		// The next change records history again.
		if e, err := c.Join(ctx, cluster.Member{ID: "y"}); err != nil || e.Number != 10 {
			t.Fatalf("join after pre-history epoch: %+v, %v", e, err)
		}
		if e, err := c.EpochAt(ctx, 10); err != nil || memberIDs(e) != "x,y" {
			t.Fatalf("epoch 10: %+v, %v", e, err)
		}
	})
}

func memberIDs(e cluster.Epoch) string {
	ids := make([]string, len(e.Members))
	for i, m := range e.Members {
		ids[i] = m.ID
	}
	return strings.Join(ids, ",")
}

func TestSettingsMinCopiesAndGrace(t *testing.T) {
	for _, tc := range []struct{ min, copies, want int }{
		{0, 3, 2}, {0, 1, 1}, {0, 2, 1}, {0, 4, 2}, {0, 5, 3},
		{1, 3, 1}, {3, 3, 3}, {3, 2, 2}, {2, 1, 1},
	} {
		if got := (cluster.Settings{MinCopies: tc.min}).MinCopiesFor(tc.copies); got != tc.want {
			t.Errorf("MinCopies %d: MinCopiesFor(%d) = %d, want %d", tc.min, tc.copies, got, tc.want)
		}
	}
	if g := (cluster.Settings{}).Grace(); g != 10*time.Second {
		t.Errorf("default grace %v", g)
	}
	if g := (cluster.Settings{MemberGrace: time.Second}).Grace(); g != time.Second {
		t.Errorf("grace %v", g)
	}
	etcds(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := clustertest.Client(t, url)
		for _, bad := range []cluster.FormatOptions{{Copies: 3, MinCopies: 4}, {Copies: 3, MinCopies: -1}, {Copies: 3, MemberGrace: -time.Second}} {
			if _, err := c.Format(ctx, bad); !errors.Is(err, cluster.ErrInvalid) {
				t.Errorf("format %+v: %v, want ErrInvalid", bad, err)
			}
		}
		if _, err := c.Format(ctx, cluster.FormatOptions{Copies: 3, MinCopies: 1, MemberGrace: 1500 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		s, err := c.Settings(ctx)
		if err != nil || s.MinCopies != 1 || s.MemberGrace != 1500*time.Millisecond || s.Grace() != 1500*time.Millisecond || s.MinCopiesFor(3) != 1 {
			t.Fatalf("settings %+v, %v", s, err)
		}
		// A record written before these settings existed: the defaults.
		if _, err := c.Etcd().Put(ctx, c.Prefix()+"cluster", `{"copies":3,"object_size":4194304}`); err != nil {
			t.Fatal(err)
		}
		if s, err := c.Settings(ctx); err != nil || s.MinCopiesFor(3) != 2 || s.Grace() != cluster.DefaultMemberGrace {
			t.Fatalf("old settings %+v, %v", s, err)
		}
	})
}

func TestRecoveryStatusAndComplete(t *testing.T) {
	etcds(t, func(t *testing.T, url string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := clustertest.Client(t, url)
		format(t, c, 2)
		if n, err := c.LastComplete(ctx); err != nil || n != 0 {
			t.Fatalf("last complete of a new cluster: %d, %v", n, err)
		}
		lcWatch := c.WatchLastComplete(ctx)
		if n := <-lcWatch; n != 0 {
			t.Fatalf("first watched last complete %d", n)
		}
		recWatch := c.WatchRecovery(ctx)
		if m := <-recWatch; len(m) != 0 {
			t.Fatalf("first watched statuses %+v", m)
		}
		for _, id := range []string{"a", "b"} {
			if _, err := c.Join(ctx, cluster.Member{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		// Epoch 2: {a, b}. A VDI may be created, not deleted.
		if _, err := c.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "v", Size: 8 << 20}); err != nil {
			t.Fatal(err)
		}
		_, err := c.DeleteVDI(ctx, "v")
		if !errors.Is(err, cluster.ErrRecovering) || !strings.Contains(err.Error(), "epoch 2") || !strings.Contains(err.Error(), "dog cluster info") {
			t.Fatalf("delete during recovery: %v", err)
		}
		if _, err := c.ResizeVDI(ctx, cluster.ResizeVDIOptions{Name: "v", Size: 4 << 20, Force: true}); !errors.Is(err, cluster.ErrRecovering) {
			t.Fatalf("shrink during recovery: %v", err)
		}
		if v, err := c.ResizeVDI(ctx, cluster.ResizeVDIOptions{Name: "v", Size: 12 << 20}); err != nil || v.Size != 12<<20 {
			t.Fatalf("grow during recovery: %+v, %v", v, err)
		}

		if err := c.SetRecoveryStatus(ctx, cluster.RecoveryStatus{Node: "a", Epoch: 2, Total: 10, Done: 10, Bytes: 40 << 20, Complete: true}); err != nil {
			t.Fatal(err)
		}
		if err := c.SetRecoveryStatus(ctx, cluster.RecoveryStatus{Node: "b", Epoch: 2, Total: 10, Done: 3, Waiting: "node c unreachable"}); err != nil {
			t.Fatal(err)
		}
		if err := c.SetRecoveryStatus(ctx, cluster.RecoveryStatus{Node: "b/x"}); !errors.Is(err, cluster.ErrInvalid) {
			t.Fatalf("bad node id: %v", err)
		}
		st, err := c.RecoveryStatuses(ctx)
		if err != nil || len(st) != 2 || !st["a"].CompleteFor(2) || st["b"].CompleteFor(2) || st["b"].Done != 3 ||
			st["b"].Waiting != "node c unreachable" || st["a"].Updated.IsZero() || st["a"].Bytes != 40<<20 {
			t.Fatalf("statuses %+v, %v", st, err)
		}
		waitFor(t, "watch sees both statuses", 5*time.Second, func() bool {
			select {
			case m := <-recWatch:
				return len(m) == 2
			default:
				return false
			}
		})
		if err := c.MarkComplete(ctx, 2); !errors.Is(err, cluster.ErrIncomplete) || !strings.Contains(err.Error(), "b") {
			t.Fatalf("mark with b recovering: %v", err)
		}
		if err := c.MarkComplete(ctx, 3); !errors.Is(err, cluster.ErrNotFound) {
			t.Fatalf("mark a future epoch: %v", err)
		}
		if err := c.SetRecoveryStatus(ctx, cluster.RecoveryStatus{Node: "b", Epoch: 2, Total: 10, Done: 10, Complete: true}); err != nil {
			t.Fatal(err)
		}
		if err := c.MarkComplete(ctx, 2); err != nil {
			t.Fatalf("mark with both complete: %v", err)
		}
		if n, err := c.LastComplete(ctx); err != nil || n != 2 {
			t.Fatalf("last complete %d, %v", n, err)
		}
		waitFor(t, "watch sees epoch 2 complete", 5*time.Second, func() bool {
			select {
			case n := <-lcWatch:
				return n == 2
			default:
				return false
			}
		})
		// Never lowered: marking epoch 1 (a alone, who never reported
		// it) is a no-op.
		if err := c.MarkComplete(ctx, 1); err != nil {
			t.Fatalf("mark an older epoch: %v", err)
		}
		if n, _ := c.LastComplete(ctx); n != 2 {
			t.Fatalf("last complete lowered to %d", n)
		}
		if ms, err := c.Members(ctx); err != nil || len(ms) != 2 || ms[0].State != cluster.NodeDown {
			t.Fatalf("members %+v, %v", ms, err)
		}
		if v, err := c.ResizeVDI(ctx, cluster.ResizeVDIOptions{Name: "v", Size: 4 << 20, Force: true}); err != nil || v.Size != 4<<20 {
			t.Fatalf("shrink once recovered: %+v, %v", v, err)
		}
		if _, err := c.DeleteVDI(ctx, "v"); err != nil {
			t.Fatalf("delete once recovered: %v", err)
		}
	})
}
