// Package dog implements the `dog` admin CLI (named after Sheepdog's): cluster
// format/info/check, node list/join/remove, VDI create/list/delete/resize/
// read/write, and the one-command local cluster. cmd/dog only calls Execute.
// Subpackages: check (cluster check's work), nodeclient (dog's client of
// one node).
//
// Every command takes --etcd (default $SHEEPBLK_ETCD, else
// http://127.0.0.1:2379) and --json (machine-readable output). Errors are one
// line on stderr; the exit status is 2 for bad usage, 1 for a failure.
package dog
