package sheep

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// start brings the node from its persisted state P to the cluster's epoch
// E (epochs.md, "Start"): transition by transition if the node was a member
// of every epoch in (P, E], else (a gap) everything it holds becomes stale
// and it recovers E from scratch. Data requests are refused until then.
func (r *recoverer) start(ctx context.Context) error {
	r.stop() // a failed start may have begun an epoch's recovery
	state, err := r.opts.LoadState()
	if err != nil {
		return fmt.Errorf("load recovery state: %w", err)
	}
	lc, err := r.cl.LastComplete(ctx)
	if err != nil {
		return fmt.Errorf("read recovery-complete epoch: %w", err)
	}
	r.lastComplete.Store(lc)
	// A previous run pruned stale copies below a recovery-complete epoch
	// it saw, never above today's: assume the worst.
	r.prunedBelow.Store(max(lc, state.PrunedBelow))
	e, err := r.cl.Epoch(ctx)
	if err != nil {
		return err
	}
	if e, err = r.leaveIfAmnesiac(ctx, e); err != nil {
		return err
	}
	target, err := r.epochs.add(e)
	if err != nil {
		return err
	}
	if err := r.checkAmnesia(ctx, lc, e.Number); err != nil {
		return err
	}
	if state.Epoch > e.Number {
		return fmt.Errorf("the node's recovery state is at epoch %d but the cluster at %d: is --etcd/--prefix the cluster this directory belongs to?", state.Epoch, e.Number)
	}
	pv, err := r.epochs.at(ctx, state.Epoch)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.state, r.cur, r.prev, r.loaded = state, pv, &epochView{}, true
	r.mu.Unlock()
	r.opts.SetEpoch(state.Epoch)

	if state.Epoch == e.Number {
		r.log.Info().Uint64("epoch", e.Number).Bool("complete", state.Complete).Msg("resuming at the node's epoch")
		before := &epochView{}
		if e.Number > 0 {
			if before, err = r.epochs.at(ctx, e.Number-1); err != nil {
				return err
			}
		}
		r.begin(before, target, state)
		return nil
	}
	contiguous := true
	for n := state.Epoch + 1; n <= e.Number; n++ {
		v, err := r.epochs.at(ctx, n)
		if err != nil {
			return err
		}
		if !v.has(r.self) {
			contiguous = false
			break
		}
	}
	if contiguous {
		for n := state.Epoch + 1; n <= e.Number; n++ {
			v, err := r.epochs.at(ctx, n)
			if err != nil {
				return err
			}
			if err := r.transition(ctx, v); err != nil {
				return err
			}
		}
		return nil
	}
	// A gap: the node missed epochs it was not a member of, so what it
	// holds may be outdated. Keep it only as stale copies valid through P.
	msg := "node missed epochs: its objects become stale copies; recovering from scratch"
	if state.Epoch == 0 {
		msg = "node has no recovery state (new, or from before epochs): any objects become stale copies"
	}
	r.log.Info().Uint64("node_epoch", state.Epoch).Uint64("epoch", e.Number).Bool("member", target.has(r.self)).Msg(msg)
	r.filesMu.Lock()
	err = r.st.SupersedeAll(state.Epoch)
	r.filesMu.Unlock()
	if err != nil {
		return fmt.Errorf("supersede all objects at epoch %d: %w", state.Epoch, err)
	}
	ns := recoveryState{Epoch: e.Number, Completed: addCompleted(state), PrunedBelow: r.prunedBelow.Load()}
	if err := r.opts.SaveState(ns); err != nil {
		return fmt.Errorf("save recovery state: %w", err)
	}
	r.begin(&epochView{}, target, ns)
	return nil
}

// addCompleted is s.Completed plus s.Epoch if the node completed it.
func addCompleted(s recoveryState) []uint64 {
	c := recoveryState{Completed: append([]uint64(nil), s.Completed...)}
	if s.Complete {
		c.MarkCompleted(s.Epoch)
	}
	return c.Completed
}

// follow applies every epoch change until ctx ends, skipped numbers one by
// one. A transition that fails (etcd unreachable, disk error) is retried.
func (r *recoverer) follow(ctx context.Context) {
	for e := range r.cl.WatchEpoch(ctx) {
		for {
			err := r.catchUp(ctx, e)
			if err == nil || ctx.Err() != nil {
				break
			}
			r.log.Error().Err(err).Uint64("epoch", e.Number).Msg("epoch transition failed; retrying")
			select {
			case <-ctx.Done():
				return
			case <-time.After(r.opts.RetryInterval):
			}
		}
	}
}

func (r *recoverer) catchUp(ctx context.Context, e cluster.Epoch) error {
	if _, err := r.epochs.add(e); err != nil {
		return err
	}
	for {
		r.mu.Lock()
		cur := r.cur.Number
		r.mu.Unlock()
		if cur >= e.Number {
			return nil
		}
		v, err := r.epochs.at(ctx, cur+1)
		if err != nil {
			return err
		}
		if err := r.transition(ctx, v); err != nil {
			return err
		}
	}
}

// transition moves the node from its epoch e-1 to next = e (epochs.md):
// requests of e-1 are refused from now on and those in flight finish, the
// recovery of e-1 stops, objects the node no longer holds under e become
// stale copies valid through e-1, the state is saved and recovery of e
// starts.
func (r *recoverer) transition(ctx context.Context, next *epochView) error {
	r.mu.Lock()
	prev, before := r.cur, r.prev
	if prev.Number+1 != next.Number {
		r.mu.Unlock()
		return fmt.Errorf("transition from epoch %d to %d: not the next epoch", prev.Number, next.Number)
	}
	// Requests for prev get WrongEpoch from now on, those for next
	// NotReady until it begins.
	r.serving = false
	r.cur = next
	r.opts.SetEpoch(next.Number)
	r.epochCancel()
	bg := r.bgDone
	for r.inflight > 0 {
		r.idle.Wait()
	}
	r.mu.Unlock()
	if bg != nil {
		<-bg
	}
	member := next.has(r.self)
	r.filesMu.Lock()
	err := r.supersedeFor(ctx, prev, next, member)
	r.filesMu.Unlock()
	if err != nil {
		// Nothing is admitted for prev any more and next is not begun:
		// the caller retries the transition.
		r.restartPrev(before, prev)
		return err
	}
	r.mu.Lock()
	old := r.state
	r.mu.Unlock()
	ns := recoveryState{
		Epoch:        next.Number,
		PrevComplete: prev.has(r.self) && old.Complete,
		Completed:    addCompleted(old),
		PrunedBelow:  r.prunedBelow.Load(),
	}
	if err := r.opts.SaveState(ns); err != nil {
		r.restartPrev(before, prev)
		return fmt.Errorf("save recovery state: %w", err)
	}
	r.log.Info().Uint64("epoch", next.Number).Uint64("was", prev.Number).Bool("member", member).
		Bool("prev_complete", ns.PrevComplete).Int("members", len(next.Members)).Msg("epoch transition")
	r.begin(prev, next, ns)
	return nil
}

// restartPrev goes back to prev after a failed transition step, so that
// the transition is retried from there.
func (r *recoverer) restartPrev(before, prev *epochView) {
	// Not begun again: some objects may have moved already, and prev's
	// recovery state (complete, say) no longer describes objects/. The
	// node serves no data until the retried transition succeeds; peers
	// are still answered (moved objects are stale copies of prev).
	r.mu.Lock()
	r.cur, r.prev = prev, before
	r.opts.SetEpoch(prev.Number)
	r.mu.Unlock()
}

// supersedeFor makes objects/ hold what the node holds under next: all of
// it becomes stale (valid through prev) if the node is not a member, else
// the objects it is no longer a target of.
func (r *recoverer) supersedeFor(ctx context.Context, prev, next *epochView, member bool) error {
	if !member {
		if err := r.st.SupersedeAll(prev.Number); err != nil {
			return fmt.Errorf("supersede all objects at epoch %d: %w", prev.Number, err)
		}
		return nil
	}
	if _, err := r.vdis.refresh(ctx); err != nil {
		return err
	}
	var moving []proto.ObjectID
	var unknown []proto.ObjectID
	r.st.Range(0, 0, func(oid proto.ObjectID) bool {
		copies, err := r.vdis.copies(ctx, oid.VDI())
		if errors.Is(err, errUnknownVDI) {
			unknown = append(unknown, oid)
			return true
		}
		if err == nil && !next.isTarget(r.self, oid, copies) {
			moving = append(moving, oid)
		}
		return true
	})
	// An object of a VDI the cluster no longer has is garbage: it goes
	// with the stale copies, pruned once the cluster has recovered.
	moving = append(moving, unknown...)
	for _, oid := range moving {
		if err := r.st.Supersede(oid, prev.Number); err != nil {
			return fmt.Errorf("supersede object %v at epoch %d: %w", oid, prev.Number, err)
		}
	}
	if len(moving) > 0 {
		r.log.Info().Int("objects", len(moving)).Uint64("epoch", next.Number).Msg("objects no longer placed here kept as stale copies")
	}
	return nil
}

// begin makes v the node's epoch with state s (prev is the epoch before
// v) and, if the node is a member that has not completed v, starts its
// background recovery.
func (r *recoverer) begin(prev, v *epochView, s recoveryState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state, r.cur, r.prev = s, v, prev
	r.absent = map[proto.ObjectID]struct{}{}
	r.epochCtx, r.epochCancel = context.WithCancel(context.Background())
	member := v.has(r.self)
	r.complete.Store(s.Complete && member)
	r.progress = RecoveryProgress{Epoch: v.Number, Member: member, Complete: s.Complete && member}
	r.lastReport = time.Time{}
	r.bytes.Store(0) // nothing of the previous epoch is pulling any more
	r.serving = member
	r.opts.SetEpoch(v.Number)
	r.bgDone = nil
	if member {
		done := make(chan struct{})
		r.bgDone = done
		go func(ctx context.Context) {
			defer close(done)
			r.background(ctx, v)
		}(r.epochCtx)
	}
}

// stop ends the recovery of the current epoch and waits for it.
func (r *recoverer) stop() {
	r.mu.Lock()
	r.serving = false
	r.epochCancel()
	bg := r.bgDone
	r.mu.Unlock()
	if bg != nil {
		<-bg
	}
}
