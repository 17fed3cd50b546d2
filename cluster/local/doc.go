// Package local runs a whole cluster in one process: an embedded etcd and N
// sheep nodes on 127.0.0.1, data under one directory. It is what `dog
// cluster start-local` runs, and what tests of the client use; nodes can be
// stopped and restarted to test failures.
package local
