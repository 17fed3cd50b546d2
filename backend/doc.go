// Package backend defines what a ublk device stores its blocks in, and the
// local backends: null (completes without touching data), mem (RAM) and
// file (a regular file or a block device).
//
// A backend is an io.ReaderAt and io.WriterAt with a size; what else it can
// do (flush a volatile cache, discard, write zeroes cheaply) it says by
// implementing the optional interfaces Flusher, Discarder and ZeroWriter,
// found by type assertion. Such a synchronous backend is served by a fixed
// set of goroutines per queue, one per tag. A backend that can complete
// requests on its own (from an io_uring, from rpc callbacks) implements
// AsyncBackend instead and never blocks the queue.
package backend
