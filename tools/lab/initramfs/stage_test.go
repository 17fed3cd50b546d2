package initramfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseLdd(t *testing.T) {
	out := []byte("\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n")
	got, err := parseLdd(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libz.so.1", "/lib64/ld-linux-x86-64.so.2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseLdd = %q, want %q", got, want)
	}
	if _, err := parseLdd([]byte("\tlibfoo.so.1 => not found\n")); err == nil {
		t.Fatal("a missing library was not reported")
	}
}

// TestArchiveRoundTrip packs a tree and unpacks it with cpio again,
// comparing contents, modes and symlinks.
func TestArchiveRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	st, err := NewStage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddBytes("/etc/hosts", []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.AddBytes("/init", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := st.AddSymlink("/bin/busybox", "/bin/sh"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := st.WriteArchive(&buf); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("cpio", "--quiet", "-i", "-d")
	cmd.Dir = out
	cmd.Stdin = bytes.NewReader(raw)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v: %s", err, b)
	}
	if b, err := os.ReadFile(filepath.Join(out, "etc/hosts")); err != nil || string(b) != "127.0.0.1 localhost\n" {
		t.Fatalf("etc/hosts = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(out, "init")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("init mode: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(out, "bin/sh")); err != nil || target != "/bin/busybox" {
		t.Fatalf("bin/sh -> %q, %v", target, err)
	}
	if !strings.HasPrefix(string(raw), "070701") {
		t.Fatalf("not a newc archive: %q", raw[:6])
	}
}

func TestAddExecutableCopiesLibraries(t *testing.T) {
	exe := "/usr/sbin/blockdev"
	if _, err := os.Stat(exe); err != nil {
		t.Skip("no util-linux blockdev on this host")
	}
	st, err := NewStage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddExecutable(exe, exe); err != nil {
		t.Fatal(err)
	}
	libs, err := sharedLibraries(exe)
	if err != nil || len(libs) == 0 {
		t.Fatalf("ldd %s: %v %v", exe, libs, err)
	}
	for _, lib := range libs {
		real, _ := filepath.EvalSymlinks(filepath.Dir(lib))
		want, _ := os.ReadFile(lib)
		got, err := os.ReadFile(filepath.Join(st.root, real, filepath.Base(lib)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("library %s not copied intact: %v", lib, err)
		}
	}
}

func TestPruneBasesKeepsNewest(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for i := 0; i < 6; i++ {
		p := filepath.Join(dir, "base-"+strconv.Itoa(i)+".cpio.gz")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		mt := now.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pruneBases(dir, 4)
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	want := []string{"base-2.cpio.gz", "base-3.cpio.gz", "base-4.cpio.gz", "base-5.cpio.gz", "other"}
	var got []string
	for _, l := range left {
		got = append(got, filepath.Base(l))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("left %q, want %q", got, want)
	}
}
