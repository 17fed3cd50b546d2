package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// StateDir holds one JSON file per device this host's daemons serve.
var StateDir = "/run/ublkctl"

// State is what a daemon records about the device it serves.
type State struct {
	ID        uint32 `json:"id"`
	Pid       int    `json:"pid"`
	Target    string `json:"target"`
	Backing   string `json:"backing"`
	Size      int64  `json:"size"`
	BlockSize int    `json:"block_size"`
	Queues    int    `json:"queues"`
	Depth     int    `json:"depth"`
	MaxIO     int    `json:"max_io"`
	QueueTIDs []int  `json:"queue_tids"`
	Recovery  bool   `json:"recovery"`
	LogFile   string `json:"log_file,omitempty"`
	// Protections the daemon could not apply (empty when all took effect).
	Unprotected []string `json:"unprotected,omitempty"`
	// Spec is how the target was opened: what `ublkctl recover` needs to
	// serve the device again after its daemon died.
	Spec Target `json:"spec"`
}

func statePath(id uint32) string {
	return filepath.Join(StateDir, strconv.FormatUint(uint64(id), 10)+".json")
}

// writeState records s atomically (write to a temporary file, rename).
func writeState(s *State) error {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", StateDir, err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(s.ID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return os.Rename(tmp, statePath(s.ID))
}

// ReadState reads the state file of device id; ok is false when there is none.
func ReadState(id uint32) (s State, ok bool, err error) {
	b, err := os.ReadFile(statePath(id))
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, false, fmt.Errorf("state file %s: %w", statePath(id), err)
	}
	return s, true, nil
}

// RemoveState forgets device id.
func RemoveState(id uint32) {
	os.Remove(statePath(id))
}

// Alive says whether process pid exists and is not a zombie (a daemon
// whose parent is gone is reaped by init, which may be slow to do it).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	end := bytes.LastIndexByte(b, ')')
	return end >= 0 && end+2 < len(b) && b[end+2] != 'Z' && b[end+2] != 'X'
}
