#!/bin/sh
# The lab itself works: ublk_drv is loaded and PR_SET_IO_FLUSHER reaches
# every thread of a Go process (here, as root, it must not be skipped).
. ./lib.sh

say "kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2}' /proc/meminfo) kB RAM"
check "/dev/ublk-control is a character device" test -c /dev/ublk-control
check "ublk_drv is loaded" test -d /sys/module/ublk_drv
check "lo is up" ip link show lo up
check "localhost resolves (/etc/hosts) and answers on lo" ping -c 1 -W 2 localhost

bin=$LAB_GOTEST_DIR/reclaim.test
[ -x "$bin" ] || fail "$bin missing: the reclaim package's tests did not build"
"$bin" -test.v -test.count=1 >"$WORK/reclaim.out" 2>&1
rc=$?
cat "$WORK/reclaim.out"
[ $rc -eq 0 ] || fail "reclaim.test exited $rc"
grep -q -- '--- SKIP: TestIOFlusherReachesAllThreads' "$WORK/reclaim.out" &&
	fail "TestIOFlusherReachesAllThreads was skipped in the lab, where root may set PR_SET_IO_FLUSHER"
grep -q -- '--- PASS: TestIOFlusherReachesAllThreads' "$WORK/reclaim.out" ||
	fail "TestIOFlusherReachesAllThreads did not PASS"
say "ok: reclaim.test passed, TestIOFlusherReachesAllThreads PASSED (not skipped)"
exit 0
