// Package sheep is the client side of a sheep cluster, living inside the
// ublk daemon (and dog): a backend.AsyncBackend serving one VDI.
//
// It is the gateway: it opens the VDI by name through package cluster,
// places objects with package placement on the members of the cluster's
// current epoch (watching it), splits each request on object boundaries and
// talks to the replicas directly over the pipelined rpc transport. Every
// data request carries the epoch it was placed on; a node in another epoch
// refuses it (StatusWrongEpoch, with its own epoch).
//
//   - a write goes to every target of its epoch in parallel and is
//     acknowledged only when every one of the SAME epoch acknowledged it.
//     A target that does not answer (unreachable, timeout, not ready,
//     shutting down) gets the write again with backoff: a write is
//     idempotent. A node already in a newer epoch makes the client wait
//     for that epoch and re-plan the piece on its targets; one behind is
//     retried shortly. Fewer targets than the cluster's min-copies fails
//     the write at once;
//   - a read goes to one replica and fails over to the next on any error;
//     when all failed, it retries in rounds with backoff;
//   - retries run from timers and rpc callbacks, never on the submitter's
//     thread, and stop at the request's io-timeout (Options.IOTimeout,
//     default 30s): the request then fails with EIO naming the last error;
//   - FLUSH flushes every member written since the last flush; FUA is
//     passed on to every replica write;
//   - discard and write-zeroes are discards on every replica (discarded
//     ranges read back as zeros).
//
// Before any I/O goes to a node's address, the node there must say (NodeInfo)
// that it is that node, with the VDI's object size: anything else at that
// address would answer reads of objects it lacks with zeros. While open, the
// backend holds the VDI "in use" (cluster.VDIHandle), and it fails every
// request once the VDI is deleted.
//
// Purge removes a deleted VDI's objects from the nodes.
//
// Every call has a deadline (Options.CallTimeout; FlushTimeout for flushes,
// which sync everything written since the last one) and every request the
// io-timeout, so a dead cluster surfaces as EIO, never a hang. The state of
// each request in flight, retry timers included, is preallocated
// (Options.MaxInFlight of them, reused), so steady-state I/O allocates
// nothing; BenchmarkSubmit reports allocs/op.
package sheep
