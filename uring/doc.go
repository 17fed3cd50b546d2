// Package uring is the project's thin io_uring layer on golang.org/x/sys/unix:
// ring setup (with SQE128 for URING_CMD payloads, and COOP_TASKRUN,
// SINGLE_ISSUER and DEFER_TASKRUN where the kernel has them), submission and
// completion queue access with the ordering the kernel's ABI requires,
// submit-and-wait, batch reaping, registered buffers and files (READ_FIXED,
// WRITE_FIXED), and the IORING_OP_URING_CMD encoding that ublk speaks.
//
// With DEFER_TASKRUN the kernel posts completions only while the ring's
// task waits in io_uring_enter with GETEVENTS (SubmitAndWait with waitNr >
// 0), so a ring set up with it must be waited on, not only polled.
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
