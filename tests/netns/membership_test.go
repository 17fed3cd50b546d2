package netns_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/placement"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// Membership test parameters: short leases and grace so each step takes
// seconds, and a VDI small enough to verify whole after every step.
const (
	memberNodes   = 5 // 4 at the start, the 5th added later
	memberCopies  = 3
	memberVDISize = 128 << 20
	memberTTL     = "2s"
	memberGrace   = "2s"
	// stepTimeout bounds each wait for an epoch change or a recovery.
	stepTimeout = 2 * time.Minute
)

// TestMembershipFaults is issue 6's test 1: 4 nodes, copies=3, checksummed
// writes running the whole time. Kill a node; add a new one; bring the
// killed one back with its old (stale) data; cut a node's link for longer
// than its lease. After each step, once recovery is complete: `dog cluster
// check` is clean, every acknowledged write reads back with its checksum,
// and every written object is on exactly its 3 targets of the current
// epoch, byte-identical.
func TestMembershipFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 5-node cluster in network namespaces")
	}
	env := newClusterEnv(t, memberNodes, 10*time.Minute)
	ctx, tn, secretFile, secret, dog := env.ctx, env.tn, env.secretFile, env.secret, env.dog
	if err := dog(io.Discard, "cluster", "format", "--copies", fmt.Sprint(memberCopies),
		"--min-copies", "2", "--member-grace", memberGrace); err != nil {
		t.Fatal(err)
	}
	client, err := cluster.Connect(cluster.Options{Endpoints: []string{etcdURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	c := &memberCluster{t: t, ctx: ctx, tn: tn, client: client, sheep: env.sheep(), secretFile: secretFile,
		dirs: make([]string, memberNodes), procs: make([]*nodeProc, memberNodes)}
	for i := range memberNodes {
		c.dirs[i] = filepath.Join(env.dir, fmt.Sprintf("node%d", i))
	}
	for i := range 4 {
		c.start(i)
	}
	waitNodesUp(t, dog, c.procs[:4])
	c.waitMembers(0, 1, 2, 3)

	if err := dog(io.Discard, "vdi", "create", vdiName, fmt.Sprint(memberVDISize)); err != nil {
		t.Fatal(err)
	}
	b, err := sheepbackend.Open(ctx, sheepbackend.Options{
		Cluster: client, VDI: vdiName,
		RPC: rpc.ClientOptions{Secret: secret},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w := startWriter(t, b, memberVDISize)
	defer w.stop()

	check := func(step string) {
		t.Helper()
		c.waitRecovered(step)
		w.pause()
		defer w.resume()
		if err := w.err(); err != nil {
			t.Fatalf("%s: a write failed while the cluster changed: %v", step, err)
		}
		if err := b.Flush(); err != nil {
			t.Fatalf("%s: flush: %v", step, err)
		}
		verifyVDI(t, step, b, w.m)
		var out bytes.Buffer
		if err := dog(&out, "cluster", "check", "--secret-file", secretFile); err != nil {
			t.Fatalf("%s: dog cluster check: %v\n%s", step, err, out.String())
		}
		c.checkPlacement(step, w.m, b.VDI())
		t.Logf("%s: %d writes acknowledged so far, all read back; cluster check clean; every object on its %d targets",
			step, w.acked(), memberCopies)
	}
	w.waitWrites(20)
	check("start")

	// 1. kill -9 node 3: after the grace it leaves, its objects are
	// re-replicated from the other two copies.
	c.kill(3)
	c.waitMembers(0, 1, 2)
	check("node 3 killed")

	// 2. a new node joins and gets its share.
	c.start(4)
	c.waitMembers(0, 1, 2, 4)
	check("node 4 added")

	// 3. the killed node comes back with its old objects: they are stale
	// (writes went on without it) and must never be served.
	c.start(3)
	c.waitMembers(0, 1, 2, 3, 4)
	check("node 3 back with stale data")

	// 4. node 1's link goes down for longer than its lease and the grace:
	// it is removed, then rejoins when the link comes back.
	c.linkDown(1)
	c.waitMembers(0, 2, 3, 4)
	w.waitWrites(10) // writes go on without it
	c.linkUp(1)
	c.waitMembers(0, 1, 2, 3, 4)
	check("node 1 partitioned and back")
}

// memberCluster is the nodes of TestMembershipFaults.
type memberCluster struct {
	t          *testing.T
	ctx        context.Context
	tn         *testNet
	client     *cluster.Client
	sheep      string
	secretFile string
	dirs       []string
	procs      []*nodeProc
}

func nodeID(i int) string { return fmt.Sprintf("n%d", i) }

// start runs node i (again), with its directory as it was left.
func (c *memberCluster) start(i int) {
	c.t.Helper()
	p := &nodeProc{i: i, addr: nodeAddr(i) + ":" + nodePort, log: fmt.Sprintf("%s.log.%d", c.dirs[i], time.Now().UnixNano()), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = c.tn.command(c.ctx, i, c.sheep,
		"--dir", c.dirs[i], "--id", nodeID(i), "--listen", p.addr, "--etcd", etcdURL, "--secret-file", c.secretFile,
		"--capacity", "1T", "--register-ttl", memberTTL, "--recovery-bandwidth", "0",
		"--log-format", "json", "--log-level", "info")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start node %d: %v", i, err)
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	c.t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if c.t.Failed() {
			log, _ := os.ReadFile(p.log)
			c.t.Logf("node %d (%s) log:\n%s", i, p.addr, tail(string(log), 4000))
		}
	})
	c.procs[i] = p
}

// kill ends node i with SIGKILL: no clean leave, its lease just expires.
func (c *memberCluster) kill(i int) {
	p := c.procs[i]
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// hostVeth is the host end of node i's link.
func (c *memberCluster) hostVeth(i int) string {
	return vethPrefix + fmt.Sprint(os.Getpid()) + "n" + fmt.Sprint(i)
}

func (c *memberCluster) linkDown(i int) {
	if err := ip("link", "set", c.hostVeth(i), "down"); err != nil {
		c.t.Fatal(err)
	}
}

func (c *memberCluster) linkUp(i int) {
	if err := ip("link", "set", c.hostVeth(i), "up"); err != nil {
		c.t.Fatal(err)
	}
}

// waitMembers waits until the current epoch's members are exactly nodes.
func (c *memberCluster) waitMembers(nodes ...int) cluster.Epoch {
	c.t.Helper()
	want := make([]string, len(nodes))
	for k, i := range nodes {
		want[k] = nodeID(i)
	}
	deadline := time.Now().Add(stepTimeout)
	for {
		e, err := c.client.Epoch(c.ctx)
		if err == nil && strings.Join(memberIDs(e), ",") == strings.Join(want, ",") {
			return e
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("members are %v (epoch %d, err %v), want %v after %v", memberIDs(e), e.Number, err, want, stepTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func memberIDs(e cluster.Epoch) []string {
	ids := make([]string, len(e.Members))
	for k, m := range e.Members {
		ids[k] = m.ID
	}
	return ids
}

// waitRecovered waits until the cluster says the current epoch's recovery
// is complete on every member.
func (c *memberCluster) waitRecovered(step string) {
	c.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		e, err := c.client.Epoch(c.ctx)
		var done uint64
		if err == nil {
			done, err = c.client.LastComplete(c.ctx)
		}
		if err == nil && done == e.Number {
			return
		}
		if time.Now().After(deadline) {
			st, _ := c.client.RecoveryStatuses(c.ctx)
			c.t.Fatalf("%s: recovery of epoch %d not complete after %v (last complete %d, err %v); statuses %+v",
				step, e.Number, stepTimeout, done, err, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkPlacement: every written object is in objects/ of exactly its
// targets under the current epoch (and of no other member), with bytes
// identical across them and equal to what was written.
func (c *memberCluster) checkPlacement(step string, m *model, vdi cluster.VDI) {
	c.t.Helper()
	e, err := c.client.Epoch(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	nodes := make([]placement.Node, len(e.Members))
	dirOf := map[string]string{}
	for k, mb := range e.Members {
		nodes[k] = placement.Node{ID: placement.NodeID(mb.ID), Zone: mb.Zone, Capacity: mb.Capacity}
		for i := range memberNodes {
			if nodeID(i) == mb.ID {
				dirOf[mb.ID] = c.dirs[i]
			}
		}
	}
	ring, err := placement.New(nodes)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, idx := range m.objects(vdi.ObjectSize) {
		oid := proto.NewObjectID(vdi.ID, idx)
		targets := ring.Replicas(uint64(oid), min(vdi.Copies, len(nodes)), nil)
		want := m.bytes(int64(idx)*vdi.ObjectSize, int(vdi.ObjectSize))
		isTarget := map[string]bool{}
		for _, id := range targets {
			isTarget[string(id)] = true
		}
		for _, mb := range e.Members {
			data, err := os.ReadFile(filepath.Join(dirOf[mb.ID], "objects", oid.String()))
			switch {
			case isTarget[mb.ID] && err != nil:
				c.t.Fatalf("%s: object %s: target %s does not hold it: %v", step, oid, mb.ID, err)
			case !isTarget[mb.ID] && err == nil:
				c.t.Fatalf("%s: object %s: %s holds a current copy but is not a target (targets %v)", step, oid, mb.ID, targets)
			case !isTarget[mb.ID]:
				continue
			}
			full := append(data, make([]byte, max(0, int(vdi.ObjectSize)-len(data)))...)
			if !bytes.Equal(full, want) {
				c.t.Fatalf("%s: object %s on %s differs from what was written", step, oid, mb.ID)
			}
		}
	}
}

// writer writes checksummed extents through the backend in rounds until
// stopped, recording in its model only what was acknowledged.
type writer struct {
	t  *testing.T
	b  *sheepbackend.Backend
	m  *model
	r  *rand.Rand
	mu sync.Mutex
	// pausedMu is held by the writer loop for a round; pause takes it.
	pausedMu sync.Mutex
	rounds   int
	firstErr error
	done     chan struct{}
	quit     chan struct{}
}

func startWriter(t *testing.T, b *sheepbackend.Backend, size int64) *writer {
	w := &writer{t: t, b: b, m: newModel(size), r: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5)),
		done: make(chan struct{}), quit: make(chan struct{})}
	go w.loop()
	return w
}

func (w *writer) loop() {
	defer close(w.done)
	for {
		select {
		case <-w.quit:
			return
		default:
		}
		w.pausedMu.Lock()
		err := w.round()
		w.pausedMu.Unlock()
		w.mu.Lock()
		if err != nil && w.firstErr == nil {
			w.firstErr = err
		}
		w.rounds++
		w.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// round writes 8 extents in distinct 1 MiB slots at once. The model is
// updated before the writes are sent, so a failed write is a test failure
// (the data path must not fail while nodes come and go).
func (w *writer) round() error {
	exts := w.m.randomExtents(w.r, 8)
	errs := make(chan error, len(exts))
	for _, e := range exts {
		go func() {
			_, err := w.b.WriteAt(w.m.bytes(e.off, e.n), e.off)
			if err != nil {
				err = fmt.Errorf("write %d bytes at %d: %w", e.n, e.off, err)
			}
			errs <- err
		}()
	}
	var all []error
	for range exts {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func (w *writer) pause()  { w.pausedMu.Lock() }
func (w *writer) resume() { w.pausedMu.Unlock() }

func (w *writer) stop() {
	close(w.quit)
	<-w.done
}

func (w *writer) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstErr
}

func (w *writer) acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rounds * 8
}

// waitWrites waits for n more rounds (or the writer's failure).
func (w *writer) waitWrites(n int) {
	w.t.Helper()
	w.mu.Lock()
	target := w.rounds + n
	w.mu.Unlock()
	deadline := time.Now().Add(stepTimeout)
	for {
		w.mu.Lock()
		r, err := w.rounds, w.firstErr
		w.mu.Unlock()
		if err != nil {
			w.t.Fatalf("writer: %v", err)
		}
		if r >= target {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("writer: %d rounds after %v, want %d", r, stepTimeout, target)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// verifyVDI reads the whole VDI through the backend and compares it,
// 1 MiB at a time, with the model.
func verifyVDI(t *testing.T, step string, b *sheepbackend.Backend, m *model) {
	t.Helper()
	parallel(t, int(m.size>>20), func(k int) error {
		off := int64(k) << 20
		p := make([]byte, 1<<20)
		if _, err := b.ReadAt(p, off); err != nil {
			return fmt.Errorf("%s: read 1 MiB at %d: %w", step, off, err)
		}
		if sha256.Sum256(p) != sha256.Sum256(m.bytes(off, 1<<20)) {
			return fmt.Errorf("%s: 1 MiB at %d differs from what was acknowledged", step, off)
		}
		return nil
	})
}
