#!/bin/sh
# fio --verify=crc32c on the file target, whose reads, writes and fdatasyncs
# go on the queue's own io_uring (2 queues, 4 jobs, fsync every 7 writes).

. ./lib.sh
need_ublkctl
ublk_add -t file --file "$SCRATCH/fio-file.img" --size 256M -q 2 -d 64
set -- --filename="$DEV" --rw=randwrite --bsrange=4k-128k --ioengine=io_uring --direct=1 --iodepth=32 --numjobs=4 --size=64M --offset_increment=64M --verify=crc32c --verify_fatal=1 --randrepeat=1 --group_reporting
$FIO --name=w "$@" --do_verify=1 --fsync=7 >"$WORK/w.out" 2>&1 || { cat $WORK/w.out; fail "fio write"; }
$FIO --name=w "$@" --verify_only >"$WORK/v.out" 2>&1 || { cat $WORK/v.out; fail "fio verify"; }
grep -q 'err= 0' "$WORK/v.out" || fail "verify errors"
grep -E "IOPS|fsync" $WORK/w.out | head -3
say "ok: file target fio verify"
ublk_del $DEV_ID
exit 0
