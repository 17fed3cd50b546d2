// Package ublk serves a block device through the kernel's ublk driver.
//
// It reads in three layers, as libublk-rs and go-fuse split theirs:
//   - uapi (subpackage): the kernel's structs and opcodes, nothing else;
//   - control.go: the control device /dev/ublk-control (ADD_DEV, SET_PARAMS,
//     START_DEV, STOP_DEV, DEL_DEV, GET_DEV_INFO, GET_FEATURES, ...);
//   - queue.go and dispatch.go: one io_uring and one locked OS thread per
//     hardware queue, FETCH_REQ for every tag, then COMMIT_AND_FETCH_REQ as
//     each request completes; backends run asynchronously, up to the queue
//     depth at once, and completions come back through a lock-free list
//     and an eventfd the ring reads;
//   - sockets.go: the sockets of a backend whose requests complete on the
//     network (backend.PolledBackend), polled on the queue's ring so that a
//     reply wakes the queue thread, which reads it itself;
//   - device.go: the user-facing API, Device, which ties a backend to a
//     new /dev/ublkbN and runs it until it is stopped.
//
// Memory discipline: a queue's I/O buffers (depth × max I/O size) are
// mmapped once and mlocked; nothing on the request path allocates.
package ublk
