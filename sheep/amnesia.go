package sheep

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

// distrustFile, in the node's directory, holds the epoch below which the
// node cannot vouch for "no copy here".
//
// Why: a peer recovering an object asks the holders of epoch e; a holder
// answering "no copy" (NotReady) proves no write was acknowledged in e,
// and the peer looks at older epochs. A node whose directory was wiped
// (a replaced disk) comes back with the same id (it derives from its
// address) and no copies: "no copy" from it proves nothing about the
// epochs its previous incarnation was a member of. Left alone, a peer
// could skip the copies the old incarnation's partner holds, if that
// partner is unreachable, and revive older data. So a node that starts
// without any recovery state, with its id a member of an epoch the
// cluster may still recover from, gives no answer for those epochs.
const distrustFile = "recovery-distrust-below"

// loadDistrust reads the distrust epoch (0 if none).
func loadDistrust(path string) (uint64, error) {
	if path == "" {
		return 0, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	e, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not an epoch number: %w", path, err)
	}
	return e, nil
}

// leaveIfAmnesiac takes the node out of the membership if it is a member
// of e but holds nothing at all and has no recovery state: its directory
// was wiped (it was a member before this run registered, so it is not a
// new node the membership controller just added). Such a node cannot
// recover e itself: what was written in e is on the other targets of e and
// on its lost disk, and recovery looks only at epochs before the one it
// recovers. Out and back in (the membership controller re-adds it), it
// recovers from the epoch without it. The only member stays.
func (r *recoverer) leaveIfAmnesiac(ctx context.Context, e cluster.Epoch) (cluster.Epoch, error) {
	if !r.opts.MemberBeforeRegister || r.opts.StateMissing == nil || !r.opts.StateMissing() || !e.Has(r.self) || len(e.Members) < 2 {
		return e, nil
	}
	empty := true
	r.st.Range(0, 0, func(proto.ObjectID) bool { empty = false; return false })
	if ids, _, _ := r.st.ListAll(nil, 0, 0, 1); len(ids) > 0 {
		empty = false
	}
	if !empty {
		// Objects but no state: a directory from before epochs; its
		// objects are taken as they are (see start).
		return e, nil
	}
	r.log.Warn().Uint64("epoch", e.Number).
		Msg("node is a member but its directory is empty and has no recovery state (wiped?): leaving the membership to rejoin and recover from the other members")
	ne, err := r.cl.RemoveMember(ctx, r.self)
	if err != nil {
		return e, fmt.Errorf("leave the membership to recover from scratch: %w", err)
	}
	return ne, nil
}

// checkAmnesia sets the node's distrust epoch at start: kept from an
// earlier run, or, if the node has no recovery state although its id is
// a member of an epoch in [lastComplete, current] that was decided before
// this run registered, the current epoch
// (persisted before the node answers anyone).
func (r *recoverer) checkAmnesia(ctx context.Context, lastComplete, current uint64) error {
	distrust, err := loadDistrust(r.opts.DistrustFile)
	if err != nil {
		return err
	}
	if r.opts.StateMissing != nil && r.opts.StateMissing() && distrust < current {
		member := false
		// Only epochs this run had not registered for yet: a brand-new
		// node the controller added since is not one that lost its disk.
		for n := max(lastComplete, 1); n <= min(current, r.opts.EpochBeforeRegister) && !member; n++ {
			v, err := r.epochs.at(ctx, n)
			if err != nil {
				return err
			}
			member = v.has(r.self)
		}
		if member {
			if r.opts.DistrustFile != "" {
				if err := store.WriteFileAtomic(r.opts.DistrustFile, []byte(strconv.FormatUint(current, 10)+"\n")); err != nil {
					return fmt.Errorf("record the epochs this node cannot vouch for: %w", err)
				}
			}
			distrust = current
			r.log.Warn().Uint64("below", current).
				Msg("node is a member of recent epochs but has no recovery state (new node just added, or a wiped directory): it will not vouch for what it held before")
		}
	}
	r.distrustBelow.Store(distrust)
	return nil
}

// listingTrusted reports whether the node's listing of everything it holds
// covers every epoch recovery may still look at: not while it cannot
// vouch for epochs at or above the cluster's recovery-complete one (its
// lost directory held objects it no longer lists).
func (r *recoverer) listingTrusted() bool {
	return r.distrustBelow.Load() <= r.lastComplete.Load()
}
