package netns_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/placement"
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
	env := newCluster(t, clusterOptions{Nodes: memberNodes, Timeout: 10 * time.Minute, Copies: memberCopies,
		FormatFlags: []string{"--min-copies", "2", "--member-grace", memberGrace},
		NodeFlags:   []string{"--register-ttl", memberTTL, "--recovery-bandwidth", "0", "--log-level", "info"}})
	env.up(0, 1, 2, 3)
	env.waitMembers(0, 1, 2, 3)
	b := env.openVDI(vdiName, memberVDISize, sheepbackend.Options{})
	w := startWriter(b, memberVDISize)
	defer w.stop()

	check := func(step string) {
		t.Helper()
		env.waitRecovered(step)
		w.pause()
		defer w.resume()
		if err := w.error(); err != nil {
			t.Fatalf("%s: a write failed while the cluster changed: %v", step, err)
		}
		if err := b.Flush(); err != nil {
			t.Fatalf("%s: flush: %v", step, err)
		}
		verifyVDI(t, step, b, w.m)
		var out bytes.Buffer
		if err := env.dog(&out, "cluster", "check", "--secret-file", env.secretFile); err != nil {
			t.Fatalf("%s: dog cluster check: %v\n%s", step, err, out.String())
		}
		env.checkPlacement(step, w.m, b.VDI())
		t.Logf("%s: %d writes acknowledged so far, all read back; cluster check clean; every object on its %d targets",
			step, w.acked(), memberCopies)
	}
	w.waitWrites(t, 20*8)
	check("start")

	// 1. kill -9 node 3: after the grace it leaves, its objects are
	// re-replicated from the other two copies.
	env.kill(3)
	env.waitMembers(0, 1, 2)
	check("node 3 killed")

	// 2. a new node joins and gets its share.
	env.up(4)
	env.waitMembers(0, 1, 2, 4)
	check("node 4 added")

	// 3. the killed node comes back with its old objects: they are stale
	// (writes went on without it) and must never be served.
	env.up(3)
	env.waitMembers(0, 1, 2, 3, 4)
	check("node 3 back with stale data")

	// 4. node 1's link goes down for longer than its lease and the grace:
	// it is removed, then rejoins when the link comes back.
	env.linkDown(1)
	env.waitMembers(0, 2, 3, 4)
	w.waitWrites(t, 10*8) // writes go on without it
	env.linkUp(1)
	env.waitMembers(0, 1, 2, 3, 4)
	check("node 1 partitioned and back")
}

// waitMembers waits until the current epoch's members are exactly nodes.
func (env *clusterEnv) waitMembers(nodes ...int) cluster.Epoch {
	env.t.Helper()
	want := make([]string, len(nodes))
	for k, i := range nodes {
		want[k] = nodeID(i)
	}
	deadline := time.Now().Add(stepTimeout)
	for {
		e, err := env.client.Epoch(env.ctx)
		if err == nil && strings.Join(memberIDs(e), ",") == strings.Join(want, ",") {
			return e
		}
		if time.Now().After(deadline) {
			env.t.Fatalf("members are %v (epoch %d, err %v), want %v after %v", memberIDs(e), e.Number, err, want, stepTimeout)
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
func (env *clusterEnv) waitRecovered(step string) {
	env.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		e, err := env.client.Epoch(env.ctx)
		var done uint64
		if err == nil {
			done, err = env.client.LastComplete(env.ctx)
		}
		if err == nil && done == e.Number {
			return
		}
		if time.Now().After(deadline) {
			st, _ := env.client.RecoveryStatuses(env.ctx)
			env.t.Fatalf("%s: recovery of epoch %d not complete after %v (last complete %d, err %v); statuses %+v",
				step, e.Number, stepTimeout, done, err, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkPlacement: every written object is in objects/ of exactly its
// targets under the current epoch (and of no other member), with bytes
// identical across them and equal to what was written.
func (env *clusterEnv) checkPlacement(step string, m *model, vdi cluster.VDI) {
	env.t.Helper()
	e, err := env.client.Epoch(env.ctx)
	if err != nil {
		env.t.Fatal(err)
	}
	nodes := make([]placement.Node, len(e.Members))
	dirOf := map[string]string{}
	for k, mb := range e.Members {
		nodes[k] = placement.Node{ID: placement.NodeID(mb.ID), Zone: mb.Zone, Capacity: mb.Capacity}
		for i, dir := range env.dirs {
			if nodeID(i) == mb.ID {
				dirOf[mb.ID] = dir
			}
		}
	}
	ring, err := placement.New(nodes)
	if err != nil {
		env.t.Fatal(err)
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
				env.t.Fatalf("%s: object %s: target %s does not hold it: %v", step, oid, mb.ID, err)
			case !isTarget[mb.ID] && err == nil:
				env.t.Fatalf("%s: object %s: %s holds a current copy but is not a target (targets %v)", step, oid, mb.ID, targets)
			case !isTarget[mb.ID]:
				continue
			}
			full := append(data, make([]byte, max(0, int(vdi.ObjectSize)-len(data)))...)
			if !bytes.Equal(full, want) {
				env.t.Fatalf("%s: object %s on %s differs from what was written", step, oid, mb.ID)
			}
		}
	}
}

// writer writes checksummed extents through the backend in rounds of 8
// at once until stopped, recording them in its model.
type writer struct {
	*load
	b *sheepbackend.Backend
	m *model
	r *rand.Rand
}

func startWriter(b *sheepbackend.Backend, size int64) *writer {
	w := &writer{b: b, m: newModel(size), r: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))}
	w.load = startLoad(1, stepTimeout, w.round)
	return w
}

// round writes 8 extents in distinct 1 MiB slots at once. The model is
// updated before the writes are sent, so a failed write is a test failure
// (the data path must not fail while nodes come and go).
func (w *writer) round(int) (int, error) {
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
	if err := errors.Join(all...); err != nil {
		return 0, err
	}
	return len(exts), nil
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
