package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
	"github.com/sheepblk/sheepblk/internal/testutil"
)

// etcdClusters runs f against a 3-member embedded etcd and a 3-member
// cluster of Debian's etcd binary.
func etcdClusters(t *testing.T, f func(t *testing.T, ec *clustertest.EtcdCluster)) {
	t.Run("embedded", func(t *testing.T) { f(t, clustertest.EmbeddedCluster(t, 3)) })
	t.Run("external", func(t *testing.T) { f(t, clustertest.ExternalCluster(t, 3)) })
}

func connectAll(t *testing.T, ec *clustertest.EtcdCluster, prefix string) *cluster.Client {
	t.Helper()
	c, err := cluster.Connect(cluster.Options{Endpoints: ec.ClientURLs(), Prefix: prefix, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLiveAndMembershipWithoutQuorum: with 2 of 3 etcd members the
// membership controller still changes the membership; with 1 of 3 a
// registration stays Live (no lease can expire without quorum) while the
// controller waits and says so; once quorum is back the change happens.
func TestLiveAndMembershipWithoutQuorum(t *testing.T) {
	etcdClusters(t, func(t *testing.T, ec *clustertest.EtcdCluster) {
		ctx := context.Background()
		c := connectAll(t, ec, "/q/")
		format(t, c, 2)
		var log testutil.LogBuffer
		const grace = time.Second
		runMembership(t, c, grace, &log)
		regA := register(t, connectAll(t, ec, "/q/"), "a")
		regB := register(t, connectAll(t, ec, "/q/"), "b")
		waitMembers(t, c, "a,b", 10*time.Second)

		ec.Stop(0) // 2 of 3: changes still happen
		ec.WaitQuorum()
		regC := register(t, connectAll(t, ec, "/q/"), "c")
		waitMembers(t, c, "a,b,c", 20*time.Second)
		// (A leader failover may delay renewals for a moment.)
		waitFor(t, "every registration live with 2 of 3 etcd members", 10*time.Second, func() bool {
			return regA.Live() && regB.Live() && regC.Live()
		})

		ec.Stop(1) // 1 of 3: nothing can change, leases cannot expire
		regC.Close()
		time.Sleep(3 * 2 * time.Second) // 3 TTLs
		if !regA.Live() || !regB.Live() {
			t.Fatal("a registration stopped being live when etcd lost its quorum")
		}
		waitFor(t, "the controller says it waits for quorum", 15*time.Second, func() bool {
			return strings.Contains(log.String(), "membership change waiting for etcd quorum")
		})

		ec.Start(1) // quorum again: c's absence is seen, c removed after the grace
		e := waitMembers(t, c, "a,b", 30*time.Second)
		if !strings.Contains(e.Reason, "node c gone") {
			t.Fatalf("reason %q", e.Reason)
		}
		waitFor(t, "a and b live again", 10*time.Second, func() bool { return regA.Live() && regB.Live() })
		if ns, err := c.Nodes(ctx); err != nil || nodeIDs(ns) != "a,b" {
			t.Fatalf("nodes after quorum came back: %+v, %v", ns, err)
		}
	})
}

// TestNotLiveWhenCutOff: a registration that reaches no etcd member at all
// stops being Live after its TTL.
func TestNotLiveWhenCutOff(t *testing.T) {
	ec := clustertest.EmbeddedCluster(t, 3)
	reg := register(t, connectAll(t, ec, "/q/"), "a")
	if !reg.Live() {
		t.Fatal("not live after registering")
	}
	for i := range 3 {
		ec.Stop(i)
	}
	waitFor(t, "not live with no etcd reachable", 5*time.Second, func() bool { return !reg.Live() })
}
