package sheep

import (
	"context"
	"sync"
	"time"

	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

// writeOrder orders the attempts of one update (proto.Request.WriteID) on
// this node: an attempt is served only once no other attempt with its id
// is in progress, and an attempt older than one already started is not
// served at all. A client resends an update it got no reply for in time,
// with the next attempt number, while the earlier attempt may still be
// held here: waiting for the object's recovery, throttled halfway through
// a multi-page write under memory pressure, or not even read yet from a
// connection the client gave up on. Without the order the resend could be
// acknowledged first, and the old attempt would then overwrite whatever
// newer write the client made to the same blocks after that reply.
//
// An id whose attempts were all first attempts is forgotten when the
// attempt ends. An id that saw a resend is kept (keepFor, at most maxKept
// of them, oldest dropped first): its older attempts may still arrive.
type writeOrder struct {
	mu   sync.Mutex
	ids  map[writeKey]writeState
	kept []keptID // ids kept after a resend, oldest first, from head
	head int

	keepFor time.Duration // 0: defaultKeepFor
	maxKept int           // 0: defaultMaxKept
}

// A stale attempt waits at most as long as a node's requests can be held
// up; ten minutes is far past the io-timeout any client uses. 64k kept
// ids cost a few MiB at most, and only resends (faults) add them.
const (
	defaultKeepFor = 10 * time.Minute
	defaultMaxKept = 1 << 16
)

type writeState struct {
	newest  uint16 // the newest attempt started
	running bool   // an attempt is in progress
	keptAt  int64  // when the id was last kept (UnixNano), 0 if not kept
	// done is closed when the running attempt ends; made only once
	// another attempt waits, so the usual write allocates nothing here.
	done chan struct{}
}

// writeKey names an update: its write id, with its object, so that even
// two clients whose ids met could not hold up or refuse each other's
// writes unless they also wrote the same object.
type writeKey struct {
	oid proto.ObjectID
	id  uint64
}

type keptID struct {
	key writeKey
	at  int64
}

// enter lets attempt of update id in: it waits while another attempt of
// id is in progress, then reports serve true (leave must follow), or
// false when a newer attempt already started (this one must not be
// applied). It returns ctx's error if ctx ends while it waits. With nowait
// it does not wait: store.ErrWouldWait instead (a request served inline,
// which must not hold up its connection's reader).
func (w *writeOrder) enter(ctx context.Context, id writeKey, attempt uint16, nowait bool) (serve bool, err error) {
	for {
		w.mu.Lock()
		st, known := w.ids[id]
		switch {
		case known && attempt < st.newest:
			w.mu.Unlock()
			return false, nil
		case !st.running:
			st.running, st.newest = true, max(st.newest, attempt)
			if w.ids == nil {
				w.ids = make(map[writeKey]writeState)
			}
			w.ids[id] = st
			w.mu.Unlock()
			return true, nil
		}
		if nowait {
			w.mu.Unlock()
			return false, store.ErrWouldWait
		}
		if st.done == nil {
			st.done = make(chan struct{})
			w.ids[id] = st
		}
		done := st.done
		w.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// leave ends the attempt of id that enter let in.
func (w *writeOrder) leave(id writeKey) {
	w.mu.Lock()
	st := w.ids[id]
	done := st.done
	if st.newest <= 1 {
		delete(w.ids, id) // first attempts only: nothing older can come
	} else {
		now := time.Now().UnixNano()
		st.running, st.done, st.keptAt = false, nil, now
		w.ids[id] = st
		w.kept = append(w.kept, keptID{id, now})
		w.expireLocked(now)
	}
	w.mu.Unlock()
	if done != nil {
		close(done) // every waiter tries again
	}
}

// expireLocked forgets kept ids past keepFor, and the oldest beyond
// maxKept.
func (w *writeOrder) expireLocked(now int64) {
	keepFor, maxKept := w.keepFor, w.maxKept
	if keepFor == 0 {
		keepFor = defaultKeepFor
	}
	if maxKept == 0 {
		maxKept = defaultMaxKept
	}
	for w.head < len(w.kept) {
		k := w.kept[w.head]
		if now-k.at < int64(keepFor) && len(w.kept)-w.head <= maxKept {
			break
		}
		w.head++
		// Only the id's latest keep forgets it, and never while an
		// attempt runs.
		if st, ok := w.ids[k.key]; ok && !st.running && st.keptAt == k.at {
			delete(w.ids, k.key)
		}
	}
	if w.head > len(w.kept)/2 {
		w.kept = append(w.kept[:0], w.kept[w.head:]...)
		w.head = 0
	}
}
