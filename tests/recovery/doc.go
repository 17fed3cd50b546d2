// Package recovery holds issue 6's recovery benchmark: how long a cluster
// of four sheep nodes (copies=3, on loopback, in this process) takes to
// re-replicate 1 GiB and 4 GiB of objects after a node dies, and what the
// client's 4 KiB random I/O rate is during that recovery compared with
// before it. It is a benchmark (`go test -bench . -benchtime 1x
// ./tests/recovery/`), not a timed test: the numbers go to the README.
package recovery
