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

// The node orders the attempts of one update: a resend waits for an
// earlier attempt still in progress and is served after it; an attempt
// older than one already served is answered without being applied; other
// ids and writes without one are not held up.
func TestResentWriteWaitsForEarlierAttempt(t *testing.T) {
	n, err := NewNode(Options{Dir: t.TempDir(), ObjectSize: testObjectSize})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	svc := n.Service()
	ctx := context.Background()
	header := func(id uint64, attempt int, oid proto.ObjectID, data []byte) []byte {
		var aux uint64
		if id != 0 {
			aux = proto.WriteAux(id, attempt)
		}
		hdr, _ := (&proto.Request{Op: proto.OpWrite, Object: oid, Length: uint32(len(data)), Aux: aux}).AppendBinary(nil)
		return hdr
	}
	write := func(id uint64, attempt int, oid proto.ObjectID, data []byte) <-chan error {
		hdr := header(id, attempt, oid, data)
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
	wait := func(what string, c <-chan error) {
		t.Helper()
		select {
		case err := <-c:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no reply", what)
		}
	}
	content := func(oid proto.ObjectID) string {
		got := make([]byte, 8)
		if err := n.Store().ReadAt(oid, got, 0); err != nil {
			t.Fatal(err)
		}
		return string(bytes.TrimRight(got, "\x00"))
	}
	const held = 42
	// Attempt 1 of write 42 is in progress (held here as if it were
	// throttled in the node).
	if serve, err := svc.writes.enter(ctx, writeKey{1, held}, 1, false); err != nil || !serve {
		t.Fatalf("enter attempt 1: %v, %v", serve, err)
	}
	// Offered inline (on the connection's reader, which must not wait),
	// the resend is declined, for a worker to serve, and changes nothing.
	var resp rpc.Response
	req := &rpc.Request{Header: header(held, 2, 1, []byte("attempt2")), Body: []byte("attempt2")}
	if served, err := svc.ServeInline(ctx, req, &resp); served || err != nil {
		t.Fatalf("ServeInline of a resend while attempt 1 runs: served %v, err %v; want declined", served, err)
	}
	resend := write(held, 2, 1, []byte("attempt2"))
	wait("another write id", write(held+1, 1, 2, []byte("other id")))
	wait("the same id on another object", write(held, 2, 4, []byte("obj four")))
	wait("a write without id", write(0, 0, 3, []byte("no id"))) // an older client
	select {
	case err := <-resend:
		t.Fatalf("attempt 2 was served while attempt 1 was in progress (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	if n.Store().Exists(1) {
		t.Fatal("the held resend was applied")
	}
	svc.writes.leave(writeKey{1, held})
	wait("attempt 2 after attempt 1 ended", resend)
	if got := content(1); got != "attempt2" {
		t.Fatalf("object 1 after attempt 2: %q", got)
	}
	// The client acknowledged attempt 2 and wrote the blocks again (a new
	// write, a new id); then the stale attempt 1 arrives: it is answered
	// but not applied.
	wait("the newer write", write(held+2, 1, 1, []byte("newer!!!")))
	wait("stale attempt 1", write(held, 1, 1, []byte("stale!!!")))
	if got := content(1); got != "newer!!!" {
		t.Fatalf("object 1 after a stale attempt: %q, want the newer write", got)
	}
}

func TestWriteOrder(t *testing.T) {
	ctx := context.Background()
	var w writeOrder
	k := func(id uint64) writeKey { return writeKey{oid: 1, id: id} }
	enter := func(id uint64, attempt uint16) bool {
		t.Helper()
		serve, err := w.enter(ctx, k(id), attempt, false)
		if err != nil {
			t.Fatal(err)
		}
		return serve
	}

	// A waiter whose context ends gives up instead of waiting forever.
	enter(7, 1)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := w.enter(cctx, k(7), 2, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enter of a held id with an ending context: %v", err)
	}
	w.leave(k(7))
	if len(w.ids) != 0 {
		t.Fatalf("an id with only a first attempt is still known: %v", w.ids)
	}
	// First attempts allocate nothing once the map has room.
	if n := testing.AllocsPerRun(100, func() {
		w.enter(ctx, k(9), 1, false)
		w.leave(k(9))
	}); n != 0 {
		t.Errorf("enter+leave of a first attempt: %v allocations", n)
	}

	// Three attempts wait for a held first one; all get in, one at a
	// time, each either served or (older than one served) refused.
	enter(11, 1)
	var inside, most, served atomic.Int32
	var wg sync.WaitGroup
	for attempt := uint16(2); attempt <= 4; attempt++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve, err := w.enter(ctx, k(11), attempt, false)
			if err != nil || !serve {
				return
			}
			served.Add(1)
			if now := inside.Add(1); now > most.Load() {
				most.Store(now)
			}
			time.Sleep(5 * time.Millisecond)
			inside.Add(-1)
			w.leave(k(11))
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if inside.Load() != 0 {
		t.Fatal("a resend got in while the first attempt was in progress")
	}
	w.leave(k(11))
	wg.Wait()
	if most.Load() != 1 || served.Load() == 0 {
		t.Fatalf("%d attempts in progress at once, %d served", most.Load(), served.Load())
	}
	if enter(11, 3) {
		t.Fatal("attempt 3 served after attempt 4 started") // 4 always gets in: nothing newer exists
	}

	// A kept id is forgotten after keepFor, and beyond maxKept the oldest
	// go first.
	w2 := writeOrder{keepFor: time.Hour, maxKept: 2}
	for id := uint64(1); id <= 3; id++ {
		w2.enter(ctx, k(id), 2, false)
		w2.leave(k(id))
	}
	if _, ok := w2.ids[k(1)]; ok || len(w2.ids) != 2 {
		t.Fatalf("kept ids %v, want 2 and 3", w2.ids)
	}
	if serve, _ := w2.enter(ctx, k(1), 1, false); !serve {
		t.Fatal("an attempt of a forgotten id was refused")
	}
	w2.leave(k(1))
	w3 := writeOrder{keepFor: time.Millisecond}
	w3.enter(ctx, k(5), 2, false)
	w3.leave(k(5))
	time.Sleep(5 * time.Millisecond)
	w3.enter(ctx, k(6), 2, false)
	w3.leave(k(6)) // expires 5
	if _, ok := w3.ids[k(5)]; ok {
		t.Fatal("a kept id outlived keepFor")
	}
}
