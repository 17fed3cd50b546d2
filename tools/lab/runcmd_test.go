package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSelectTests(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"00-lab-sanity.sh", "12-target-file.sh", "12-target-filex.sh", "lib.sh", "demo.sh", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	all, err := selectTests(dir, nil)
	if err != nil || !slices.Equal(all, []string{"00-lab-sanity.sh", "12-target-file.sh", "12-target-filex.sh"}) {
		t.Fatalf("default selection = %q, %v", all, err)
	}
	got, err := selectTests(dir, []string{"00", "12-target-file", "demo", "12-target-filex.sh"})
	if err != nil || !slices.Equal(got, []string{"00-lab-sanity.sh", "12-target-file.sh", "demo.sh", "12-target-filex.sh"}) {
		t.Fatalf("named selection = %q, %v", got, err)
	}
	var usage usageError
	for _, bad := range []string{"12", "99", "lib.s"} {
		if _, err := selectTests(dir, []string{bad}); !errors.As(err, &usage) {
			t.Errorf("selectTests(%q) err = %v, want a usage error", bad, err)
		}
	}
}

func TestProjectBinariesTakesEveryExecutable(t *testing.T) {
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"ublkctl": 0o755, "memhog": 0o755, "notes.txt": 0o644} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := projectBinaries(dir)
	want := []string{filepath.Join(dir, "memhog"), filepath.Join(dir, "ublkctl")}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("projectBinaries = %q, %v; want %q", got, err, want)
	}
	if got, err := projectBinaries(filepath.Join(dir, "missing")); err != nil || len(got) != 0 {
		t.Fatalf("missing bin dir: %q, %v", got, err)
	}
}
