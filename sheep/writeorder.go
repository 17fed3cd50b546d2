package sheep

import (
	"context"
	"sync"
)

// writeOrder serializes the attempts of one update (proto.Request.WriteID):
// an attempt is served only once no other attempt with its id is in
// progress on this node. A client resends an update it got no reply for
// in time while the first attempt may still be held here (waiting for the
// object's recovery, or throttled halfway through a multi-page write under
// memory pressure); the resend's reply then comes only after the first
// attempt is done, so no newer write the client issues after that reply
// can be overwritten by the old attempt finishing late.
type writeOrder struct {
	mu sync.Mutex
	// busy holds the id of every attempt in progress, with a channel
	// closed when it is done, made only once another attempt waits (nil
	// until then: the usual write allocates nothing here).
	busy map[uint64]chan struct{}
}

// enter waits until no attempt with id is in progress, then marks id in
// progress; leave must follow. It returns ctx's error if ctx ends first.
func (w *writeOrder) enter(ctx context.Context, id uint64) error {
	for {
		w.mu.Lock()
		done, held := w.busy[id]
		if !held {
			if w.busy == nil {
				w.busy = make(map[uint64]chan struct{})
			}
			w.busy[id] = nil
			w.mu.Unlock()
			return nil
		}
		if done == nil {
			done = make(chan struct{})
			w.busy[id] = done
		}
		w.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// leave ends the attempt with id that enter let in.
func (w *writeOrder) leave(id uint64) {
	w.mu.Lock()
	done := w.busy[id]
	delete(w.busy, id)
	w.mu.Unlock()
	if done != nil {
		close(done) // every waiter tries again; one gets in
	}
}
