package sheep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// recoveryObjectSize keeps recovery tests quick: small objects.
const recoveryObjectSize = 64 << 10

// testCluster is an etcd and sheep nodes on 127.0.0.1, and a model of what
// was written, for the recovery tests.
type testCluster struct {
	t     testing.TB
	url   string
	cl    *cluster.Client
	grace time.Duration
	// objectSize is the cluster's (recoveryObjectSize unless a test
	// formats it otherwise).
	objectSize int
	// secret, if set, is required by the nodes of every client.
	secret []byte

	mu      sync.Mutex
	nodes   map[string]*testNode
	dirs    map[string]string
	clients map[string]*client

	vdi   cluster.VDI
	model map[proto.ObjectID][]byte
}

func newTestCluster(t testing.TB, copies int, grace time.Duration) *testCluster {
	t.Helper()
	return newTestClusterSized(t, copies, grace, recoveryObjectSize)
}

func newTestClusterSized(t testing.TB, copies int, grace time.Duration, objectSize int) *testCluster {
	t.Helper()
	url := clustertest.Embedded(t)
	cl := connectCluster(t, url, "/recovery-test/")
	ctx := context.Background()
	if _, err := cl.Format(ctx, cluster.FormatOptions{Copies: copies, ObjectSize: int64(objectSize), MemberGrace: grace}); err != nil {
		t.Fatal(err)
	}
	return &testCluster{t: t, url: url, cl: cl, grace: grace, objectSize: objectSize, nodes: map[string]*testNode{}, dirs: map[string]string{},
		clients: map[string]*client{}, model: map[proto.ObjectID][]byte{}}
}

// start starts node id (in its old directory if it ran before).
func (tc *testCluster) start(id string, bandwidth int64) *testNode {
	tc.t.Helper()
	tc.mu.Lock()
	dir, ok := tc.dirs[id]
	if !ok {
		dir = tc.t.TempDir()
		tc.dirs[id] = dir
	}
	tc.mu.Unlock()
	log := zerolog.Nop()
	if os.Getenv("SHEEP_TEST_LOG") != "" { // debugging: the nodes' logs on stderr
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Str("n", id).Logger()
	}
	n := startNode(tc.t, Options{Dir: dir, ID: id, Cluster: tc.cl, RegisterTTL: 2 * time.Second, RPC: rpc.ServerOptions{Secret: tc.secret}, Logger: log,
		RecoveryBandwidth: bandwidth, MemberGrace: tc.grace, RecoveryRetry: 200 * time.Millisecond, ObjectSize: uint32(tc.objectSize)})
	rc := rpc.NewClient(n.addr, rpc.ClientOptions{MaxBody: testObjectSize + 64<<10, Secret: tc.secret})
	tc.t.Cleanup(func() { rc.Close() })
	c := &client{rc: rc}
	tc.mu.Lock()
	tc.nodes[id] = n
	tc.clients[id] = c
	tc.mu.Unlock()
	return n
}

// kill stops node id at once (its registration goes with it).
func (tc *testCluster) kill(id string) {
	tc.mu.Lock()
	n := tc.nodes[id]
	delete(tc.nodes, id)
	c := tc.clients[id]
	delete(tc.clients, id)
	tc.mu.Unlock()
	n.Close()
	c.rc.Close()
}

func (tc *testCluster) node(id string) *testNode {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.nodes[id]
}

func (tc *testCluster) epoch() cluster.Epoch {
	tc.t.Helper()
	e, err := tc.cl.Epoch(context.Background())
	if err != nil {
		tc.t.Fatal(err)
	}
	return e
}

func memberIDs(e cluster.Epoch) []string {
	var ids []string
	for _, m := range e.Members {
		ids = append(ids, m.ID)
	}
	return ids
}

// waitMembers waits until the epoch's members are ids, and returns it.
func (tc *testCluster) waitMembers(ids ...string) cluster.Epoch {
	tc.t.Helper()
	slices.Sort(ids)
	var e cluster.Epoch
	waitForLong(tc.t, fmt.Sprintf("members %v", ids), 20*time.Second, func() bool {
		e = tc.epoch()
		return slices.Equal(memberIDs(e), ids)
	})
	return e
}

// waitRecovered waits until every member of e completed it and the
// cluster's recovery-complete epoch reached it.
func (tc *testCluster) waitRecovered(e cluster.Epoch) {
	tc.t.Helper()
	waitForLong(tc.t, fmt.Sprintf("recovery of epoch %d", e.Number), 30*time.Second, func() bool {
		for _, id := range memberIDs(e) {
			n := tc.node(id)
			if n == nil {
				return false
			}
			p := n.Recovery()
			if p.Epoch != e.Number || !p.Complete {
				return false
			}
		}
		lc, err := tc.cl.LastComplete(context.Background())
		return err == nil && lc >= e.Number
	})
}

func waitForLong(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// targets is T(e, X) for an object of the test's VDI.
func (tc *testCluster) targets(e cluster.Epoch, oid proto.ObjectID) []string {
	v, err := newEpochView(e)
	if err != nil {
		tc.t.Fatal(err)
	}
	var out []string
	for _, t := range v.targets(oid, tc.vdi.Copies, nil) {
		out = append(out, string(t))
	}
	slices.Sort(out)
	return out
}

// createVDI makes the VDI the test writes to.
func (tc *testCluster) createVDI(objects int) {
	tc.t.Helper()
	v, err := tc.cl.CreateVDI(context.Background(), cluster.CreateVDIOptions{Name: "v", Size: int64(objects) * int64(tc.objectSize)})
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.vdi = v
}

func (tc *testCluster) oid(i int) proto.ObjectID { return proto.ObjectID(tc.vdi.ObjectID(uint32(i))) }

// write writes data at off of object i on every target of epoch e, as a
// client does (an acknowledged write), and records it in the model.
func (tc *testCluster) write(e cluster.Epoch, i int, data []byte, off int) {
	tc.t.Helper()
	oid := tc.oid(i)
	for _, id := range tc.targets(e, oid) {
		c := tc.client(id)
		if c == nil {
			tc.t.Fatalf("target %s of %v is not running", id, oid)
		}
		req := writeRequest(e, oid, data, off)
		if _, _, err := retryNotReady(func() (proto.Response, []byte, error) { return c.do(req, data) }); err != nil {
			tc.t.Fatalf("write %v on %s at epoch %d: %v", oid, id, e.Number, err)
		}
	}
	tc.recordWrite(oid, data, off)
}

// client is the running node id's client, or nil.
func (tc *testCluster) client(id string) *client {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.clients[id]
}

func writeRequest(e cluster.Epoch, oid proto.ObjectID, data []byte, off int) proto.Request {
	return proto.Request{Op: proto.OpWrite, Epoch: e.Number, Object: oid, Offset: uint64(off), Length: uint32(len(data))}
}

// recordWrite puts an acknowledged write into the model.
func (tc *testCluster) recordWrite(oid proto.ObjectID, data []byte, off int) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	m := tc.model[oid]
	if m == nil {
		m = make([]byte, tc.objectSize)
		tc.model[oid] = m
	}
	copy(m[off:], data)
}

// writeReplanned writes like a client of the cluster: at the current
// epoch, to every target; any refusal or failure re-plans at the then
// current epoch (a write is idempotent). It returns once one epoch's
// targets all took it, and records it in the model.
func (tc *testCluster) writeReplanned(i int, data []byte, off int) error {
	oid := tc.oid(i)
	deadline := time.Now().Add(20 * time.Second)
	for {
		e, err := tc.cl.Epoch(context.Background())
		if err != nil {
			return err
		}
		ok := true
		for _, id := range tc.targets(e, oid) {
			c := tc.client(id)
			if c == nil {
				ok = false
				break
			}
			if _, _, err := c.do(writeRequest(e, oid, data, off), data); err != nil {
				ok = false
				break
			}
		}
		if ok {
			tc.recordWrite(oid, data, off)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("write %v not acknowledged in 20s", oid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// retryNotReady retries op while the node says NotReady (still starting,
// or pulling the object) or WrongEpoch (catching up with the epoch), for a
// few seconds, as a client does.
func retryNotReady(op func() (proto.Response, []byte, error)) (proto.Response, []byte, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, b, err := op()
		retry := errors.Is(err, proto.StatusNotReady) || errors.Is(err, proto.StatusWrongEpoch)
		if !retry || time.Now().After(deadline) {
			return r, b, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// retryWrongEpoch retries op while the node is catching up with the epoch.
func retryWrongEpoch(op func() (proto.Response, []byte, error)) (proto.Response, []byte, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, b, err := op()
		if !errors.Is(err, proto.StatusWrongEpoch) || time.Now().After(deadline) {
			return r, b, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeRandom fills objects 0..n-1: each gets a few random blocks, some
// objects get none (they stay absent).
func (tc *testCluster) writeRandom(e cluster.Epoch, rng *rand.Rand, n int) {
	tc.t.Helper()
	for i := range n {
		if i%7 == 3 {
			continue // never written: absent everywhere
		}
		for range 1 + rng.IntN(3) {
			off := rng.IntN(tc.objectSize/4096) * 4096
			tc.write(e, i, randBytes(rng, 4096), off)
		}
	}
}

// read reads object i whole through node id at epoch e.
func (tc *testCluster) read(id string, e cluster.Epoch, i int) ([]byte, error) {
	req := proto.Request{Op: proto.OpRead, Epoch: e.Number, Object: tc.oid(i), Length: uint32(tc.objectSize)}
	_, b, err := tc.client(id).do(req, nil)
	return b, err
}

// verify checks every object of the model (and those never written) is
// in objects/ on exactly its targets under e, byte-identical to the model.
func (tc *testCluster) verify(e cluster.Epoch, n int) {
	tc.t.Helper()
	buf := make([]byte, tc.objectSize)
	for i := range n {
		oid := tc.oid(i)
		want, written := tc.model[oid]
		targets := tc.targets(e, oid)
		for _, id := range memberIDs(e) {
			nd := tc.node(id)
			has := nd.Store().Exists(oid)
			isTarget := slices.Contains(targets, id)
			if has != (written && isTarget) {
				tc.t.Errorf("object %v on %s: present %v, written %v, target %v (targets %v)", oid, id, has, written, isTarget, targets)
				continue
			}
			if !has {
				continue
			}
			if err := nd.Store().ReadAt(oid, buf, 0); err != nil {
				tc.t.Fatal(err)
			}
			if sha256.Sum256(buf) != sha256.Sum256(want) {
				tc.t.Errorf("object %v on %s: checksum differs from what was written", oid, id)
			}
		}
	}
}

// readAllVia reads every object through node id (one of its targets in e)
// and compares with the model: unwritten objects read as zeros.
func (tc *testCluster) readAllVia(id string, e cluster.Epoch, n int) (checked int) {
	tc.t.Helper()
	zero := make([]byte, tc.objectSize)
	for i := range n {
		oid := tc.oid(i)
		if !slices.Contains(tc.targets(e, oid), id) {
			continue
		}
		_, got, err := retryNotReady(func() (proto.Response, []byte, error) {
			b, err := tc.read(id, e, i)
			return proto.Response{}, b, err
		})
		if err != nil {
			tc.t.Fatalf("read %v through %s at epoch %d: %v", oid, id, e.Number, err)
		}
		b := got
		want := tc.model[oid]
		if want == nil {
			want = zero
		}
		if !bytes.Equal(b, want) {
			tc.t.Fatalf("read %v through %s at epoch %d: data differs from what was written (zeros: %v)", oid, id, e.Number, bytes.Equal(b, zero))
		}
		checked++
	}
	return checked
}
