package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The values in etcd are input from the network, written by any client of
// the cluster: every record is bounded in size and checked for the
// invariants the code relies on (a zero object size would divide by zero in
// every client) before it is used.

// maxRecord bounds a record; real ones are a few hundred bytes, an epoch
// of many nodes a few hundred KiB.
const maxRecord = 1 << 20

var errCorrupt = errors.New("corrupt record")

func decodeJSON(b []byte, v any) error {
	if len(b) > maxRecord {
		return fmt.Errorf("%w: %d bytes, limit %d", errCorrupt, len(b), maxRecord)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return nil
}

func decodeSettings(b []byte) (Settings, error) {
	var s Settings
	if err := decodeJSON(b, &s); err != nil {
		return s, err
	}
	if s.Copies < 1 || s.Copies > MaxCopies || !validObjectSize(s.ObjectSize) || s.MinCopies < 0 || s.MinCopies > s.Copies || s.MemberGrace < 0 {
		return Settings{}, fmt.Errorf("%w: settings with %d copies (min %d), object size %d, member grace %v",
			errCorrupt, s.Copies, s.MinCopies, s.ObjectSize, s.MemberGrace)
	}
	return s, nil
}

func decodeVDI(b []byte) (VDI, error) {
	var v VDI
	if err := decodeJSON(b, &v); err != nil {
		return v, err
	}
	switch {
	case validVDIName(v.Name) != nil,
		v.ID == 0 || v.ID > MaxVDIID,
		v.Copies < 1 || v.Copies > MaxCopies,
		v.BlockSize != 512 && v.BlockSize != 4096,
		!validObjectSize(v.ObjectSize),
		validVDISize(v.Size, int64(v.BlockSize), v.ObjectSize) != nil:
		return VDI{}, fmt.Errorf("%w: vdi %q id %d size %d copies %d block %d object %d",
			errCorrupt, v.Name, v.ID, v.Size, v.Copies, v.BlockSize, v.ObjectSize)
	}
	return v, nil
}

func decodeNode(b []byte) (Node, error) {
	var n Node
	if err := decodeJSON(b, &n); err != nil {
		return n, err
	}
	if validNodeID(n.ID) != nil || n.Capacity < 0 {
		return Node{}, fmt.Errorf("%w: node %q capacity %d", errCorrupt, n.ID, n.Capacity)
	}
	return n, nil
}

func decodeEpoch(b []byte) (Epoch, error) {
	var e Epoch
	if err := decodeJSON(b, &e); err != nil {
		return e, err
	}
	for i, m := range e.Members {
		if validNodeID(m.ID) != nil || m.Capacity < 0 || (i > 0 && e.Members[i-1].ID >= m.ID) {
			return Epoch{}, fmt.Errorf("%w: epoch %d member %d (%q) invalid or out of order", errCorrupt, e.Number, i, m.ID)
		}
	}
	if len(e.Reason) > maxReason {
		return Epoch{}, fmt.Errorf("%w: epoch %d reason of %d bytes", errCorrupt, e.Number, len(e.Reason))
	}
	return e, nil
}

// maxReason bounds the free-text fields of records (epoch reasons, a
// recovery status's Waiting).
const maxReason = 4096

func decodeRecoveryStatus(b []byte) (RecoveryStatus, error) {
	var s RecoveryStatus
	if err := decodeJSON(b, &s); err != nil {
		return s, err
	}
	if validNodeID(s.Node) != nil || s.Total < 0 || s.Done < 0 || s.Bytes < 0 || len(s.Waiting) > maxReason {
		return RecoveryStatus{}, fmt.Errorf("%w: recovery status of %q: total %d done %d bytes %d", errCorrupt, s.Node, s.Total, s.Done, s.Bytes)
	}
	return s, nil
}
