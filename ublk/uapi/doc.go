// Package uapi is the ublk kernel ABI, from include/uapi/linux/ublk_cmd.h:
// command opcodes (legacy and ioctl-encoded), feature flags, device states,
// I/O operations, and the structs shared with the driver, laid out byte for
// byte (each has a size test against the header's numbers). Nothing here
// does I/O; the control device and the queues live in package ublk.
package uapi
