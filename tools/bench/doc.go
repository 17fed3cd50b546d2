// Command bench is `make bench`: it boots the lab VM once (tools/lab) with
// the guest scripts of tests/bench, which run fio on every ublk target and,
// in the same boot, on the kernel driver a user would pick instead
// (null_blk, brd, loop with direct I/O over the same file, nbd over
// 127.0.0.1), then digests the records they print on the console into
// bench/results/<date>/: report.md, results.json, report.png (IOPS per job
// and device), latency.png (percentiles) and memory.png (the daemon's RSS
// during a mixed run), and rewrites the README's Benchmarks section.
//
//	bench                 the default run (5 s jobs, 2 repetitions, ~25 min of TCG)
//	bench --long          10 s jobs, 3 repetitions, a 10-minute memory run
//	bench --smoke         CI's check: null_blk vs ublk null, 2 s jobs, once
//	bench --from-log F    rebuild the report from a saved lab output, no boot
//
// A benchmark is not a test: missed targets are reported, not failed on.
// The exit status is 1 only when the run produced no usable result (or, in
// --smoke, when anything planned did not run), 2 for bad usage.
package main
