// Package kernel fetches the lab's guest kernels from Debian's archive and
// caches them, unpacked, outside the repository.
//
// The host kernel has no ublk and no module support, so ublk is tested in a
// QEMU guest booting a Debian cloud kernel. Two are known by a short label:
// "6.12" is linux-image-cloud-amd64 from trixie (what most users run) and
// "7.3" is the same package from trixie-backports (every ublk feature; its
// image package is a stub depending on split linux-binary-*/linux-modules-*
// packages). The download uses a private apt sources list and state
// directories, so the host's apt setup is never touched; it needs the
// debian-archive-keyring package for signature checks.
//
// The cache lives under ${XDG_CACHE_HOME:-$HOME/.cache}/sheepblk-lab:
//
//	apt/<suite>/          private apt lists and package cache
//	<version>/vmlinuz     the kernel
//	<version>/modules/    decompressed .ko files and load.order
//	<label>.version       the version a label last resolved to
//
// so reruns and CI boot from the cache without touching the network.
package kernel
