package sheep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// reportEvery bounds how often progress is written to etcd.
const reportEvery = time.Second

// recoveryWorkers is how many objects background recovery pulls at once.
const recoveryWorkers = 4

// waitingLogEvery rate-limits the warning that recovery is stuck.
const waitingLogEvery = 30 * time.Second

// maxWaiting bounds the reason a recovery is stuck, as reported.
const maxWaiting = 400

// background recovers every object the node holds under v that it does not
// have yet, then marks v complete. It is restartable: a pass recomputes
// what is missing (presence means done), so a node that restarts resumes.
func (r *recoverer) background(ctx context.Context, v *epochView) {
	if !r.complete.Load() {
		started := time.Now()
		warned := time.Now() // a recovery stuck for a while is worth a warning, not one waiting for peers to settle
		for pass := 0; ; pass++ {
			done, err := r.recoverPass(ctx, v, pass == 0)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				r.setWaiting(err.Error())
			}
			if done {
				break
			}
			if p := r.Progress(); p.Waiting != "" && time.Since(warned) >= waitingLogEvery {
				warned = time.Now()
				r.log.Warn().Uint64("epoch", v.Number).Int64("done", p.Done).Int64("total", p.Total).Str("waiting", p.Waiting).
					Msg("recovery stuck; retrying")
			}
			r.report(ctx, false)
			select {
			case <-ctx.Done():
				return
			case <-time.After(r.opts.RetryInterval):
			}
		}
		if !r.finish(ctx, v) {
			return
		}
		p := r.Progress()
		r.log.Info().Uint64("epoch", v.Number).Int64("objects", p.Done).Int64("bytes", p.Bytes).
			Dur("took", time.Since(started)).Msg("recovery complete on this node")
	}
	r.report(ctx, true)
	r.markComplete(ctx, v.Number)
}

// setWaiting records why recovery is stuck (cut to maxWaiting bytes: it
// goes to etcd).
func (r *recoverer) setWaiting(why string) {
	if len(why) > maxWaiting {
		why = why[:maxWaiting] + "..."
	}
	r.mu.Lock()
	r.progress.Waiting = why
	r.mu.Unlock()
}

// recoverPass lists what the node must hold under v and pulls what it
// lacks (first: the epoch's first pass, which is logged). done: the listing was complete and nothing is left.
func (r *recoverer) recoverPass(ctx context.Context, v *epochView, first bool) (done bool, err error) {
	if lc, err := r.cl.LastComplete(ctx); err == nil {
		r.raiseLastComplete(lc)
	}
	oids, waiting, err := r.listCandidates(ctx, v)
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	r.progress.Total = r.progress.Done + int64(len(oids))
	prev, prevComplete := r.prev, r.state.PrevComplete
	r.mu.Unlock()
	r.setWaiting(waiting)
	if first {
		r.log.Info().Uint64("epoch", v.Number).Int("objects", len(oids)).Msg("recovering the objects this node holds now")
	}
	var (
		blockedMu sync.Mutex
		blocked   []string
	)
	// A few pulls at once: each waits on a peer and on fsyncs.
	var g errgroup.Group
	g.SetLimit(recoveryWorkers)
	for _, oid := range oids {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			copies, err := r.vdis.copies(ctx, oid.VDI())
			if err != nil {
				return nil // its VDI is gone meanwhile
			}
			if !(prevComplete && prev.isTarget(r.self, oid, copies)) {
				n, err := r.pull(ctx, ctx, v, oid, copies)
				if err != nil {
					if ctx.Err() == nil {
						blockedMu.Lock()
						blocked = append(blocked, err.Error())
						blockedMu.Unlock()
					}
					return nil
				}
				if err := r.throttle(ctx, n); err != nil {
					return nil
				}
			}
			r.mu.Lock()
			r.progress.Done++
			r.progress.Bytes = r.bytes.Load()
			r.mu.Unlock()
			r.report(ctx, false)
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		return false, nil
	}
	if len(blocked) > 0 {
		r.setWaiting(fmt.Sprintf("%d objects blocked, e.g. %s", len(blocked), blocked[0]))
		return false, nil
	}
	return waiting == "", nil
}

// throttle waits until n more bytes fit the recovery bandwidth.
func (r *recoverer) throttle(ctx context.Context, n int) error {
	if r.limiter == nil {
		return nil
	}
	for n > 0 {
		k := min(n, r.limiter.Burst())
		if err := r.limiter.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// listCandidates lists the objects every node of the epochs since the
// cluster's last complete one holds (current and stale copies), and returns,
// ascending, those the node must hold under v and has not got. waiting is
// non-empty if the listing may be missing objects: too many holders were
// unreachable.
func (r *recoverer) listCandidates(ctx context.Context, v *epochView) (oids []proto.ObjectID, waiting string, err error) {
	from := max(r.lastComplete.Load(), 1)
	if from > v.Number {
		// Never "complete" an epoch the cluster has recovered past
		// without this node (it would take objects as absent).
		return nil, fmt.Sprintf("the cluster recovered epoch %d, this node is at %d: catching up", from, v.Number), nil
	}
	var views []*epochView
	holders := map[string]bool{}
	for e := from; e <= v.Number; e++ {
		ev, err := r.epochs.at(ctx, e)
		if err != nil {
			return nil, "", err
		}
		views = append(views, ev)
		for _, m := range ev.Members {
			holders[m.ID] = true
		}
	}
	all := map[proto.ObjectID]struct{}{}
	add := func(oid proto.ObjectID) { all[oid] = struct{}{} }
	unreachable := map[string]bool{}
	if _, err := r.opts.Peers.refresh(ctx); err != nil {
		return nil, "", fmt.Errorf("list nodes: %w", err)
	}
	for _, id := range slices.Sorted(mapsKeys(holders)) {
		if id == r.self {
			r.listLocal(add)
			continue
		}
		if err := r.opts.Peers.listAll(ctx, id, v.Number, add); err != nil {
			r.log.Debug().Err(err).Str("node", id).Msg("cannot list a node's objects")
			unreachable[id] = true
		}
	}
	copiesByVDI, err := r.vdis.refresh(ctx)
	if err != nil {
		return nil, "", err
	}
	// Its own listing misses what a lost directory held.
	selfDistrust := r.distrustBelow.Load()
	if (len(unreachable) > 0 || selfDistrust > from) && len(copiesByVDI) > 0 {
		minCopies := cluster.MaxCopies
		for _, c := range copiesByVDI {
			minCopies = min(minCopies, c)
		}
		// Every object of e has min(copies, |M(e)|) holders: while fewer
		// of them are unreachable, one that holds it was listed.
		for _, ev := range views {
			if ev.Number == v.Number {
				continue
			}
			down := 0
			for _, m := range ev.Members {
				if unreachable[m.ID] || (m.ID == r.self && ev.Number < selfDistrust) {
					down++
				}
			}
			if down >= ev.copiesOf(minCopies) {
				waiting = fmt.Sprintf("cannot list objects of epoch %d: nodes %s unreachable or not at epoch %d yet", ev.Number,
					strings.Join(slices.Sorted(mapsKeys(unreachable)), ", "), v.Number)
				break
			}
		}
	}
	for oid := range all {
		copies, ok := copiesByVDI[oid.VDI()]
		if !ok || !v.isTarget(r.self, oid, copies) || r.st.Exists(oid) || r.isAbsent(oid) {
			continue
		}
		oids = append(oids, oid)
	}
	slices.Sort(oids)
	return oids, waiting, nil
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// listLocal lists every object the node holds in any form.
func (r *recoverer) listLocal(fn func(proto.ObjectID)) {
	var page []proto.ObjectID
	from := proto.ObjectID(0)
	for {
		ids, next, more := r.st.ListAll(page[:0], from, 0, proto.MaxListPage)
		for _, id := range ids {
			fn(id)
		}
		if !more {
			return
		}
		page, from = ids, next
	}
}

// finish records that the node completed v. false: v ended first.
func (r *recoverer) finish(ctx context.Context, v *epochView) bool {
	for {
		r.mu.Lock()
		if r.cur != v || ctx.Err() != nil {
			r.mu.Unlock()
			return false
		}
		ns := r.state
		r.mu.Unlock()
		ns.Complete = true
		ns.PrunedBelow = r.prunedBelow.Load()
		// Saved before anyone is told: a node that says it completed
		// answers peers authoritatively from then on, after a restart too.
		err := r.opts.SaveState(ns)
		if err == nil {
			r.mu.Lock()
			r.state = ns
			r.complete.Store(true)
			r.progress.Complete, r.progress.Waiting = true, ""
			r.absent = map[proto.ObjectID]struct{}{} // complete: every object is ready
			r.mu.Unlock()
			return true
		}
		r.log.Error().Err(err).Msg("cannot save recovery state; retrying")
		select {
		case <-ctx.Done():
			return false
		case <-time.After(r.opts.RetryInterval):
		}
	}
}

// report writes the node's progress to etcd, at most once a second unless
// force.
func (r *recoverer) report(ctx context.Context, force bool) {
	r.mu.Lock()
	if !force && time.Since(r.lastReport) < reportEvery {
		r.mu.Unlock()
		return
	}
	r.lastReport = time.Now()
	p := r.progress
	p.Bytes = r.bytes.Load() // pulls on access too
	r.mu.Unlock()
	err := r.cl.SetRecoveryStatus(ctx, cluster.RecoveryStatus{Node: r.self, Epoch: p.Epoch, Total: p.Total, Done: p.Done,
		Bytes: p.Bytes, Complete: p.Complete, Waiting: p.Waiting, Updated: time.Now().UTC()})
	if err != nil && ctx.Err() == nil {
		r.log.Warn().Err(err).Msg("cannot report recovery progress")
	}
}

// markComplete raises the cluster's recovery-complete epoch to e once every
// member of e completed it. The last member to complete does it; the
// others retry now and then in case that one died in between.
func (r *recoverer) markComplete(ctx context.Context, e uint64) {
	for r.lastComplete.Load() < e {
		err := r.cl.MarkComplete(ctx, e)
		if err == nil {
			r.raiseLastComplete(e)
			r.log.Info().Uint64("epoch", e).Msg("cluster recovery complete")
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, cluster.ErrIncomplete) {
			r.log.Warn().Err(err).Uint64("epoch", e).Msg("cannot mark the epoch recovered; retrying")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.opts.RetryInterval):
		}
		if lc, err := r.cl.LastComplete(ctx); err == nil {
			r.raiseLastComplete(lc)
		}
		// Again: a report that failed (etcd unreachable) must say
		// complete before MarkComplete can succeed.
		r.report(ctx, true)
	}
}

// raiseLastComplete records the cluster's recovery-complete epoch.
func (r *recoverer) raiseLastComplete(c uint64) {
	for {
		old := r.lastComplete.Load()
		if c <= old || r.lastComplete.CompareAndSwap(old, c) {
			return
		}
	}
}

// prune follows the cluster's recovery-complete epoch c and deletes stale
// copies below it: only once the whole cluster recovered c can no recovery
// need them.
func (r *recoverer) prune(ctx context.Context) {
	for c := range r.cl.WatchLastComplete(ctx) {
		r.raiseLastComplete(c)
		c = r.lastComplete.Load()
		if c > r.prunedBelow.Load() {
			r.prunedBelow.Store(c) // first: answers must not rely on copies being deleted
		}
		n, err := r.st.PruneStale(r.prunedBelow.Load())
		if err != nil {
			r.log.Error().Err(err).Uint64("below", c).Msg("pruning stale copies failed")
			continue
		}
		if n > 0 {
			r.log.Info().Int("copies", n).Uint64("below", c).Msg("stale copies pruned")
		}
	}
}

// Progress is the node's recovery progress.
func (r *recoverer) Progress() RecoveryProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.progress
	p.Bytes = r.bytes.Load()
	return p
}
