// Package report writes what a benchmark run found, for people and for
// programs: report.md (targets, tables of medians and spreads, ratios to
// the peer from the same boot, memory, host microbenchmarks, what was not
// measured and why), results.json (every raw run as well), and the
// Benchmarks section of the README between its markers.
package report
