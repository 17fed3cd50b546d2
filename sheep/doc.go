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
package sheep
