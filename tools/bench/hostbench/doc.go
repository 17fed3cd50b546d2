// Package hostbench runs the project's `go test -bench` microbenchmarks
// on the host (the dispatch path, rpc vs grpc-go, placement lookups) and
// parses their output, so the benchmark report can show them next to the
// lab's device numbers.
package hostbench
