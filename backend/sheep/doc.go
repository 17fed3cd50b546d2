// Package sheep is the client side of a sheep cluster, living inside the
// ublk daemon (and dog): a backend.AsyncBackend serving one VDI.
//
// It is the gateway: it opens the VDI by name through package cluster,
// places objects with package placement on the cluster's epoch members
// (watching for changes), splits each request on object boundaries and
// talks to the replicas directly over the pipelined rpc transport:
//
//   - a write goes to all `copies` replicas in parallel and completes when
//     every one acknowledged; any replica failing (or down) fails the
//     request;
//   - a read goes to one replica and fails over to the next on an error or
//     timeout;
//   - FLUSH flushes every node written since the last flush; FUA is passed
//     on to every replica write;
//   - discard and write-zeroes are discards on every replica (discarded
//     ranges read back as zeros).
//
// Before any I/O goes to a node's address, the node there must say (NodeInfo)
// that it is that node, with the VDI's object size: anything else at that
// address would answer reads of objects it lacks with zeros. While open, the
// backend holds the VDI "in use" (cluster.VDIHandle), so no recovery moves
// its objects, and it fails every request once the VDI is deleted.
//
// Purge removes a deleted VDI's objects from the nodes.
//
// Every call has a deadline (Options.CallTimeout; FlushTimeout for flushes,
// which sync everything written since the last one), so a dead cluster
// surfaces as EIO, never a hang. The state of each request in flight is
// preallocated (Options.MaxInFlight of them, reused), so steady-state I/O
// allocates nothing; BenchmarkSubmit reports allocs/op.
package sheep
