#!/bin/sh
# DISCARD and FLUSH reach the file backend: discarded ranges read back as
# zeros, and a sync after writing makes the daemon log a "flush".
. ./lib.sh
need_ublkctl

backing=$SCRATCH/discard.img
log=$WORK/daemon.log
rm -f "$backing" "$log"
ublk_add -t file --file "$backing" --size 64M --log-level debug --log-file "$log"
mib=8
dd if=/dev/urandom of="$WORK/random" bs=1M count=$mib 2>/dev/null
check "write $mib MiB of random data with O_DIRECT" dd if="$WORK/random" of="$DEV" bs=1M count=$mib oflag=direct 2>/dev/null
dd if="$DEV" bs=1M count=$mib iflag=direct 2>/dev/null | cmp -s - "$WORK/random" ||
	fail "reading the $mib MiB back did not return what was written"
say "ok: the $mib MiB read back intact"
sync
blocks_before=$(stat -c %b "$backing")
check "blkdiscard the whole device" $BLKDISCARD "$DEV"
sync
blocks_after=$(stat -c %b "$backing")
check "the backing file gave its blocks back ($blocks_before -> $blocks_after 512-byte blocks)" test "$blocks_after" -lt "$blocks_before"
dd if="$DEV" bs=1M count=$mib iflag=direct 2>/dev/null | cmp -n $((mib * 1048576)) - /dev/zero ||
	fail "discarded range does not read back as zeros"
say "ok: the discarded range reads back as zeros"

say "the kernel's view of the device cache: $(cat /sys/block/ublkb$DEV_ID/queue/write_cache)"
dd if=/dev/urandom of="$DEV" bs=1M count=4 seek=16 2>/dev/null
# sync(1) without arguments writes a bare block device's dirty pages but
# sends no FLUSH (only filesystems' sync_fs do); sync FILE is fsync, and
# fsync on a block device is a FLUSH.
check "sync $DEV after a buffered write" sync "$DEV"
found=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
	grep -q '"message":"flush"' "$log" 2>/dev/null && { found=1; break; }
	sleep 0.5
done
[ $found -eq 1 ] || { tail -20 "$log"; fail "no \"message\":\"flush\" line in the daemon log $log after sync"; }
say "ok: the daemon logged a flush: $(grep -m1 '"message":"flush"' "$log")"
ublk_del "$DEV_ID"
exit 0
