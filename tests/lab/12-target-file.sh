#!/bin/sh
# The file target persists: files written through an ext4 on the device
# survive del and a new add of the same backing file (size taken from the
# file), every checksum verified. Where ublk has AUTO_BUF_REG (6.16+) the
# first device moves its data with no copy (zero copy) and the second,
# --zero-copy=false, through the daemon's buffers: each reads what the
# other wrote. Then the backing file shrinks under a live device (below).
. ./lib.sh
need_ublkctl

backing=$SCRATCH/file-target.img
rm -f "$backing"
ublk_add -t file --file "$backing" --size 128M
check "the backing file was created with 134217728 bytes" test "$(stat -c %s "$backing")" = 134217728
check "list --json shows target file" test "$(dev_field "$DEV_ID" target)" = file
check "list --json shows backing $backing" test "$(dev_field "$DEV_ID" backing)" = "$backing"
if "$UBLKCTL" features --json | $JQ -e '.features | index("AUTO_BUF_REG")' >/dev/null; then zc=true; else zc=false; fi
check "zero copy is $zc (the device's flags list AUTO_BUF_REG exactly when ublk has it)" \
	test "$(list_json ".[] | select(.id == $DEV_ID) | .flags | index(\"AUTO_BUF_REG\") != null")" = "$zc"
check "mkfs.ext4 on $DEV" $MKFS_EXT4 -q -F "$DEV"
mkdir -p /mnt/file
check "mount $DEV" mount -t ext4 "$DEV" /mnt/file
write_files /mnt/file 6
check "sync" sync
check "umount" umount /mnt/file
ublk_del "$DEV_ID"
drop_caches

ublk_add -t file --file "$backing" --zero-copy=false
check "re-added device has the file's size" test "$($BLOCKDEV --getsize64 "$DEV")" = 134217728
check "--zero-copy=false: no AUTO_BUF_REG in the device's flags" \
	test "$(list_json ".[] | select(.id == $DEV_ID) | .flags | index(\"AUTO_BUF_REG\") != null")" = false
check "mount $DEV" mount -t ext4 "$DEV" /mnt/file
verify_files /mnt/file
check "umount" umount /mnt/file
check "e2fsck -fn finds $DEV clean" $E2FSCK -f -n "$DEV"
ublk_del "$DEV_ID"

# The file shrinks behind the daemon's back: a read that straddles the new
# end comes up short, and the queue reads on from where it stopped: the
# part before the end reads the file's bytes, the rest zeroes. With zero
# copy the pages are the kernel's, and the read fails instead of handing
# them back unfilled.
half=$((64 * 1024 * 1024))
dd if=/dev/urandom of="$WORK/tail" bs=4k count=1 2>/dev/null
dd if=/dev/zero of="$WORK/zeros" bs=4k count=1 2>/dev/null
for zcopy in false $zc; do
	ublk_add -t file --file "$backing" --zero-copy=$zcopy
	check "write 4 KiB just below 64 MiB" dd if="$WORK/tail" of="$DEV" bs=4k seek=$((half / 4096 - 1)) count=1 oflag=direct
	check "shrink the backing file to 64 MiB" truncate -s $half "$backing"
	if [ "$zcopy" = false ]; then
		dd if="$DEV" bs=8k skip=$((half - 4096)) count=1 iflag=direct,skip_bytes of="$WORK/straddle" 2>"$WORK/dd.err" ||
			{ cat "$WORK/dd.err"; fail "direct read across the file's new end"; }
		check "the read across the end returns the 4 KiB before it" sh -c "head -c 4096 '$WORK/straddle' | cmp -s - '$WORK/tail'"
		check "and zeroes after it" sh -c "tail -c 4096 '$WORK/straddle' | cmp -s - '$WORK/zeros'"
	else
		check "zero copy: a direct read past the file's end fails" sh -c "! dd if='$DEV' bs=4k skip=$((half / 4096 + 16)) count=1 iflag=direct of=/dev/null 2>/dev/null"
		check "zero copy: a read before the end still returns its bytes" sh -c "dd if='$DEV' bs=4k skip=$((half / 4096 - 1)) count=1 iflag=direct 2>/dev/null | cmp -s - '$WORK/tail'"
	fi
	ublk_del "$DEV_ID"
	truncate -s 128M "$backing"
	[ "$zc" = true ] || break
done
exit 0
