// Command memhog puts a machine under memory pressure for a bounded time:
// it maps and touches anonymous memory in steps until MemAvailable, less
// the dirty and writeback pages it counts but cannot free at once, falls to
// a target share of MemTotal (5% by default), holds it there, re-touching
// its pages so they stay hot, and gives a step back whenever the machine
// falls far below the target, so that it pushes the kernel deep into
// reclaim without tipping it into the OOM killer. If the OOM killer runs
// anyway, memhog is its victim: it sets its own oom_score_adj to 1000.
//
// The lab's reclaim-deadlock test runs it next to a dd writing through a
// ublk device served by sheep nodes on the same machine (issue 4: the
// Sheepdog deadlock). Build with CGO_ENABLED=0 (the Makefile does).
package main
