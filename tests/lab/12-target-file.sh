#!/bin/sh
# The file target persists: files written through an ext4 on the device
# survive del and a new add of the same backing file (size taken from the
# file), every checksum verified. Where ublk has AUTO_BUF_REG (6.16+) the
# first device moves its data with no copy (zero copy) and the second,
# --zero-copy=false, through the daemon's buffers: each reads what the
# other wrote.
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
exit 0
