package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRecoveryStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st, err := LoadRecoveryState(dir)
	if err != nil || !reflect.DeepEqual(st, RecoveryState{}) {
		t.Fatalf("missing file: %+v, %v; want the zero state", st, err)
	}
	if st, err := LoadRecoveryState(filepath.Join(dir, "no-such-dir")); err != nil || st.Epoch != 0 {
		t.Fatalf("missing dir: %+v, %v", st, err)
	}
	for _, want := range []RecoveryState{
		{Epoch: 9, Complete: true, PrevComplete: true, Completed: []uint64{2, 5, 9}, PrunedBelow: 5},
		{Epoch: 1<<64 - 1, Completed: []uint64{0, 1<<64 - 1}, PrunedBelow: 1<<64 - 1},
		{Epoch: 10},
	} {
		if err := SaveRecoveryState(dir, want); err != nil {
			t.Fatal(err)
		}
		got, err := LoadRecoveryState(dir)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip of %+v = %+v, %v", want, got, err)
		}
	}
	// The file is plain JSON with the documented names, and no temporary
	// file is left beside it.
	b, _ := os.ReadFile(filepath.Join(dir, RecoveryStateFile))
	for _, key := range []string{`"epoch":`, `"complete":`, `"prev_complete":`, `"completed":[]`, `"pruned_below":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("recovery-state.json %s lacks %s", b, key)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("dir holds %d entries after saves, want 1", len(ents))
	}
	for name, bad := range map[string]RecoveryState{
		"descending":       {Epoch: 9, Completed: []uint64{5, 2}},
		"duplicate":        {Epoch: 9, Completed: []uint64{2, 2}},
		"after the epoch":  {Epoch: 4, Completed: []uint64{5}},
		"too many entries": {Epoch: 100, Completed: seq(0, MaxCompleted+1)},
	} {
		if err := SaveRecoveryState(dir, bad); err == nil {
			t.Errorf("%s: saved", name)
		}
	}
	if got, err := LoadRecoveryState(dir); err != nil || got.Epoch != 10 {
		t.Fatalf("a refused save changed the file: %+v, %v", got, err)
	}
}

func seq(from, n uint64) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = from + uint64(i)
	}
	return s
}

func TestRecoveryStateMarkCompleted(t *testing.T) {
	var st RecoveryState
	for _, e := range []uint64{5, 3, 5, 9, 1} {
		st.MarkCompleted(e)
	}
	if !slices.Equal(st.Completed, []uint64{1, 3, 5, 9}) || !st.HasCompleted(3) || st.HasCompleted(4) {
		t.Fatalf("Completed = %v", st.Completed)
	}
	for e := uint64(10); e < 200; e++ {
		st.MarkCompleted(e)
	}
	if !slices.Equal(st.Completed, seq(200-MaxCompleted, MaxCompleted)) {
		t.Fatalf("Completed keeps %d entries %d..%d, want the newest %d", len(st.Completed), st.Completed[0], st.Completed[len(st.Completed)-1], MaxCompleted)
	}
	st.Epoch = 199
	if err := SaveRecoveryState(t.TempDir(), st); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRecoveryStateRefusesCorruptFiles(t *testing.T) {
	for name, content := range map[string]string{
		"empty":           "",
		"truncated":       `{"epoch": 3, "compl`,
		"not json":        "epoch=3",
		"null":            "null",
		"array":           "[1]",
		"wrong type":      `{"epoch": "3"}`,
		"negative":        `{"epoch": -3}`,
		"fraction":        `{"epoch": 3.5}`,
		"overflow":        `{"epoch": 18446744073709551616}`,
		"unknown field":   `{"epoch": 3, "epoc": 4}`,
		"trailing data":   `{"epoch": 3} {"epoch": 4}`,
		"descending":      `{"epoch": 9, "completed": [5, 2]}`,
		"future complete": `{"epoch": 1, "completed": [2]}`,
		"huge":            `{"epoch": 1, "completed": [` + strings.Repeat(" ", maxRecoveryStateSize) + `]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, RecoveryStateFile), []byte(content), 0o644)
			_, err := LoadRecoveryState(dir)
			if !errors.Is(err, ErrRecoveryState) || !strings.Contains(err.Error(), filepath.Join(dir, RecoveryStateFile)) {
				t.Fatalf("LoadRecoveryState = %v, want ErrRecoveryState naming the file", err)
			}
		})
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, RecoveryStateFile), []byte(" {\"epoch\": 3, \"completed\": null}\n\n"), 0o644)
	if st, err := LoadRecoveryState(dir); err != nil || st.Epoch != 3 || st.Completed != nil {
		t.Fatalf("a valid hand-written file: %+v, %v", st, err)
	}
}

// FuzzDecodeRecoveryState: whatever the decoder accepts is a state that
// saves and loads back unchanged and keeps the documented bounds.
func FuzzDecodeRecoveryState(f *testing.F) {
	for _, st := range []RecoveryState{{}, {Epoch: 9, Complete: true, PrevComplete: true, Completed: []uint64{2, 5, 9}, PrunedBelow: 5}} {
		b, _ := encodeRecoveryState(st)
		f.Add(b)
	}
	f.Add([]byte(`{"epoch": 1, "completed": [0, 1]}`))
	f.Add([]byte(`{"epoch": 1, "completed": [1, 0]}`))
	f.Add([]byte(`{"epoch": 1}x`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeRecoveryState(b)
		if err != nil {
			return
		}
		if len(st.Completed) > MaxCompleted {
			t.Fatalf("accepted %d completed epochs", len(st.Completed))
		}
		for i, e := range st.Completed {
			if e > st.Epoch || i > 0 && e <= st.Completed[i-1] {
				t.Fatalf("accepted completed %v with epoch %d", st.Completed, st.Epoch)
			}
		}
		enc, err := encodeRecoveryState(st)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeRecoveryState(enc)
		if err != nil || !reflect.DeepEqual(again, st) {
			t.Fatalf("accepted %q re-encodes to %q, decoding to %+v, %v", b, enc, again, err)
		}
	})
}
