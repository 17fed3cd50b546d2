package sheep

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

// peerAnswer is what a source said when asked for X as of epoch e.
type peerAnswer uint8

const (
	// answerUnreachable: no answer (down, timeout, not registered, an
	// error that says nothing about X).
	answerUnreachable peerAnswer = iota
	// answerData: here is X as of an epoch >= e (the buffer holds it).
	answerData
	// answerAbsent: authoritative, X did not exist on the source at e.
	answerAbsent
	// answerUnknown: the source cannot say (NotReady): it has no copy and
	// had not completed recovery for e.
	answerUnknown
)

func (a peerAnswer) String() string {
	switch a {
	case answerData:
		return "data"
	case answerAbsent:
		return "absent"
	case answerUnknown:
		return "not ready"
	default:
		return "unreachable"
	}
}

// walkOutcome is the result of a successful walk-back.
type walkOutcome struct {
	// Found: the buffer holds X, as given by Source for epoch Epoch.
	// Otherwise X is absent at the epoch being recovered.
	Found  bool
	Source string
	Epoch  uint64
}

// errBlocked: every source of some epoch was unreachable, so nothing can be
// concluded about X (never "absent"): retry later.
var errBlocked = errors.New("recovery blocked")

// walkSources is what a walk-back needs of the cluster: who held X in an
// epoch, and what each says.
type walkSources interface {
	// sourcesAt is T(e, X) by node id (the recovering node included).
	sourcesAt(ctx context.Context, e uint64, oid proto.ObjectID) ([]string, error)
	// ask asks source for X as of e; on answerData, buf holds X.
	ask(ctx context.Context, source string, oid proto.ObjectID, e uint64, buf []byte) peerAnswer
}

// walkBack finds object X for a node recovering epoch E: for e = E-1 down
// to max(1, floor) it asks every node of T(e, X). The first copy wins. An
// authoritative NotFound means X is absent. A node of T(e, X) that answers
// NotReady has no copy, which proves no write of X was acknowledged in e
// (acknowledged writes reached every target of their epoch), so the walk
// goes on to e-1. If every source of e is unreachable nothing can be
// concluded: errBlocked. Below the floor (the cluster's recovery-complete
// epoch, or the first epoch) X is absent.
func walkBack(ctx context.Context, oid proto.ObjectID, E, floor uint64, src walkSources, buf []byte) (walkOutcome, error) {
	floor = max(floor, 1)
	for e := E - 1; e >= floor && e < E; e-- {
		if err := ctx.Err(); err != nil {
			return walkOutcome{}, err
		}
		sources, err := src.sourcesAt(ctx, e, oid)
		if err != nil {
			return walkOutcome{}, fmt.Errorf("object %v at epoch %d: %w: %w", oid, e, errBlocked, err)
		}
		unknown := false
		var unreachable []string
		for _, s := range sources {
			switch src.ask(ctx, s, oid, e, buf) {
			case answerData:
				return walkOutcome{Found: true, Source: s, Epoch: e}, nil
			case answerAbsent:
				return walkOutcome{Source: s, Epoch: e}, nil
			case answerUnknown:
				unknown = true
			default:
				unreachable = append(unreachable, s)
			}
		}
		if !unknown {
			if err := ctx.Err(); err != nil {
				return walkOutcome{}, err
			}
			return walkOutcome{}, fmt.Errorf("object %v at epoch %d: %w: sources %s unreachable", oid, e, errBlocked, strings.Join(unreachable, ", "))
		}
	}
	return walkOutcome{}, nil
}
