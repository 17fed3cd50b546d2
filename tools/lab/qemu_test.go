package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sheepblk/sheepblk/tools/lab/initramfs"
)

// TestAddNestedQemu stages the nested QEMU and checks that what QEMU
// needs at run time lands at the paths it looks in: the binaries, the
// accelerator module next to them, the libraries ldd lists, the firmware
// and the guest kernel.
func TestAddNestedQemu(t *testing.T) {
	for _, exe := range qemuExecutables {
		if _, err := os.Stat(exe); err != nil {
			t.Skipf("%s not installed on this host (qemu-system-x86, qemu-utils)", exe)
		}
	}
	parent := t.TempDir()
	st, err := initramfs.NewStage(parent)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Remove()
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not really a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := addNestedQemu(st, kernel); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil || len(entries) != 1 {
		t.Fatalf("stage dir: %v %v", entries, err)
	}
	root := filepath.Join(parent, entries[0].Name())
	for _, p := range []string{
		"/usr/bin/qemu-system-x86_64", "/usr/bin/qemu-img",
		"/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so",
		"/usr/share/seabios/bios-256k.bin", "/usr/share/qemu/linuxboot_dma.bin",
	} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s not staged: %v", p, err)
			continue
		}
		if host, _ := os.Stat(p); host != nil && host.Size() != fi.Size() {
			t.Errorf("%s staged with %d bytes, host has %d", p, fi.Size(), host.Size())
		}
	}
	libs, err := filepath.Glob(filepath.Join(root, "usr/lib/x86_64-linux-gnu/libglib-2.0.so*"))
	if err != nil || len(libs) == 0 {
		t.Errorf("QEMU's libraries (libglib) not staged: %v %v", libs, err)
	}
	got, err := os.ReadFile(filepath.Join(root, guestVmlinuz))
	if err != nil || string(got) != "not really a kernel" {
		t.Errorf("guest kernel at %s = %q, %v", guestVmlinuz, got, err)
	}
}
