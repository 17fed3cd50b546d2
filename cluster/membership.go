package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MembershipOptions tunes RunMembership.
type MembershipOptions struct {
	// Grace is how long a member may be unregistered before it is
	// removed; 0: the cluster's setting (Settings.Grace).
	Grace time.Duration
	// Logger receives each membership change (Info) and the waits for etcd
	// quorum (Warn). The zero Logger logs nothing.
	Logger zerolog.Logger
}

// quorumLogEvery rate-limits the "waiting for etcd quorum" message.
const quorumLogEvery = 10 * time.Second

// RunMembership is the membership controller; every sheep node runs one
// until ctx ends (then it returns nil). Whichever controller commits first
// makes a change; the others see it done. It watches the node list, the
// epoch and the recovery statuses and:
//   - adds every registered node in state up that is not a member;
//   - removes every member that has not been registered for Grace or
//     longer, as measured by this controller from when it first saw it
//     absent (a controller that starts counts from then), but never the
//     last remaining old member;
//   - marks the current epoch recovery-complete once every member reports
//     it complete (MarkComplete), so a node dying right after reporting
//     does not leave the mark unset.
//
// Each change is one transaction guarded by the epoch's revision, retried
// on conflict, logged with its reason. Without etcd quorum nothing can
// change: it logs "membership change waiting for etcd quorum" every 10 s
// and keeps trying.
func (c *Client) RunMembership(ctx context.Context, opts MembershipOptions) error {
	m := &membership{c: c, opts: opts, absentSince: map[string]time.Time{}}
	wake := make(chan struct{}, 1)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		// Any change under the cluster's prefix that matters: the node
		// list, the epoch, recovery statuses, the settings (grace).
		c.watchLatest(wctx, c.prefix, true, func(ctx context.Context) (int64, error) {
			resp, err := c.etcd.Get(ctx, c.epochKey(), clientv3.WithCountOnly())
			if err != nil {
				return 0, err
			}
			select {
			case wake <- struct{}{}:
			default:
			}
			return resp.Header.Revision, nil
		})
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-timer.C:
		}
		next := m.step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// membership is one controller's state.
type membership struct {
	c    *Client
	opts MembershipOptions
	// absentSince: when this controller first saw each unregistered
	// member unregistered.
	absentSince   map[string]time.Time
	lastQuorumLog time.Time
	waiting       bool
}

// step looks at the cluster once, makes the change due if any, and
// returns when to look again at the latest (a grace running out, a retry).
func (m *membership) step(ctx context.Context) time.Duration {
	const idle = 5 * time.Second // a safety net: watches wake us sooner
	next, err := m.try(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return idle
		}
		if time.Since(m.lastQuorumLog) >= quorumLogEvery {
			m.lastQuorumLog = time.Now()
			m.opts.Logger.Warn().Err(err).Msg("membership change waiting for etcd quorum")
		}
		m.waiting = true
		return time.Second
	}
	if m.waiting {
		m.waiting = false
		m.lastQuorumLog = time.Time{}
		m.opts.Logger.Info().Msg("etcd answers again: membership controller resumed")
	}
	if next <= 0 || next > idle {
		next = idle
	}
	return next
}

// try runs one round: read, decide, commit (again on a lost race).
func (m *membership) try(ctx context.Context) (time.Duration, error) {
	c := m.c
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	for {
		resp, err := c.etcd.Txn(ctx).Then(
			clientv3.OpGet(c.epochKey()),
			clientv3.OpGet(c.nodesPrefix(), clientv3.WithPrefix()),
			clientv3.OpGet(c.settingsKey()),
			clientv3.OpGet(c.recoveryPrefix(), clientv3.WithPrefix()),
			clientv3.OpGet(c.recoveryCompleteKey()),
		).Commit()
		if err != nil {
			return 0, fmt.Errorf("read membership: %w", c.etcdErr(err))
		}
		var e Epoch
		var rev int64
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			if e, err = decodeEpoch(kvs[0].Value); err != nil {
				return 0, fmt.Errorf("decode epoch: %w", err)
			}
			rev = kvs[0].ModRevision
		}
		nodes, err := c.decodeNodes(resp.Responses[1].GetResponseRange().Kvs)
		if err != nil {
			return 0, err
		}
		grace := m.opts.Grace
		if grace <= 0 {
			grace = DefaultMemberGrace
			if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
				if s, err := decodeSettings(kvs[0].Value); err == nil {
					grace = s.Grace()
				}
			}
		}
		next, changed := m.decide(&e, nodes, grace, time.Now())
		if !changed {
			statuses, err := c.decodeRecoveryStatuses(resp.Responses[3].GetResponseRange().Kvs)
			if err != nil {
				return 0, err
			}
			last, err := c.decodeLastComplete(resp.Responses[4].GetResponseRange().Kvs)
			if err != nil {
				return 0, err
			}
			if err := m.markComplete(ctx, e, statuses, last); err != nil {
				return 0, err
			}
			return next, nil
		}
		ok, err := c.commitEpoch(ctx, &e, rev)
		if err != nil {
			return 0, fmt.Errorf("commit epoch: %w", err)
		}
		if ok {
			m.opts.Logger.Info().Uint64("epoch", e.Number).Int("members", len(e.Members)).
				Str("reason", e.Reason).Msg("membership changed")
			continue // look again: more may be due
		}
		// Another controller (or an operator) changed the epoch first.
	}
}

// decide changes e as membership rules say given the registered nodes at
// now; changed is false if nothing is due. next is when the earliest grace
// still running ends (0: none).
func (m *membership) decide(e *Epoch, nodes []Node, grace time.Duration, now time.Time) (next time.Duration, changed bool) {
	registered := make(map[string]Node, len(nodes))
	for _, n := range nodes {
		registered[n.ID] = n
	}
	for id := range m.absentSince {
		if _, ok := registered[id]; ok || !e.Has(id) {
			delete(m.absentSince, id)
		}
	}
	var keep []Member
	var gone []Member // absent for the grace, oldest absence first
	for _, mem := range e.Members {
		if _, ok := registered[mem.ID]; ok {
			keep = append(keep, mem)
			continue
		}
		since, ok := m.absentSince[mem.ID]
		if !ok {
			since = now
			m.absentSince[mem.ID] = now
		}
		if left := grace - now.Sub(since); left > 0 {
			keep = append(keep, mem)
			if next == 0 || left < next {
				next = left
			}
			continue
		}
		gone = append(gone, mem)
	}
	// The last old member stays: its copies are the last ones, and a
	// membership of only new nodes would have nothing to recover from.
	sort.SliceStable(gone, func(i, j int) bool {
		return m.absentSince[gone[i].ID].Before(m.absentSince[gone[j].ID])
	})
	if len(keep) == 0 && len(gone) > 0 {
		keep, gone = append(keep, gone[len(gone)-1]), gone[:len(gone)-1]
	}
	var reasons []string
	for _, g := range gone {
		reasons = append(reasons, fmt.Sprintf("node %s gone for %v", g.ID, now.Sub(m.absentSince[g.ID]).Round(time.Second)))
	}
	var joined []Member
	for _, n := range nodes {
		if n.State == NodeUp && !e.Has(n.ID) {
			joined = append(joined, Member{ID: n.ID, Zone: n.Zone, Capacity: n.Capacity})
			reasons = append(reasons, "node "+n.ID+" joined")
		}
	}
	if len(gone) == 0 && len(joined) == 0 {
		return next, false
	}
	e.Members = append(keep, joined...)
	e.Reason = strings.Join(reasons, "; ")
	return next, true
}

// markComplete marks e recovery-complete if every member reports it done
// and it is not marked yet (MarkComplete checks again, in its txn).
func (m *membership) markComplete(ctx context.Context, e Epoch, statuses map[string]RecoveryStatus, last uint64) error {
	if e.Number == 0 || last >= e.Number {
		return nil
	}
	for _, mem := range e.Members {
		if !statuses[mem.ID].CompleteFor(e.Number) {
			return nil
		}
	}
	err := m.c.MarkComplete(ctx, e.Number)
	if err == nil {
		m.opts.Logger.Debug().Uint64("epoch", e.Number).Msg("every member recovered the epoch: marked recovery-complete")
		return nil
	}
	if errors.Is(err, ErrIncomplete) || errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
