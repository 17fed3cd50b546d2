#!/bin/sh
# A visible walk through ublkctl in the lab (make demo): features, a file
# device, a filesystem on it, data written and verified, teardown.
. ./lib.sh
need_ublkctl
run() {
	echo
	echo "lab# $*"
	"$@" || fail "'$*' failed"
}
backing=$SCRATCH/demo.img
run "$UBLKCTL" features
echo
echo "lab# ublkctl add -t file --file $backing --size 256M"
ublk_add -t file --file "$backing" --size 256M
run "$UBLKCTL" list
run $MKFS_EXT4 -q -F "$DEV"
mkdir -p /mnt/demo
run mount -t ext4 "$DEV" /mnt/demo
write_files /mnt/demo 4
run ls -l /mnt/demo
run sync
run umount /mnt/demo
drop_caches
run mount -t ext4 "$DEV" /mnt/demo
echo
echo "lab# sha256sum -c"
verify_files /mnt/demo
run umount /mnt/demo
run "$UBLKCTL" del -n "$DEV_ID"
run "$UBLKCTL" list

# The same with a sheep cluster: three nodes and etcd on 127.0.0.1, a VDI
# with three copies of every object, served as a block device.
cluster_dir=$SCRATCH/demo-cluster
echo
echo "lab# dog cluster start-local --dir $cluster_dir --nodes 3 --copies 3 &"
start_local_cluster "$cluster_dir"
run $DOG node list
run $DOG vdi create disk1 256M
run $DOG vdi list
echo
echo "lab# ublkctl add -t sheep --vdi disk1 --secret-file $CLUSTER_SECRET"
ublk_add -t sheep --vdi disk1 --secret-file "$CLUSTER_SECRET"
run "$UBLKCTL" list
run $MKFS_EXT4 -q -F "$DEV"
run mount -t ext4 "$DEV" /mnt/demo
write_files /mnt/demo 4
run umount /mnt/demo
drop_caches
run mount -t ext4 "$DEV" /mnt/demo
echo
echo "lab# sha256sum -c"
verify_files /mnt/demo
run umount /mnt/demo
run "$UBLKCTL" del -n "$DEV_ID"
run $DOG cluster info
stop_local_cluster
echo
say "demo done"
exit 0
