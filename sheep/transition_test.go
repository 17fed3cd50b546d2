package sheep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

// fakeCluster is an in-memory recoveryCluster: an epoch history, a VDI
// table and the recovery bookkeeping, for tests of one node's transitions.
type fakeCluster struct {
	mu       sync.Mutex
	epochs   []cluster.Epoch // index: number
	vdis     []cluster.VDI
	lc       uint64
	statuses map[string]cluster.RecoveryStatus
}

func newFakeCluster(members ...[]string) *fakeCluster {
	f := &fakeCluster{epochs: []cluster.Epoch{{}}, statuses: map[string]cluster.RecoveryStatus{}}
	for _, m := range members {
		f.add(m...)
	}
	return f
}

// add appends an epoch of the given members.
func (f *fakeCluster) add(ids ...string) cluster.Epoch {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := cluster.Epoch{Number: uint64(len(f.epochs))}
	for _, id := range slices.Sorted(slices.Values(ids)) {
		e.Members = append(e.Members, cluster.Member{ID: id})
	}
	f.epochs = append(f.epochs, e)
	return e
}

func (f *fakeCluster) EpochAt(_ context.Context, n uint64) (cluster.Epoch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n >= uint64(len(f.epochs)) {
		return cluster.Epoch{}, fmt.Errorf("epoch %d: %w", n, cluster.ErrNotFound)
	}
	return f.epochs[n], nil
}

func (f *fakeCluster) Epoch(ctx context.Context) (cluster.Epoch, error) {
	f.mu.Lock()
	n := uint64(len(f.epochs) - 1)
	f.mu.Unlock()
	return f.EpochAt(ctx, n)
}

func (f *fakeCluster) WatchEpoch(ctx context.Context) <-chan cluster.Epoch {
	ch := make(chan cluster.Epoch)
	go func() {
		defer close(ch)
		e, _ := f.Epoch(ctx)
		select {
		case ch <- e:
		case <-ctx.Done():
		}
		<-ctx.Done()
	}()
	return ch
}

func (f *fakeCluster) VDIs(context.Context) ([]cluster.VDI, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.vdis), nil
}

func (f *fakeCluster) Nodes(context.Context) ([]cluster.Node, error) { return nil, nil }

func (f *fakeCluster) LastComplete(context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lc, nil
}

func (f *fakeCluster) WatchLastComplete(ctx context.Context) <-chan uint64 {
	ch := make(chan uint64)
	go func() { defer close(ch); <-ctx.Done() }()
	return ch
}

func (f *fakeCluster) MarkComplete(_ context.Context, e uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.epochs[e].Members {
		if s := f.statuses[m.ID]; !s.CompleteFor(e) {
			return fmt.Errorf("epoch %d: %w", e, cluster.ErrIncomplete)
		}
	}
	f.lc = max(f.lc, e)
	return nil
}

func (f *fakeCluster) RemoveMember(_ context.Context, id string) (cluster.Epoch, error) {
	f.mu.Lock()
	last := f.epochs[len(f.epochs)-1]
	f.mu.Unlock()
	var ids []string
	for _, m := range last.Members {
		if m.ID != id {
			ids = append(ids, m.ID)
		}
	}
	return f.add(ids...), nil
}

func (f *fakeCluster) SetRecoveryStatus(_ context.Context, s cluster.RecoveryStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses[s.Node] = s
	return nil
}

// soloNode is one node's store and recoverer on a fake cluster.
type soloNode struct {
	st      *store.Store
	r       *recoverer
	saveErr error // returned by the next SaveState, then cleared
	mu      sync.Mutex
}

func newSoloNode(t testing.TB, self string, fc *fakeCluster) *soloNode {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{ObjectSize: proto.MinObjectSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sn := &soloNode{st: st}
	peers := newPeerSet(fc, rpc.ClientOptions{}, zerolog.Nop())
	t.Cleanup(peers.Close)
	sn.r = newRecoverer(recoveryOptions{
		Self: self, Store: st, Cluster: fc, Peers: peers, Bandwidth: -1, RetryInterval: 20 * time.Millisecond,
		LoadState: func() (recoveryState, error) { return store.LoadRecoveryState(dir) },
		SaveState: func(s recoveryState) error {
			sn.mu.Lock()
			err := sn.saveErr
			sn.saveErr = nil
			sn.mu.Unlock()
			if err != nil {
				return err
			}
			return store.SaveRecoveryState(dir, s)
		},
	})
	t.Cleanup(sn.r.stop)
	return sn
}

func (sn *soloNode) request(op proto.Op, e uint64, oid proto.ObjectID) error {
	err := sn.r.admit(context.Background(), &proto.Request{Op: op, Epoch: e, Object: oid, Length: 8}, false)
	if err == nil {
		sn.r.release()
	}
	return err
}

// A node alone in epoch 1 holds everything; when b joins (epoch 2) the
// objects placed on b only become stale copies of epoch 1, the rest stay;
// requests of epoch 1 get WrongEpoch; a transition whose state cannot be
// saved leaves the node serving nothing until the retry succeeds.
func TestTransitionSupersedesObjectsNoLongerPlacedHere(t *testing.T) {
	fc := newFakeCluster([]string{"a"})
	fc.vdis = []cluster.VDI{{ID: 1, Copies: 1}}
	fc.lc = 1
	fc.statuses["a"] = cluster.RecoveryStatus{Node: "a", Epoch: 1, Complete: true}
	sn := newSoloNode(t, "a", fc)
	ctx := context.Background()
	// Served inline, a request is declined (a worker serves it) while
	// the node may still have to recover, and let in once it need not.
	inline := &proto.Request{Op: proto.OpWrite, Epoch: 1, Object: proto.NewObjectID(1, 0), Length: 8}
	if err := sn.r.admit(ctx, inline, true); !errors.Is(err, store.ErrWouldWait) {
		t.Fatalf("inline admit before the epoch completed: %v, want store.ErrWouldWait", err)
	}
	if err := sn.r.start(ctx); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "a to complete epoch 1", 5*time.Second, func() bool { return sn.r.complete.Load() })
	if err := sn.request(proto.OpWrite, 1, inline.Object); err != nil { // learns the VDI's copies
		t.Fatal(err)
	}
	if err := sn.r.admit(ctx, inline, true); err != nil {
		t.Fatalf("inline admit in a completed epoch: %v", err)
	}
	sn.r.release()
	var oids []proto.ObjectID
	for i := range 32 {
		oid := proto.NewObjectID(1, uint32(i))
		if err := sn.request(proto.OpWrite, 1, oid); err != nil {
			t.Fatal(err)
		}
		if err := sn.st.WriteAt(oid, []byte{byte(i)}, 0, false); err != nil {
			t.Fatal(err)
		}
		oids = append(oids, oid)
	}
	e2 := fc.add("a", "b")
	v2, err := newEpochView(e2)
	if err != nil {
		t.Fatal(err)
	}
	sn.mu.Lock()
	sn.saveErr = errors.New("disk full")
	sn.mu.Unlock()
	if err := sn.r.catchUp(ctx, e2); err == nil {
		t.Fatal("transition with a failing state save succeeded")
	}
	if err := sn.request(proto.OpRead, 1, oids[0]); !errors.Is(err, proto.StatusNotReady) {
		t.Fatalf("read of epoch 1 after a failed transition: %v, want NotReady (the node serves nothing)", err)
	}
	if err := sn.r.catchUp(ctx, e2); err != nil {
		t.Fatal(err)
	}
	if err := sn.request(proto.OpRead, 1, oids[0]); !errors.Is(err, proto.StatusWrongEpoch) {
		t.Fatalf("read of epoch 1 after the transition: %v, want WrongEpoch", err)
	}
	moved := 0
	for _, oid := range oids {
		mine := v2.isTarget("a", oid, 1)
		_, stale := sn.st.StaleCopy(oid, 1)
		if sn.st.Exists(oid) != mine || stale == mine {
			t.Errorf("object %v: placed here %v, present %v, stale copy %v", oid, mine, sn.st.Exists(oid), stale)
		}
		if !mine {
			moved++
			// Not placed here: refused, never answered with zeros.
			if err := sn.request(proto.OpRead, 2, oid); !errors.Is(err, proto.StatusNotReady) {
				t.Errorf("read of %v, not placed on a, at epoch 2: %v, want NotReady", oid, err)
			}
		} else if err := sn.request(proto.OpRead, 2, oid); err != nil {
			t.Errorf("read of %v at epoch 2: %v", oid, err)
		}
	}
	if moved == 0 || moved == len(oids) {
		t.Fatalf("%d of %d objects moved to b: the placement test proves nothing", moved, len(oids))
	}
	// Once a has completed epoch 2 (it had nothing to pull), a read of an
	// object not placed on it is still refused: completion is no licence
	// to answer zeros for what is not here.
	waitForLong(t, "a to complete epoch 2", 5*time.Second, func() bool { return sn.r.complete.Load() })
	for _, oid := range oids {
		if !v2.isTarget("a", oid, 1) {
			if err := sn.request(proto.OpRead, 2, oid); !errors.Is(err, proto.StatusNotReady) {
				t.Errorf("read of %v, not placed on a, at epoch 2 after a completed it: %v, want NotReady", oid, err)
			}
		}
	}
	st, err := store.LoadRecoveryState(sn.st.Dir())
	if err != nil || st.Epoch != 2 || !st.PrevComplete || !st.HasCompleted(1) {
		t.Fatalf("saved state %+v, %v; want epoch 2, prev complete, 1 completed", st, err)
	}
	// a leaves: everything becomes stale, nothing is served.
	e3 := fc.add("b")
	if err := sn.r.catchUp(ctx, e3); err != nil {
		t.Fatal(err)
	}
	if n := sn.st.Stats().Objects; n != 0 {
		t.Fatalf("%d objects current on a node that is no member", n)
	}
	if err := sn.request(proto.OpRead, 3, oids[0]); !errors.Is(err, proto.StatusNotReady) {
		t.Fatalf("read at a node that is no member: %v, want NotReady", err)
	}
}

// A node restarted after epochs it was not a member of keeps what it held
// only as stale copies of its last epoch.
func TestStartAfterGapSupersedesEverything(t *testing.T) {
	fc := newFakeCluster([]string{"a"}, []string{"b"}, []string{"a", "b"})
	fc.vdis = []cluster.VDI{{ID: 1, Copies: 1}}
	sn := newSoloNode(t, "a", fc)
	oid := proto.NewObjectID(1, 7)
	if err := sn.st.WriteAt(oid, []byte("old"), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := store.SaveRecoveryState(sn.st.Dir(), recoveryState{Epoch: 1, Complete: true}); err != nil {
		t.Fatal(err)
	}
	if err := sn.r.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sn.st.Exists(oid) {
		t.Fatal("an object from before the gap is still current")
	}
	if e, ok := sn.st.StaleCopy(oid, 1); !ok || e != 1 {
		t.Fatalf("stale copy of the object: epoch %d, %v; want epoch 1", e, ok)
	}
	st, err := store.LoadRecoveryState(sn.st.Dir())
	if err != nil || st.Epoch != 3 || st.Complete || st.PrevComplete || !st.HasCompleted(1) {
		t.Fatalf("saved state %+v, %v", st, err)
	}
}

// FuzzServeRPCInCluster feeds arbitrary requests to the service of a node
// in a (fake) cluster, where data requests go through epoch admission and
// peers' reads and listings are answered: every reply is well formed.
func FuzzServeRPCInCluster(f *testing.F) {
	enc := func(r proto.Request) []byte { b, _ := r.AppendBinary(nil); return b }
	oid := proto.NewObjectID(1, 3)
	f.Add(enc(proto.Request{Op: proto.OpWrite, Epoch: 1, Object: oid, Offset: 10, Length: 3}), []byte("abc"))
	f.Add(enc(proto.Request{Op: proto.OpRead, Epoch: 1, Object: oid, Length: 4096}), []byte{})
	f.Add(enc(proto.Request{Op: proto.OpRead, Epoch: 2, Object: oid, Length: 4096}), []byte{})
	f.Add(enc(proto.Request{Op: proto.OpRemove, Epoch: 1, Object: proto.NewObjectID(9, 1)}), []byte{})
	f.Add(enc(proto.Request{Op: proto.OpReadPeer, Epoch: 0, Object: oid, Length: proto.MinObjectSize}), []byte{})
	f.Add(enc(proto.Request{Op: proto.OpReadPeer, Epoch: 1, Object: oid, Length: proto.MinObjectSize}), []byte{})
	f.Add(enc(proto.Request{Op: proto.OpListObjects, Flags: proto.FlagAllCopies, Length: 10}), []byte{})
	fc := newFakeCluster([]string{"a"})
	fc.vdis = []cluster.VDI{{ID: 1, Copies: 1}}
	sn := newSoloNode(f, "a", fc)
	if err := sn.r.start(context.Background()); err != nil {
		f.Fatal(err)
	}
	svc := NewService(sn.st, zerolog.Nop())
	svc.epochs.Store(sn.r)
	f.Fuzz(func(t *testing.T, hdr, body []byte) {
		var resp rpc.Response
		if err := svc.ServeRPC(context.Background(), &rpc.Request{Header: hdr, Body: body}, &resp); err != nil {
			t.Fatalf("ServeRPC returned %v", err)
		}
		var r proto.Response
		if err := r.UnmarshalBinary(resp.Header); err != nil {
			t.Fatalf("the node sent an undecodable reply: %v", err)
		}
		if int(r.Length) != len(resp.Body) {
			t.Fatalf("reply length %d, body %d bytes", r.Length, len(resp.Body))
		}
	})
}

// BenchmarkAdmit is the cost epochs add to each data request on a node
// that completed recovery: reads take the fast path, writes check
// placement.
func BenchmarkAdmit(b *testing.B) {
	fc := newFakeCluster([]string{"a"})
	fc.vdis = []cluster.VDI{{ID: 1, Copies: 1}}
	sn := newSoloNode(b, "a", fc)
	if err := sn.r.start(context.Background()); err != nil {
		b.Fatal(err)
	}
	waitForLong(b, "recovery of epoch 1", 5*time.Second, func() bool { return sn.r.complete.Load() })
	for _, op := range []proto.Op{proto.OpRead, proto.OpWrite} {
		b.Run(op.String(), func(b *testing.B) {
			req := &proto.Request{Op: op, Epoch: 1, Object: proto.NewObjectID(1, 5), Length: 4096}
			b.ReportAllocs()
			for b.Loop() {
				if err := sn.r.admit(context.Background(), req, false); err != nil {
					b.Fatal(err)
				}
				sn.r.release()
			}
		})
	}
}
