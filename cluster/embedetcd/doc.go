// Package embedetcd runs an etcd server inside the current process, for
// one-machine clusters (`dog cluster start-local`) and for tests.
//
// It is kept apart from package cluster so that programs which only talk to
// etcd (the ublk daemon, sheep nodes pointed at a real etcd cluster) do not
// link the etcd server.
package embedetcd
