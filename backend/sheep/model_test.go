package sheep_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/backend"
	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster/local"
)

// TestRandomOpsAgainstModel drives the async interface with random reads,
// writes, discards, write-zeroes and flushes, many in flight (never two on
// overlapping ranges, which the block layer leaves undefined), on a VDI of
// small objects so requests straddle object boundaries, and checks every
// read and the final content against an in-memory model.
func TestRandomOpsAgainstModel(t *testing.T) {
	t.Run("submit", func(t *testing.T) { randomOpsAgainstModel(t, false) })
	// SubmitPlugged holds requests until Unplug, as the ublk queue uses it:
	// batches of random sizes, unplugged before every wait.
	t.Run("plugged", func(t *testing.T) { randomOpsAgainstModel(t, true) })
}

func randomOpsAgainstModel(t *testing.T, plugged bool) {
	c, err := local.Start(context.Background(), local.Options{
		Dir: t.TempDir(), Nodes: 4, Copies: 2, ObjectSize: 64 << 10, NodeCapacity: 1 << 40,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 8 << 20
	createVDI(t, c, "m", size)
	// Generous call timeout: this test is about content, and a flush
	// (fsync of many objects) on a loaded machine can take seconds.
	b, err := sheepbackend.Open(context.Background(), sheepbackend.Options{Cluster: c.Client(), VDI: "m", CallTimeout: 30 * time.Second,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	model := make([]byte, size)
	rng := rand.New(rand.NewPCG(11, 12))

	const depth = 16
	done := make(waiter, depth)
	type op struct {
		req  *backend.Request
		want []byte // for reads: the model's bytes at submit time
	}
	ops := make([]*op, depth)
	for i := range ops {
		r := &backend.Request{Buf: make([]byte, 256<<10)}
		r.Bind(done, uint16(i))
		ops[i] = &op{req: r}
	}
	busy := map[*backend.Request]bool{}
	overlaps := func(off int64, n int) bool {
		for r := range busy {
			if r.Op != backend.OpFlush && off < r.Offset+int64(r.Length) && r.Offset < off+int64(n) {
				return true
			}
		}
		return false
	}
	complete := func() {
		if plugged {
			b.Unplug()
		}
		r := <-done
		delete(busy, r)
		var o *op
		for _, x := range ops {
			if x.req == r {
				o = x
			}
		}
		if r.Result < 0 {
			t.Fatalf("%v at %d+%d failed: %d", r.Op, r.Offset, r.Length, r.Result)
		}
		switch r.Op {
		case backend.OpRead:
			if !bytes.Equal(r.Buf[:r.Length], o.want) {
				t.Fatalf("read at %d+%d differs from the model", r.Offset, r.Length)
			}
		case backend.OpWrite:
			copy(model[r.Offset:], r.Buf[:r.Length])
		case backend.OpDiscard, backend.OpWriteZeroes:
			clear(model[r.Offset : r.Offset+int64(r.Length)])
		}
	}
	free := func() *op {
		for _, o := range ops {
			if !busy[o.req] {
				return o
			}
		}
		return nil
	}
	counts := map[backend.Op]int{}
	for i := 0; i < 1500; i++ {
		for len(busy) == depth {
			complete()
		}
		o := free()
		r := o.req
		n := (1 + rng.IntN(512)) * 512 // 512 B .. 256 KiB
		off := int64(rng.IntN((size-n)/512+1)) * 512
		for overlaps(off, n) {
			complete()
		}
		r.Offset, r.Length, r.FUA = off, n, false
		switch k := rng.IntN(20); {
		case k < 8:
			r.Op = backend.OpRead
			o.want = append(o.want[:0], model[off:off+int64(n)]...)
		case k < 16:
			r.Op = backend.OpWrite
			r.FUA = k == 15
			for j := range n {
				r.Buf[j] = byte(rng.Uint32())
			}
		case k < 18:
			r.Op = backend.OpDiscard
		case k < 19:
			r.Op = backend.OpWriteZeroes
		default:
			r.Op, r.Offset, r.Length = backend.OpFlush, 0, 0
		}
		counts[r.Op]++
		busy[r] = true
		if !plugged {
			b.Submit(r)
			continue
		}
		b.SubmitPlugged(r)
		if rng.IntN(4) == 0 {
			b.Unplug()
		}
	}
	for len(busy) > 0 {
		complete()
	}
	t.Logf("ops: %v", counts)
	got := make([]byte, size)
	if _, err := b.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, model) {
		t.Fatal("final content differs from the model")
	}
	// Both replicas of every object agree (whichever a read would use).
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for idx := uint32(0); idx < size/(64<<10); idx++ {
		var ref []byte
		holders := 0
		for i := range c.Nodes() {
			st := c.Node(i).Store()
			oid := newOID(b.VDI().ID, idx)
			if !st.Exists(oid) {
				continue
			}
			if err := st.ReadAt(oid, buf, 0); err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				ref = append([]byte(nil), buf...)
			} else if !bytes.Equal(ref, buf) {
				t.Fatalf("replicas of object %d differ", idx)
			}
			holders++
		}
		if holders != 0 && holders != 2 {
			t.Fatalf("object %d on %d nodes", idx, holders)
		}
		if holders == 2 && !bytes.Equal(ref, model[int(idx)*len(buf):int(idx+1)*len(buf)]) {
			t.Fatalf("object %d differs from the model", idx)
		}
	}
}
