// Package clustertest starts etcd servers for tests: an embedded one (always
// available) or Debian's etcd binary (etcd 3.4, skipped when missing), both
// on 127.0.0.1 with a temporary data directory, stopped when the test ends.
package clustertest
