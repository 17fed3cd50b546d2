package sheep

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
)

// The cluster's real client (backend/sheep) writes while a node joins and
// then another dies and is removed: every acknowledged write reads back
// through the client afterwards, and every object is byte-identical on
// exactly its targets.
func TestRecoveryUnderTheClusterClient(t *testing.T) {
	tc, _ := newRecoveryCluster(t, recoverySetup{Copies: 2, Grace: time.Second, Members: []string{"n1", "n2", "n3"}})
	be, err := sheepbackend.Open(context.Background(), sheepbackend.Options{Cluster: tc.cl, VDI: "v", CallTimeout: time.Second, IOTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	image := make([]byte, tc.vdi.Size)
	rng := rand.New(rand.NewPCG(11, 12))
	w := startWrites(func() error {
		off := rng.Int64N(tc.vdi.Size/4096) * 4096
		p := randBytes(rng, 4096)
		if _, err := be.WriteAt(p, off); err != nil {
			return err
		}
		copy(image[off:], p)
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	tc.start("n4", 8*recoveryObjectSize)
	tc.waitMembers("n1", "n2", "n3", "n4")
	time.Sleep(500 * time.Millisecond)
	tc.kill("n2")
	e := tc.waitMembers("n1", "n3", "n4")
	time.Sleep(500 * time.Millisecond)
	writes, err := w.finish()
	if err != nil {
		t.Fatalf("client write failed: %v", err)
	}
	tc.waitRecovered(e)
	got := make([]byte, len(image))
	if _, err := be.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, image) {
		t.Fatal("the VDI read through the client differs from what it acknowledged")
	}
	zero := make([]byte, tc.objectSize)
	for i := range recoveryObjects {
		obj := image[i*tc.objectSize : (i+1)*tc.objectSize]
		if !bytes.Equal(obj, zero) {
			tc.model[tc.oid(i)] = obj
		}
	}
	tc.verify(e, recoveryObjects)
	t.Logf("%d client writes acknowledged across a join and a removal", writes)
}
