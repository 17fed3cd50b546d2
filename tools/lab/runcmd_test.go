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

func TestReadNeeds(t *testing.T) {
	dir := t.TempDir()
	scripts := map[string]string{
		"a.sh":     "#!/bin/sh\n# what a does\n# lab-needs: ublkctl dog\n. ./lib.sh\n",
		"b.sh":     "#!/bin/sh\n# lab-needs: memhog   dog\n",
		"none.sh":  "#!/bin/sh\n# no header\necho hi\n# lab-needs: fio\n",
		"typo.sh":  "#!/bin/sh\n# lab-needs: ublkctl fi0\n",
		"empty.sh": "#!/bin/sh\n# lab-needs:\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n, err := readNeeds(dir, []string{"a.sh", "b.sh"})
	if err != nil || n.all || n.String() != "dog memhog ublkctl" {
		t.Fatalf("a+b: %+v (%s), %v; want exactly dog memhog ublkctl", n, n, err)
	}
	if !n.has("dog") || n.has("fio") || n.has("etcd") || n.has("sheep") {
		t.Fatalf("a+b has the wrong contents: %s", n)
	}
	// A script without the header (a lab-needs line after the first
	// command does not count) brings everything in.
	n, err = readNeeds(dir, []string{"a.sh", "none.sh"})
	if err != nil || !n.all || !n.has("fio") || !n.has("etcd") {
		t.Fatalf("a+none: %+v, %v; want everything", n, err)
	}
	n, err = readNeeds(dir, []string{"empty.sh"})
	if err != nil || n.all || n.has("fio") || n.has("ublkctl") {
		t.Fatalf("empty: %+v, %v; want nothing optional", n, err)
	}
	var usage usageError
	if _, err := readNeeds(dir, []string{"a.sh", "typo.sh"}); !errors.As(err, &usage) {
		t.Fatalf("typo: err = %v, want a usage error", err)
	}
	if _, err := readNeeds(dir, []string{"missing.sh"}); err == nil {
		t.Fatal("missing script: no error")
	}
}

// The repository's own memory-pressure scripts must keep fio and etcd out
// of their image: their guest is small (make test-deadlock).
func TestDeadlockScriptsLeaveOutFioAndEtcd(t *testing.T) {
	n, err := readNeeds("../../tests/lab", []string{"reclaim-deadlock.sh", "reclaim-deadlock-unprotected.sh"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ublkctl", "dog", "memhog"} {
		if !n.has(want) {
			t.Errorf("image lacks %s: %s", want, n)
		}
	}
	for _, heavy := range []string{"fio", "etcd", "sheep"} {
		if n.has(heavy) {
			t.Errorf("image has %s: %s", heavy, n)
		}
	}
}
