#!/bin/sh
# The mem target keeps what a filesystem writes: mkfs.ext4, files of random
# data, remount after dropping caches, every checksum verified, fsck clean.
. ./lib.sh
need_ublkctl

ublk_add -t mem --size 128M
check "list --json shows target mem" test "$(dev_field "$DEV_ID" target)" = mem
check "mkfs.ext4 on $DEV" $MKFS_EXT4 -q -F "$DEV"
mkdir -p /mnt/mem
check "mount $DEV" mount -t ext4 "$DEV" /mnt/mem
write_files /mnt/mem 6
check "sync" sync
check "umount" umount /mnt/mem
drop_caches
check "mount $DEV again" mount -t ext4 "$DEV" /mnt/mem
verify_files /mnt/mem
# del refuses a device whose file system is mounted (one line, non-zero).
"$UBLKCTL" del -n "$DEV_ID" 2>"$WORK/del-mounted.err" && fail "ublkctl del of a mounted device succeeded"
check "del of the mounted device says so in one line" test "$(wc -l <"$WORK/del-mounted.err")" -eq 1
check "... naming the mount point" grep -q "mounted on /mnt/mem" "$WORK/del-mounted.err"
check "the device is still there" test -b "$DEV"
check "umount" umount /mnt/mem
check "e2fsck -fn finds $DEV clean" $E2FSCK -f -n "$DEV"
ublk_del "$DEV_ID"
exit 0
