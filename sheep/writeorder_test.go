package sheep

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// A resent update waits for the attempt with its write id that the node
// still holds, and only then is served; other ids and writes without one
// are not held up; a waiter whose context ends gives up.
func TestResentWriteWaitsForEarlierAttempt(t *testing.T) {
	n, err := NewNode(Options{Dir: t.TempDir(), ObjectSize: testObjectSize})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	svc := n.Service()
	ctx := context.Background()
	write := func(id uint64, oid proto.ObjectID, data []byte) <-chan error {
		hdr, _ := (&proto.Request{Op: proto.OpWrite, Object: oid, Length: uint32(len(data)), Aux: id}).AppendBinary(nil)
		done := make(chan error, 1)
		go func() {
			var resp rpc.Response
			if err := svc.ServeRPC(ctx, &rpc.Request{Header: hdr, Body: data}, &resp); err != nil {
				done <- err
				return
			}
			var r proto.Response
			if err := r.UnmarshalBinary(resp.Header); err != nil {
				done <- err
				return
			}
			done <- r.Err(resp.Body)
		}()
		return done
	}
	const held = 42
	// The first attempt of write 42 is in progress (held here as if it
	// were waiting in the node).
	if err := svc.writes.enter(ctx, held); err != nil {
		t.Fatal(err)
	}
	resend := write(held, 1, []byte("resend!!"))
	other := write(held+1, 2, []byte("other id"))
	plain := write(0, 3, []byte("no id...")) // an older client: no id
	for name, c := range map[string]<-chan error{"another write id": other, "a write without id": plain} {
		select {
		case err := <-c:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was held up by write %d", name, held)
		}
	}
	select {
	case err := <-resend:
		t.Fatalf("the resend of write %d was served while an earlier attempt was in progress (err %v)", held, err)
	case <-time.After(200 * time.Millisecond):
	}
	if n.Store().Exists(1) {
		t.Fatal("the held resend was applied")
	}
	svc.writes.leave(held)
	select {
	case err := <-resend:
		if err != nil {
			t.Fatalf("resend after the first attempt ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the resend stayed held after the first attempt ended")
	}
	got := make([]byte, 8)
	if err := n.Store().ReadAt(1, got, 0); err != nil || !bytes.Equal(got, []byte("resend!!")) {
		t.Fatalf("object 1 after the resend: %q, %v", got, err)
	}

	// A waiter whose context ends gives up instead of waiting forever.
	var w writeOrder
	if err := w.enter(ctx, 7); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := w.enter(cctx, 7); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enter of a held id with an ending context: %v", err)
	}
	w.leave(7)
	if err := w.enter(ctx, 7); err != nil {
		t.Fatalf("enter after leave: %v", err)
	}
	w.leave(7)
	if len(w.busy) != 0 {
		t.Fatalf("%d ids left marked busy", len(w.busy))
	}
	// An attempt nobody waits for allocates nothing once the map has room.
	if n := testing.AllocsPerRun(100, func() {
		w.enter(ctx, 9)
		w.leave(9)
	}); n != 0 {
		t.Errorf("enter+leave with no waiter: %v allocations", n)
	}

	// Three resends of one held write: all wait, and all get in, one at a
	// time, once it is done.
	if err := w.enter(ctx, 11); err != nil {
		t.Fatal(err)
	}
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.enter(ctx, 11); err != nil {
				t.Error(err)
				return
			}
			now := inside.Add(1)
			if now > most.Load() {
				most.Store(now)
			}
			time.Sleep(5 * time.Millisecond)
			inside.Add(-1)
			w.leave(11)
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if inside.Load() != 0 {
		t.Fatal("a resend got in while the first attempt was in progress")
	}
	w.leave(11)
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d attempts of one write in progress at once", most.Load())
	}
}
