// Command bench is `make bench`: it boots the lab VM once (tools/lab) with
// the guest scripts of tests/bench, which run fio on every ublk target and,
// in the same boot, on the kernel driver a user would pick instead
// (null_blk, brd, loop with direct I/O over the same file, nbd over
// 127.0.0.1), then digests the records they print on the console into
// bench/results/<date>/: report.md, results.json, report.png (IOPS per job
// and device), latency.png (percentiles) and memory.png (the daemon's RSS
// during a mixed run), and rewrites the README's Benchmarks section.
// Around every fio run on a ublk device the guest reads the daemon's CPU
// time and context switches from /proc, and a few slow paths are run again
// under perf (the host's, staged into the guest) for on- and off-CPU
// profiles of the daemon.
//
//	bench                 the default run (5 s jobs, 2 repetitions, ~35 min of TCG)
//	bench --long          10 s jobs, 3 repetitions, a 10-minute memory run
//	bench --smoke         CI's check: null_blk vs ublk null, 2 s jobs, once
//	bench --from-log F    rebuild the report from a saved lab output, no boot
//	bench --rerender DIR  render DIR/results.json again, with DIR/notes.md
//
// A benchmark is not a test: missed targets are reported, not failed on.
// The exit status is 1 only when the run produced no usable result (or, in
// --smoke, when anything planned did not run), 2 for bad usage.
package main
