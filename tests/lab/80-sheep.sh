#!/bin/sh
# The sheep target end to end: a local cluster (embedded etcd + 3 sheep
# nodes on 127.0.0.1, copies=3), a VDI, `ublkctl add -t sheep`, ext4 with
# checksummed files, then fio --verify=crc32c over the device, and every
# node holding the same objects.
. ./lib.sh
need_ublkctl
[ -x $DOG ] || skip "dog is not in the image"
cluster_dir="$SCRATCH/cluster"
start_local_cluster "$cluster_dir"
say "ok: local cluster up: $($DOG node list --json | $JQ -c '[.[].addr]')"
check "dog vdi create disk1 256M" $DOG vdi create disk1 256M
ublk_add -t sheep --vdi disk1 -q 2 -d 32 --secret-file "$CLUSTER_SECRET"
check "the kernel sees 256 MiB" test "$($BLOCKDEV --getsize64 "$DEV")" = 268435456
check "mkfs.ext4 on $DEV" $MKFS_EXT4 -q -F "$DEV"
mkdir -p /mnt/sheep
check "mount $DEV" mount -t ext4 "$DEV" /mnt/sheep
write_files /mnt/sheep 5
check "umount" umount /mnt/sheep
drop_caches
check "mount again" mount -t ext4 "$DEV" /mnt/sheep
verify_files /mnt/sheep
check "umount" umount /mnt/sheep
check "e2fsck -fn clean" $E2FSCK -f -n "$DEV"

set -- --filename="$DEV" --rw=randwrite --bsrange=4k-128k --ioengine=io_uring --direct=1 --iodepth=16 \
	--numjobs=2 --size=64M --offset_increment=64M --verify=crc32c --verify_fatal=1 --randrepeat=1 --group_reporting
$FIO --name=sheep "$@" --do_verify=1 >"$WORK/fio.out" 2>&1 || { cat "$WORK/fio.out"; fail "fio randwrite+verify on the sheep device failed"; }
$FIO --name=sheep "$@" --verify_only >"$WORK/verify.out" 2>&1 || { cat "$WORK/verify.out"; fail "fio --verify_only on the sheep device failed"; }
grep -q 'err= 0' "$WORK/verify.out" || fail "fio verify pass did not end with err= 0"
say "ok: fio wrote 128 MiB at random through 3 replicas and verified it"
ublk_del "$DEV_ID"

# Every object is on all 3 nodes with the same bytes (copies=3, 3 nodes).
# (The nodes' directories are node-0, node-1, node-2; their own state files
# differ by design, the object files must not.)
node_files() {
	(cd "$cluster_dir/node-$1" && find . -type f | grep -e '^\./objects/' -e '^\./stale/' | sort)
}
n0=$(node_files 0)
objects=$(echo "$n0" | grep -c '^./objects/')
say "node 0 holds $objects object files"
[ "$objects" -gt 0 ] || fail "node 0 holds no object files: $(ls -R "$cluster_dir" | head -20)"
for n in 1 2; do
	node_files $n >"$WORK/files.$n"
	echo "$n0" >"$WORK/files.0"
	cmp -s "$WORK/files.0" "$WORK/files.$n" ||
		fail "node $n holds a different set of files than node 0: $(diff "$WORK/files.0" "$WORK/files.$n" | grep '^[-+]\.' | head -20 | tr '\n' ' ')"
done
say "ok: all 3 nodes hold the same set of object files"
stop_local_cluster
exit 0
