// Package initramfs assembles the lab guest's root filesystem: a directory
// tree staged on the host (files copied to the paths they will have in the
// guest, dynamic executables with every library ldd lists) and packed as a
// gzip-compressed newc cpio archive, the format the kernel unpacks into its
// initial rootfs.
//
// The kernel accepts several archives concatenated, later ones overlaying
// earlier ones, so the lab splits its image in two: a base that only
// changes with the kernel or the host's tools (cached by a key over what
// went in) and a small per-run overlay with the project's binaries, test
// scripts and the run plan.
package initramfs
