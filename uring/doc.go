// Package uring is the project's thin io_uring layer on golang.org/x/sys/unix:
// ring setup (with SQE128 for URING_CMD payloads, and COOP_TASKRUN and
// SINGLE_ISSUER where the kernel has them), submission and completion queue
// access with the ordering the kernel's ABI requires, submit-and-wait, batch
// reaping, and the IORING_OP_URING_CMD encoding that ublk speaks.
//
// A Ring is used by one goroutine at a time, normally one locked OS thread:
// the ublk driver binds a queue's commands to the task that issued them, and
// SINGLE_ISSUER lets the kernel skip locking for exactly that case.
//
// Memory ordering: the kernel reads the SQ tail and writes the SQ head and CQ
// tail; the application writes SQ entries, the SQ tail and the CQ head. Entries
// are published with an atomic (release) store of the tail after they are
// written, and a CQE is read only after an atomic (acquire) load of the CQ tail
// shows it; the CQ head is advanced with an atomic store only after the
// entries before it are consumed, so the kernel never overwrites a CQE in use.
package uring
