#!/bin/sh
# fio writes the whole device at random (4 jobs, each its own quarter,
# iodepth 32, 4k-128k, O_DIRECT) with crc32c verify headers, then a
# verify-only pass reads it all back: fio exits 0 with no verify errors.
. ./lib.sh
need_ublkctl

size_mib=256
ublk_add -t mem --size ${size_mib}M -q 2 -d 64
engine=io_uring
$FIO --name=probe --filename="$DEV" --ioengine=io_uring --direct=1 --rw=read --bs=4k --size=4k >/dev/null 2>&1 || engine=libaio
say "using ioengine=$engine"
quarter=$((size_mib / 4))
set -- --filename="$DEV" --rw=randwrite --bsrange=4k-128k --ioengine=$engine --direct=1 \
	--iodepth=32 --numjobs=4 --size=${quarter}M --offset_increment=${quarter}M \
	--verify=crc32c --verify_fatal=1 --randrepeat=1 --group_reporting

$FIO --name=write "$@" --do_verify=1 >"$WORK/write.out" 2>&1
rc=$?
cat "$WORK/write.out"
[ $rc -eq 0 ] || fail "fio randwrite+verify exited $rc"
$FIO --name=write "$@" --verify_only >"$WORK/verify.out" 2>&1
rc=$?
cat "$WORK/verify.out"
[ $rc -eq 0 ] || fail "fio --verify_only exited $rc"
for f in write verify; do
	grep -Eiq 'verify failed|bad magic|bad header|crc32c: verify|verify: bad' "$WORK/$f.out" && fail "fio $f pass reports verify errors"
	grep -q 'err= 0' "$WORK/$f.out" || fail "fio $f pass did not end with err= 0"
done
say "ok: fio wrote ${size_mib} MiB at random and verified it twice, zero errors"
ublk_del "$DEV_ID"
exit 0
