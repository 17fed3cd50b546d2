package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// RecoveryStateFile is the name of a node's recovery state in its directory.
const RecoveryStateFile = "recovery-state.json"

// MaxCompleted bounds RecoveryState.Completed: only the newest epochs are kept.
const MaxCompleted = 64

// maxRecoveryStateSize bounds the file read before decoding it: a valid
// state is well under 2 KiB.
const maxRecoveryStateSize = 16 << 10

// ErrRecoveryState is wrapped by errors about a recovery-state.json this
// version cannot trust.
var ErrRecoveryState = errors.New("corrupt recovery state")

// RecoveryState is what a node remembers across restarts about its
// recovery (recovery-state.json in its directory).
type RecoveryState struct {
	// Epoch is the epoch the node last transitioned to.
	Epoch uint64 `json:"epoch"`
	// Complete says the node finished recovering for Epoch.
	Complete bool `json:"complete"`
	// PrevComplete says the node was a member of Epoch-1 and had
	// finished recovering for it when it moved to Epoch.
	PrevComplete bool `json:"prev_complete"`
	// Completed lists epochs this node finished recovering in, strictly
	// ascending, none above Epoch, at most MaxCompleted (the newest).
	Completed []uint64 `json:"completed"`
	// PrunedBelow is the epoch below which stale copies were pruned.
	PrunedBelow uint64 `json:"pruned_below"`
}

// MarkCompleted records that the node completed recovery in epoch e,
// keeping Completed ascending, without duplicates and bounded to the
// newest MaxCompleted.
func (st *RecoveryState) MarkCompleted(e uint64) {
	i, found := slices.BinarySearch(st.Completed, e)
	if !found {
		st.Completed = slices.Insert(st.Completed, i, e)
	}
	if n := len(st.Completed); n > MaxCompleted {
		st.Completed = slices.Delete(st.Completed, 0, n-MaxCompleted)
	}
}

// HasCompleted reports whether Completed holds e.
func (st RecoveryState) HasCompleted(e uint64) bool {
	_, found := slices.BinarySearch(st.Completed, e)
	return found
}

// check says what makes st unusable, or nil.
func (st RecoveryState) check() error {
	if len(st.Completed) > MaxCompleted {
		return fmt.Errorf("%d completed epochs, at most %d", len(st.Completed), MaxCompleted)
	}
	for i, e := range st.Completed {
		if i > 0 && e <= st.Completed[i-1] {
			return fmt.Errorf("completed epochs not strictly ascending at %d", e)
		}
		if e > st.Epoch {
			return fmt.Errorf("completed epoch %d is after the node's epoch %d", e, st.Epoch)
		}
	}
	return nil
}

// LoadRecoveryState reads dir's recovery-state.json. A missing file is the
// zero state (a new node, or one from before recovery existed); a file
// that cannot be trusted is an error naming it.
func LoadRecoveryState(dir string) (RecoveryState, error) {
	path := filepath.Join(dir, RecoveryStateFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return RecoveryState{}, nil
	}
	if err != nil {
		return RecoveryState{}, fmt.Errorf("read recovery state: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecoveryStateSize+1))
	if err != nil {
		return RecoveryState{}, fmt.Errorf("read recovery state %s: %w", path, err)
	}
	st, err := decodeRecoveryState(b)
	if err != nil {
		return RecoveryState{}, fmt.Errorf("%s: %w: %v (move it away to make this node recover all its objects again)", path, ErrRecoveryState, err)
	}
	return st, nil
}

func decodeRecoveryState(b []byte) (RecoveryState, error) {
	var st RecoveryState
	if len(b) > maxRecoveryStateSize {
		return st, fmt.Errorf("larger than %d bytes", maxRecoveryStateSize)
	}
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return st, errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return RecoveryState{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return RecoveryState{}, errors.New("data after the JSON object")
	}
	if err := st.check(); err != nil {
		return RecoveryState{}, err
	}
	if len(st.Completed) == 0 {
		st.Completed = nil
	}
	return st, nil
}

func encodeRecoveryState(st RecoveryState) ([]byte, error) {
	if st.Completed == nil {
		st.Completed = []uint64{} // [] rather than null, for whoever reads it
	}
	b, err := json.Marshal(st)
	return append(b, '\n'), err
}

// SaveRecoveryState replaces dir's recovery-state.json with st atomically
// and durably (WriteFileAtomic). A state that could not be loaded back is
// refused.
func SaveRecoveryState(dir string, st RecoveryState) error {
	path := filepath.Join(dir, RecoveryStateFile)
	if err := st.check(); err != nil {
		return fmt.Errorf("save recovery state %s: %w", path, err)
	}
	b, err := encodeRecoveryState(st)
	if err != nil {
		return fmt.Errorf("save recovery state %s: %w", path, err)
	}
	return WriteFileAtomic(path, b)
}
