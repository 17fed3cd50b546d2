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
DOG=/usr/local/bin/dog
cluster_dir=$SCRATCH/demo-cluster
cleanup_extra() { [ -n "$cluster_pid" ] && kill "$cluster_pid" 2>/dev/null; return 0; }
echo
echo "lab# dog cluster start-local --dir $cluster_dir --nodes 3 --copies 3 &"
$DOG cluster start-local --dir "$cluster_dir" --nodes 3 --copies 3 >"$WORK/cluster.log" 2>&1 &
cluster_pid=$!
i=0
until $DOG node list --json 2>/dev/null | $JQ -e 'length == 3' >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 300 ] || { cat "$WORK/cluster.log"; fail "the local cluster did not come up"; }
	sleep 0.1
done
run $DOG node list
run $DOG vdi create disk1 256M
run $DOG vdi list
echo
echo "lab# ublkctl add -t sheep --vdi disk1"
ublk_add -t sheep --vdi disk1
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
kill $cluster_pid
wait $cluster_pid
cluster_pid=
echo
say "demo done"
exit 0
