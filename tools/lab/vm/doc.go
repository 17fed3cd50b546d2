// Package vm boots the lab guest under QEMU's software emulation and
// streams its serial console line by line.
//
// The guest always runs with -accel tcg,thread=single -cpu max,-cx16:
// multi-threaded TCG, and the cmpxchg16b fast path of plain -cpu max,
// crash the guest kernel at random under load (see the lab notes). A
// wall-clock timeout kills QEMU, so a hung guest fails the run instead of
// hanging it.
package vm
