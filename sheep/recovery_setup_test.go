package sheep

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
)

// The recovery tests' shared steps on testCluster: start a settled
// cluster with its VDI, write a pattern, and check the outcome once
// recovery is complete, so that each test reads as its scenario.

// recoverySetup is the cluster a recovery test starts from.
type recoverySetup struct {
	Copies int
	// Grace is how long a dead member stays in the membership.
	Grace time.Duration
	// Secret, if set, is required by the nodes of every client.
	Secret []byte
	// Members are started (recovery unthrottled) before the VDI is made.
	Members []string
}

// newRecoveryCluster formats a cluster on embedded etcd, starts
// s.Members, waits until they are the membership with its recovery
// complete, and creates the test's VDI of recoveryObjects objects. It
// returns the cluster and that epoch.
func newRecoveryCluster(t *testing.T, s recoverySetup) (*testCluster, cluster.Epoch) {
	t.Helper()
	tc := newTestCluster(t, s.Copies, s.Grace)
	tc.secret = s.Secret
	for _, id := range s.Members {
		tc.start(id, 0)
	}
	e := tc.waitMembers(slices.Clone(s.Members)...)
	tc.waitRecovered(e)
	tc.createVDI(recoveryObjects)
	return tc, e
}

// startThree is the common start: n1..n3, copies=2, random data written
// and checked in place. The returned rng continues the data's sequence.
func startThree(t *testing.T, grace time.Duration) (*testCluster, *rand.Rand) {
	t.Helper()
	tc, e := newRecoveryCluster(t, recoverySetup{Copies: 2, Grace: grace, Members: []string{"n1", "n2", "n3"}})
	rng := rand.New(rand.NewPCG(1, 2))
	tc.writeRandom(e, rng, recoveryObjects)
	tc.verify(e, recoveryObjects)
	return tc, rng
}

// writeEvery writes 4 KiB of random data at off in every object of the
// VDI, at epoch e.
func (tc *testCluster) writeEvery(e cluster.Epoch, rng *rand.Rand, off int) {
	tc.t.Helper()
	for i := range recoveryObjects {
		tc.write(e, i, randBytes(rng, 4096), off)
	}
}

// checkRecovered waits until the recovery of e is complete, then checks
// that every object is on exactly its targets under e, byte-identical to
// what was written, and reads back whole through every member.
func (tc *testCluster) checkRecovered(e cluster.Epoch) {
	tc.t.Helper()
	tc.waitRecovered(e)
	tc.verify(e, recoveryObjects)
	for _, id := range memberIDs(e) {
		tc.readAllVia(id, e, recoveryObjects)
	}
}

// backgroundWrites runs one write after another on a goroutine of its own
// while a test changes the cluster, until finish.
type backgroundWrites struct {
	stop chan struct{}
	done chan error
	n    int // writes acknowledged; read after done
}

// startWrites calls write until finish or its first error.
func startWrites(write func() error) *backgroundWrites {
	w := &backgroundWrites{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			if err := write(); err != nil {
				w.done <- err
				return
			}
			w.n++
		}
	}()
	return w
}

// finish stops the writes and returns how many were acknowledged and the
// error that ended them early, if one did.
func (w *backgroundWrites) finish() (int, error) {
	close(w.stop)
	err := <-w.done
	return w.n, err
}
