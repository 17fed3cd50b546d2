package main

import (
	"fmt"
	"os"

	"github.com/sheepblk/sheepblk/tools/lab/initramfs"
)

// A nested QEMU inside the guest (run --with-qemu), for tests that boot a
// VM on a ublk device. QEMU finds its accelerator module relative to its
// own path, so everything goes to the same paths it has on the host; the
// firmware trees are what the PC machine loads at start (SeaBIOS, option
// ROMs). Only runs that ask for it carry these ~60 MB.
var (
	qemuExecutables = []string{
		"/usr/bin/qemu-system-x86_64",
		"/usr/bin/qemu-img",
		"/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so",
	}
	qemuTrees = []string{"/usr/share/qemu", "/usr/share/seabios"}
)

// guestVmlinuz is where the guest finds its own kernel image, to boot it
// again in a nested QEMU.
const guestVmlinuz = "/lab/vmlinuz"

// addNestedQemu stages QEMU, its libraries and firmware, and the guest's
// own kernel image (vmlinuz).
func addNestedQemu(st *initramfs.Stage, vmlinuz string) error {
	for _, exe := range qemuExecutables {
		if _, err := os.Stat(exe); err != nil {
			return fmt.Errorf("--with-qemu: %s missing on the host: install qemu-system-x86 and qemu-utils", exe)
		}
		if err := st.AddExecutable(exe, exe); err != nil {
			return fmt.Errorf("--with-qemu: %w", err)
		}
	}
	for _, dir := range qemuTrees {
		if err := st.AddTree(dir, dir); err != nil {
			return fmt.Errorf("--with-qemu: add %s: %w", dir, err)
		}
	}
	if err := st.AddFile(vmlinuz, guestVmlinuz); err != nil {
		return fmt.Errorf("--with-qemu: add the guest kernel: %w", err)
	}
	return nil
}
