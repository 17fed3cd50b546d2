// Package proto is the wire format between a sheep storage node and its
// clients (the ublk daemon's sheep backend, dog, other sheep during
// recovery). It carries no transport: a message is the Header of an rpc
// frame, and data (read or written bytes, object id pages, node info) rides
// in the frame's Body.
//
// Every message is a fixed-size little-endian header that starts with a
// version byte, so a node can refuse a peer speaking another version
// instead of misreading it. Encoders append to caller buffers (AppendBinary)
// and decoders read from the frame in place and allocate nothing (NodeInfo's
// strings aside), so the I/O path costs no garbage.
//
// Decoders treat their input as hostile: every length and offset is bounded
// (against the object size, MaxListPage, the frame's own size) before it is
// used, and a bad message is an error, never a panic. Each decoder has a
// fuzz test.
//
// Data requests (IsDataOp) carry the client's cluster epoch; a node at
// another epoch answers StatusWrongEpoch with its own in the reply, and a
// node that has not recovered the object yet (or is not serving) answers
// StatusNotReady, which is retryable. Recovering nodes talk to each other
// with OpReadPeer (a whole object as of an epoch given as an argument) and
// ListObjects with FlagAllCopies (current and stale copies alike).
// Updates (IsUpdate) carry in Aux a write id, the same in every attempt of
// one update, and the attempt's number: a node serves one attempt of an
// update at a time and never one older than an attempt it already started
// (Request.WriteID).
//
// Objects are named as in Sheepdog: the VDI id in bits 32..55 and the
// object's index within the VDI in bits 0..31 (see ObjectID).
package proto
