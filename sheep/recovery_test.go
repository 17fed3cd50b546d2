package sheep

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

const recoveryObjects = 48

// (a) A fourth node joins: it pulls what it now holds, reads through it
// during its recovery give the written data (pull-on-access), and once
// recovery completes every object is on exactly its targets.
func TestRecoveryNodeJoins(t *testing.T) {
	tc, _ := startThree(t, time.Second)
	// Slow background recovery (2 objects/s), so reads race it.
	tc.start("n4", 2*recoveryObjectSize)
	e := tc.waitMembers("n1", "n2", "n3", "n4")
	n4 := tc.node("n4")
	if p := n4.Recovery(); p.Complete {
		t.Fatalf("n4 completed recovery of %d objects at once despite the bandwidth limit: %+v", recoveryObjects, p)
	}
	if got := tc.readAllVia("n4", e, recoveryObjects); got < 5 {
		t.Fatalf("only %d objects are placed on n4", got)
	}
	if p := n4.Recovery(); p.Complete {
		t.Log("n4 completed before the reads ended: pull-on-access was only partly exercised")
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		tc.readAllVia(id, e, recoveryObjects)
	}
	tc.checkRecovered(e)
	statuses, err := tc.cl.RecoveryStatuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range memberIDs(e) {
		if s := statuses[id]; !s.CompleteFor(e.Number) || s.Node != id || s.Waiting != "" || s.Done > s.Total {
			t.Errorf("recovery status of %s: %+v; want complete for epoch %d", id, s, e.Number)
		}
	}
	if s := statuses["n4"]; s.Bytes == 0 {
		t.Errorf("n4 reports %d bytes recovered", s.Bytes)
	}
	waitForLong(t, "stale copies pruned", 10*time.Second, func() bool {
		for _, id := range memberIDs(e) {
			for i := range recoveryObjects {
				if _, ok := tc.node(id).Store().StaleCopy(tc.oid(i), 0); ok {
					return false
				}
			}
		}
		return true
	})
}

// (b) A member dies: after the grace the membership controller removes it
// and the survivors re-replicate its objects to two copies.
func TestRecoveryMemberRemoved(t *testing.T) {
	tc, _ := startThree(t, time.Second)
	tc.kill("n2")
	tc.checkRecovered(tc.waitMembers("n1", "n3"))
}

// (c) A node killed during its recovery resumes and completes after a
// restart.
func TestRecoveryResumesAfterRestart(t *testing.T) {
	tc, _ := startThree(t, 5*time.Second)
	tc.start("n4", 4*recoveryObjectSize)
	e := tc.waitMembers("n1", "n2", "n3", "n4")
	waitForLong(t, "n4 to pull some objects", 10*time.Second, func() bool { return tc.node("n4").Recovery().Done > 0 })
	if tc.node("n4").Recovery().Complete {
		t.Fatal("n4 completed before it could be killed")
	}
	tc.kill("n4")
	tc.start("n4", 0)
	if got := tc.waitMembers("n1", "n2", "n3", "n4"); got.Number != e.Number {
		t.Fatalf("n4's restart changed the epoch to %d (grace too short?)", got.Number)
	}
	tc.checkRecovered(e)
}

// (d) A node removed while down comes back with its old data: its old
// copies are stale, never served; reads through it give the data written
// while it was away.
func TestRecoveryRemovedNodeReturnsWithOldData(t *testing.T) {
	tc, rng := startThree(t, time.Second)
	tc.kill("n3")
	e := tc.waitMembers("n1", "n2")
	tc.waitRecovered(e)
	tc.writeEvery(e, rng, 0) // new data everywhere while n3 is out
	// n3's directory still holds the old data as current objects.
	st, err := store.Open(tc.dirs["n3"], store.Options{ObjectSize: recoveryObjectSize, AllowedEntries: []string{idFile}})
	if err != nil {
		t.Fatal(err)
	}
	old := 0
	buf := make([]byte, recoveryObjectSize)
	for i := range recoveryObjects {
		if st.Exists(tc.oid(i)) {
			if err := st.ReadAt(tc.oid(i), buf, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, tc.model[tc.oid(i)]) {
				old++
			}
		}
	}
	st.Close()
	if old == 0 {
		t.Fatal("n3's directory holds no outdated object: the test proves nothing")
	}
	// Back: the old copies become stale (and are pruned at once, the
	// cluster having recovered since), never served.
	tc.start("n3", 4*recoveryObjectSize)
	e = tc.waitMembers("n1", "n2", "n3")
	if checked := tc.readAllVia("n3", e, recoveryObjects); checked < 5 {
		t.Fatalf("only %d objects placed on n3", checked)
	}
	tc.checkRecovered(e)
}

// (f) Sources that cannot be reached block recovery of their objects:
// reads through the new target say NotReady, never zeros, and succeed once
// the source is back.
func TestRecoveryBlockedWhileSourcesUnreachable(t *testing.T) {
	// One copy; nobody is removed.
	tc, e := newRecoveryCluster(t, recoverySetup{Copies: 1, Grace: time.Minute, Members: []string{"n1", "n2"}})
	tc.writeEvery(e, rand.New(rand.NewPCG(3, 4)), 4096)
	old := e
	tc.kill("n1")
	tc.start("n3", 0)
	e = tc.waitMembers("n1", "n2", "n3")
	blocked := 0
	for i := range recoveryObjects {
		oid := tc.oid(i)
		if tc.targets(e, oid)[0] != "n3" || tc.targets(old, oid)[0] != "n1" {
			continue
		}
		_, b, err := retryWrongEpoch(func() (proto.Response, []byte, error) {
			b, err := tc.read("n3", e, i)
			return proto.Response{}, b, err
		})
		if !errors.Is(err, proto.StatusNotReady) {
			t.Fatalf("read %v through n3 while its only source n1 is down: %v (%d bytes), want NotReady", oid, err, len(b))
		}
		blocked++
	}
	if blocked == 0 {
		t.Fatal("no object moved from n1 to n3: the test proves nothing")
	}
	waitForLong(t, "n3 to report why it waits", 10*time.Second, func() bool {
		p := tc.node("n3").Recovery()
		return p.Waiting != "" && !p.Complete
	})
	if p := tc.node("n3").Recovery(); p.Complete {
		t.Fatalf("n3 completed recovery with its source down: %+v", p)
	}
	tc.start("n1", 0)
	tc.checkRecovered(e)
	if got := tc.readAllVia("n3", e, recoveryObjects); got != blocked && got < blocked {
		t.Fatalf("read %d objects through n3, want at least %d", got, blocked)
	}
}

// (e) and (f) on the walk-back itself.
type fakeSources struct {
	targets map[uint64][]string
	answers map[string]peerAnswer // "node@epoch"
	asked   []string
}

func (f *fakeSources) sourcesAt(_ context.Context, e uint64, _ proto.ObjectID) ([]string, error) {
	return f.targets[e], nil
}

func (f *fakeSources) ask(_ context.Context, s string, _ proto.ObjectID, e uint64, buf []byte) peerAnswer {
	k := s + "@" + string(rune('0'+e))
	f.asked = append(f.asked, k)
	a := f.answers[k]
	if a == answerData {
		copy(buf, k)
	}
	return a
}

func TestWalkBack(t *testing.T) {
	ctx := context.Background()
	buf := make([]byte, 8)
	// Recovering epoch 5: the targets of 4 (n4, n5) had not recovered X
	// yet (NotReady); the targets of 3 have it.
	f := &fakeSources{
		targets: map[uint64][]string{4: {"n4", "n5"}, 3: {"n1", "n2"}, 2: {"n1", "n2"}},
		answers: map[string]peerAnswer{"n4@4": answerUnknown, "n5@4": answerUnknown, "n1@3": answerUnreachable, "n2@3": answerData},
	}
	out, err := walkBack(ctx, 1, 5, 2, f, buf)
	if err != nil || !out.Found || out.Epoch != 3 || out.Source != "n2" || string(buf[:4]) != "n2@3" {
		t.Fatalf("walk-back = %+v, %v, buf %q; want n2's copy at epoch 3", out, err, buf)
	}
	// Every source of an epoch unreachable: blocked, never absent.
	f = &fakeSources{
		targets: map[uint64][]string{4: {"n4", "n5"}, 3: {"n1", "n2"}},
		answers: map[string]peerAnswer{"n4@4": answerUnknown, "n5@4": answerUnreachable},
	}
	if out, err = walkBack(ctx, 1, 5, 3, f, buf); !errors.Is(err, errBlocked) {
		t.Fatalf("walk-back with epoch 3's sources unreachable = %+v, %v; want blocked", out, err)
	}
	// An authoritative NotFound ends the walk: absent.
	f = &fakeSources{
		targets: map[uint64][]string{4: {"n4", "n5"}},
		answers: map[string]peerAnswer{"n4@4": answerUnreachable, "n5@4": answerAbsent},
	}
	if out, err = walkBack(ctx, 1, 5, 1, f, buf); err != nil || out.Found {
		t.Fatalf("walk-back with an authoritative NotFound = %+v, %v; want absent", out, err)
	}
	// NotReady down to the floor: no write was ever acknowledged: absent.
	f = &fakeSources{
		targets: map[uint64][]string{4: {"n4"}, 3: {"n3"}},
		answers: map[string]peerAnswer{"n4@4": answerUnknown, "n3@3": answerUnknown},
	}
	if out, err = walkBack(ctx, 1, 5, 3, f, buf); err != nil || out.Found || !slices.Equal(f.asked, []string{"n4@4", "n3@3"}) {
		t.Fatalf("walk-back to the floor = %+v, %v, asked %v; want absent after asking epochs 4 and 3", out, err, f.asked)
	}
	// The first epoch has nothing before it.
	if out, err = walkBack(ctx, 1, 1, 0, &fakeSources{}, buf); err != nil || out.Found {
		t.Fatalf("walk-back from epoch 1 = %+v, %v", out, err)
	}
}

// (e) An object whose targets of E-1 had not recovered it yet is found at
// E-2: with one copy, n3 joins (E-1) and barely recovers (1 byte/s), then
// n4 joins (E); objects that moved n1/n2 -> n3 -> n4 come from n1/n2.
func TestRecoveryWalksBackPastUnrecoveredEpoch(t *testing.T) {
	tc, e0 := newRecoveryCluster(t, recoverySetup{Copies: 1, Grace: time.Minute, Members: []string{"n1", "n2"}})
	tc.writeEvery(e0, rand.New(rand.NewPCG(5, 6)), 0)
	tc.start("n3", 1)
	e1 := tc.waitMembers("n1", "n2", "n3")
	tc.start("n4", 1)
	e2 := tc.waitMembers("n1", "n2", "n3", "n4")
	waitForLong(t, "n3 at the last epoch", 10*time.Second, func() bool { return tc.node("n3").Recovery().Epoch == e2.Number })
	walked := 0
	for i := range recoveryObjects {
		oid := tc.oid(i)
		if tc.targets(e2, oid)[0] != "n4" || tc.targets(e1, oid)[0] != "n3" {
			continue
		}
		n3 := tc.node("n3").Store()
		_, stale := n3.StaleCopy(oid, e1.Number)
		if !n3.Exists(oid) && !stale {
			walked++ // n3 never got it: n4 must find it at e0
		}
		_, b, err := retryNotReady(func() (proto.Response, []byte, error) {
			b, err := tc.read("n4", e2, i)
			return proto.Response{}, b, err
		})
		if err != nil || !bytes.Equal(b, tc.model[oid]) {
			t.Fatalf("read %v through n4: %v, data equal %v", oid, err, bytes.Equal(b, tc.model[oid]))
		}
	}
	if walked == 0 {
		t.Fatal("no object moved n1/n2 -> n3 -> n4 without n3 recovering it: the test proves nothing")
	}
	t.Logf("%d objects found two epochs back", walked)
}

// A node that has not loaded its recovery state yet must not tell a peer
// "no copy here" (NotReady): the peer would walk past the epoch and could
// conclude an object absent that this node holds.
func TestPeerAnswerBeforeStateLoaded(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{ObjectSize: recoveryObjectSize})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	oid := proto.NewObjectID(1, 0)
	if err := st.WriteAt(oid, []byte("data"), 0, false); err != nil {
		t.Fatal(err)
	}
	r := newRecoverer(recoveryOptions{Self: "n1", Store: st})
	buf := make([]byte, recoveryObjectSize)
	a, _, err := r.answerPeer(context.Background(), oid, 2, buf)
	if a == answerUnknown || a == answerAbsent || !errors.Is(err, proto.StatusWrongEpoch) {
		t.Fatalf("answer before the state is loaded: %v, %v; want no answer (WrongEpoch)", a, err)
	}
	// At epoch 2: its copy is the answer for epoch 1, and none yet for
	// epoch 2, which the node has not left.
	r.mu.Lock()
	r.state, r.loaded = recoveryState{Epoch: 2}, true
	r.mu.Unlock()
	a, through, err := r.answerPeer(context.Background(), oid, 1, buf)
	if a != answerData || through != 2 || err != nil || string(buf[:4]) != "data" {
		t.Fatalf("answer for epoch 1 at epoch 2: %v through %d, %v", a, through, err)
	}
	for _, e := range []uint64{2, 3} {
		if a, _, err = r.answerPeer(context.Background(), oid, e, buf); a == answerUnknown || a == answerAbsent || !errors.Is(err, proto.StatusWrongEpoch) {
			t.Fatalf("answer for epoch %d at a node at 2: %v, %v; want none yet", e, a, err)
		}
	}
	// No copy, recovery of epoch 1 not completed: "no copy here".
	if a, _, err = r.answerPeer(context.Background(), proto.NewObjectID(1, 1), 1, buf); a != answerUnknown || err != nil {
		t.Fatalf("answer for a missing object: %v, %v; want unknown", a, err)
	}
}

// A client keeps writing while the membership changes: each write is
// acknowledged only when every target of one epoch took it (re-planned on
// WrongEpoch/NotReady, as the sheep backend does). Afterwards every
// object is byte-identical to what was acknowledged, on exactly its
// targets.
func TestRecoveryWithWritesDuringChange(t *testing.T) {
	for _, tt := range []struct {
		name    string
		change  func(tc *testCluster)
		members []string
	}{
		{"join", func(tc *testCluster) { tc.start("n4", 8*recoveryObjectSize) }, []string{"n1", "n2", "n3", "n4"}},
		{"remove", func(tc *testCluster) { tc.kill("n2") }, []string{"n1", "n3"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc, rng := startThree(t, time.Second)
			w := startWrites(func() error {
				i := rng.IntN(recoveryObjects)
				off := rng.IntN(recoveryObjectSize/4096) * 4096
				return tc.writeReplanned(i, randBytes(rng, 4096), off)
			})
			time.Sleep(200 * time.Millisecond)
			tt.change(tc)
			e := tc.waitMembers(tt.members...)
			time.Sleep(time.Second)
			writes, err := w.finish()
			if err != nil {
				t.Fatal(err)
			}
			tc.checkRecovered(e)
			t.Logf("%d writes acknowledged across the change", writes)
		})
	}
}

// Nodes that require the cluster secret of their clients reach each other
// with it: recovery works in a secured cluster.
func TestRecoveryWithClusterSecret(t *testing.T) {
	tc, e := newRecoveryCluster(t, recoverySetup{Copies: 2, Grace: time.Second,
		Secret: []byte("0123456789abcdef0123456789abcdef"), Members: []string{"n1", "n2"}})
	tc.writeRandom(e, rand.New(rand.NewPCG(9, 10)), recoveryObjects)
	tc.start("n3", 0)
	tc.checkRecovered(tc.waitMembers("n1", "n2", "n3"))
}

// A member whose directory was wiped comes back with its id and nothing
// else, within the grace: it leaves the membership and rejoins (two new
// epochs), so that it recovers from an epoch without it; it never vouches
// for "no copy here" for the epochs its previous incarnation was a member
// of (a recovering peer would skip the copies that one held).
func TestRecoveryMemberWithWipedDirectory(t *testing.T) {
	tc, _ := startThree(t, 5*time.Second)
	old := tc.epoch()
	tc.kill("n2")
	if err := os.RemoveAll(tc.dirs["n2"]); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tc.dirs["n2"], 0o700); err != nil {
		t.Fatal(err)
	}
	n2 := tc.start("n2", 0)
	var e cluster.Epoch
	waitForLong(t, "n2 to leave and rejoin", 20*time.Second, func() bool {
		e = tc.epoch()
		return e.Number >= old.Number+2 && slices.Equal(memberIDs(e), []string{"n1", "n2", "n3"})
	})
	waitForLong(t, "n2 to start", 10*time.Second, func() bool {
		r := n2.recoverer()
		return r != nil && r.distrustBelow.Load() != 0
	})
	if got := n2.recoverer().distrustBelow.Load(); got <= old.Number {
		t.Fatalf("n2 distrusts epochs below %d, want above %d", got, old.Number)
	}
	buf := make([]byte, recoveryObjectSize)
	a, _, err := n2.recoverer().answerPeer(context.Background(), proto.NewObjectID(tc.vdi.ID, 1000), old.Number, buf)
	if a == answerUnknown || a == answerAbsent || !errors.Is(err, proto.StatusWrongEpoch) {
		t.Fatalf("n2 asked about epoch %d after losing its directory: %v, %v; want no answer", old.Number, a, err)
	}
	tc.checkRecovered(tc.waitMembers("n1", "n2", "n3"))
}
