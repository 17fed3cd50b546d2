// Package daemon is the ublk device daemon behind `ublkctl add`: it builds
// the backend a target names, applies the reclaim protections, creates and
// serves the device until it is told to stop, and keeps a small state file
// per device under /run/ublkctl so that `ublkctl list` and `del` can find
// the daemon that serves it.
//
// `ublkctl add` runs the daemon as a child process of its own executable,
// in a new session, and waits on a pipe until the child reports the device
// live (or why it failed): the command returns with the device usable, as
// ublksrv's `ublk add` does, and a failed start leaves nothing behind.
package daemon
