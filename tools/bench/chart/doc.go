// Package chart draws the benchmark report's PNG charts with gonum plot:
// IOPS per job and device (one panel per job, each ublk device next to its
// peer, whiskers spanning the repetitions), completion-latency percentiles
// on a log scale, and the daemon's memory over the memory run.
package chart
