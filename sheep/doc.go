// Package sheep is a storage node: it keeps objects of VDIs in a local
// object store (package store) and serves them over the project's rpc
// transport, speaking the wire format of package proto.
//
// A Service is the rpc.Handler: it decodes each request, bounds it against
// the object size, runs it on the store (reading straight into the rpc
// reply buffer) and answers with a status; bad input of any kind is an
// error reply, never a panic, and the node goes on serving. A Node is a
// whole node: store, service, rpc server and, when it has a cluster client,
// its registration in etcd. NewNode/Serve/Shutdown let tests and a local
// cluster run several nodes in one process; cmd/sheep runs one.
//
// In a cluster the node follows the membership epochs (see the shared
// design, epochs.md) and recovers online, with no operator step:
//
//   - transition.go applies every epoch change in order, at start-up too:
//     requests of the old epoch drain, objects the node no longer holds
//     become stale copies (store.Supersede), the recovery state is saved.
//   - recovery.go admits each data request: right epoch, registration
//     live, and the object ready, i.e. present, known absent, or pulled now
//     from its previous holders (one pull per object however many wait).
//     An object that is not ready is never served, so "absent reads as
//     zeros" holds only for objects known to be absent.
//   - walkback.go is the search for an object over past epochs: a holder
//     of epoch e that has no copy proves no write was acknowledged in e.
//   - recovery_background.go pulls, throttled, everything the node holds
//     under the epoch, reports progress to etcd, marks the epoch complete
//     and prunes stale copies once the whole cluster has recovered.
//   - peer.go reaches the other nodes (OpReadPeer, listings) by their
//     registered addresses.
//
// Every node also runs the cluster's membership controller
// (cluster.RunMembership), which adds registered nodes and removes those
// gone for longer than the grace.
package sheep
