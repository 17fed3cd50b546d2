#!/bin/sh
# The lab itself works: ublk_drv is loaded and PR_SET_IO_FLUSHER reaches
# every thread of a Go process (here, as root, it must not be skipped).
. ./lib.sh

say "kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2}' /proc/meminfo) kB RAM"
check "/dev/ublk-control is a character device" test -c /dev/ublk-control
check "ublk_drv is loaded" test -d /sys/module/ublk_drv
check "lo is up" ip link show lo up
check "localhost resolves (/etc/hosts) and answers on lo" ping -c 1 -W 2 localhost

# The real tools the suite calls run (their libraries made it in).
check "mkfs.ext4 (e2fsprogs) runs" sh -c "$MKFS_EXT4 -V >/dev/null 2>&1"
check "e2fsck runs" sh -c "$E2FSCK -V >/dev/null 2>&1"
check "blkdiscard (util-linux) runs" sh -c "$BLKDISCARD -V >/dev/null"
check "blockdev (util-linux) runs" sh -c "$BLOCKDEV -V >/dev/null"
check "jq runs" sh -c "echo '[{\"id\":7}]' | $JQ -e '.[0].id == 7' >/dev/null"
check "fio with io_uring reads null_blk" sh -c "$FIO --name=probe --filename=/dev/nullb0 --ioengine=io_uring --direct=1 --rw=randread --bs=4k --size=16M >/dev/null"
if [ -n "$LAB_SCRATCH_DISK" ]; then
	check "the scratch disk $LAB_SCRATCH_DISK is mounted at /scratch" sh -c "awk '\$1 == \"$LAB_SCRATCH_DISK\" && \$2 == \"/scratch\"' /proc/mounts | grep -q ."
	check "/scratch takes an O_DIRECT write" dd if=/dev/zero of=/scratch/.probe bs=4k count=16 oflag=direct
	rm -f /scratch/.probe
fi

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
