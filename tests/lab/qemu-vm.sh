#!/bin/sh
# A virtual machine on a ublk device (issue 7): QEMU on a sheep-backed
# /dev/ublkbN, exactly the setup in which the original Sheepdog block
# driver deadlocked.
#  1. A local cluster (embedded etcd + 3 sheep nodes, copies=3), a VDI,
#     `ublkctl add -t sheep`.
#  2. Image import: a small ext4 disk image with a marker file, made here,
#     `qemu-img convert -O raw` onto the device, `qemu-img compare`, and the
#     marker read back through a mount of the device.
#  3. The original workload: a nested QEMU (TCG) boots this same kernel
#     with a tiny initramfs (qemu/nested-init.sh) on
#     `-drive file=DEV,format=raw,if=virtio,cache=none,aio=io_uring,discard=unmap`;
#     inside, dd writes a known pattern (numbered 1 MiB blocks) across the
#     whole disk with O_DIRECT. The pattern is then read back through the
#     device here and compared byte for byte.
#  4. Discard passthrough, in the same nested boot (a second boot would
#     cost minutes): once this script writes "go" to the nested guest's
#     control disk, it blkdiscards the second half of its disk. The ublk
#     device's counters must show those sectors arriving as DISCARD, the
#     sheep nodes' object files must give the space back (du before and
#     after), the half must read as zeros and the first half must still
#     hold the pattern.
#
# Not in the default lab selection (no NN- prefix): it needs the nested
# QEMU in the image (make test-lab runs it on its own boot):
#   lab run --with-qemu --test-timeout 40m --timeout 45m qemu-vm.sh
# The nested boot dominates: 2.5 to 6 min of its own guest time before
# its /init runs on the project's shared 2-core hosts (about 90 s on an
# idle one), then 15-40 s for its dd. The script took 4m49s (load ~6) and
# 14 min (load ~10).
# NESTED_TIMEOUT (default 1200 s) bounds the nested VM.
. ./lib.sh
need_ublkctl
[ -x $DOG ] || skip "dog is not in the image"
QEMU=/usr/bin/qemu-system-x86_64
QEMU_IMG=/usr/bin/qemu-img
VMLINUZ=/lab/vmlinuz
for f in $QEMU $QEMU_IMG $VMLINUZ; do
	[ -e $f ] || skip "$f is not in the image (lab run --with-qemu)"
done
DISK_MIB=${DISK_MIB:-16}
NESTED_TIMEOUT=${NESTED_TIMEOUT:-1200}
NESTED_MEM=${NESTED_MEM:-256}
# MEMORY_PRESSURE=1 (qemu-vm-lowmem.sh): memhog holds this guest at
# AVAIL_PERCENT of its memory while the nested VM runs, so the host side
# (QEMU, the ublk daemon, the nodes) works under reclaim.
MEMORY_PRESSURE=${MEMORY_PRESSURE:-0}
AVAIL_PERCENT=${AVAIL_PERCENT:-5}
MIN_RECLAIM_SCANS=${MIN_RECLAIM_SCANS:-10000}
MEMHOG=/usr/local/bin/memhog
if [ "$MEMORY_PRESSURE" = 1 ]; then
	[ -x $MEMHOG ] || skip "memhog is not in the image (make build)"
fi

cleanup_extra() {
	[ -n "$qemu_pid" ] && kill -KILL "$qemu_pid" 2>/dev/null
	[ -n "$hog_pid" ] && kill "$hog_pid" 2>/dev/null
	return 0
}

mem_mib() { awk -v k="$1:" '$1 == k {printf "%d\n", $2 / 1024}' /proc/meminfo; }
# reclaim_scans: pages scanned by direct reclaim and kswapd so far.
reclaim_scans() { awk '$1 == "pgscan_direct" || $1 == "pgscan_kswapd" {n += $2} END {print n + 0}' /proc/vmstat; }
direct_stalls() { awk '/^allocstall/ {n += $2} END {print n + 0}' /proc/vmstat; }

# start_hog: memhog (the OOM killer's first choice) takes this guest down
# to AVAIL_PERCENT available memory and holds it there.
start_hog() {
	scans0=$(reclaim_scans)
	stalls0=$(direct_stalls)
	$MEMHOG --duration "${NESTED_TIMEOUT}s" --avail-percent "$AVAIL_PERCENT" --step-mib 4 --log-level warn >"$WORK/memhog.out" 2>"$WORK/memhog.err" &
	hog_pid=$!
	_i=0
	while [ $_i -lt 300 ] && [ "$(mem_mib MemAvailable)" -gt $(($(mem_mib MemTotal) * (AVAIL_PERCENT + 5) / 100)) ]; do
		sleep 0.2
		_i=$((_i + 1))
	done
	say "memhog (pid $hog_pid) holds the guest at MemAvailable $(mem_mib MemAvailable) of $(mem_mib MemTotal) MiB"
}

# stop_hog: stops memhog and checks that reclaim really ran meanwhile.
stop_hog() {
	[ -n "$hog_pid" ] || return 0
	kill "$hog_pid" 2>/dev/null
	wait "$hog_pid"
	say "memhog exited $? (0: stopped here; 137: the OOM killer chose it, as designed): $(tail -1 "$WORK/memhog.out")"
	hog_pid=
	_scans=$(($(reclaim_scans) - scans0))
	say "while the nested VM ran: $_scans pages scanned by reclaim, $(($(direct_stalls) - stalls0)) direct-reclaim stalls"
	# A 64 MiB run scanned ~130000 pages; 16 MiB only ~300, too little to
	# call pressure (qemu-vm-lowmem.sh uses 64).
	check "the guest was under reclaim while the nested VM wrote ($_scans >= $MIN_RECLAIM_SCANS pages scanned)" test "$_scans" -ge "$MIN_RECLAIM_SCANS"
	dmesg | grep 'Killed process' | grep -v '(memhog)' && fail "the OOM killer killed something other than memhog"
	return 0
}

now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v s="$1" '{printf "%.0f", $1 - s}' /proc/uptime; }

# gen_pattern: the stream the nested guest's dd writes, DISK_MIB blocks of
# 1 MiB: a 32-byte header naming the block, then $WORK/pattern (random,
# 1 MiB - 32 bytes). Same code as in qemu/nested-init.sh.
gen_pattern() {
	_i=0
	while [ $_i -lt "$DISK_MIB" ]; do
		printf '%-31s\n' "sheepblk nested block $_i"
		cat "$WORK/pattern"
		_i=$((_i + 1))
	done
}

# sheep_kib: disk space the three nodes' object files take (KiB).
sheep_kib() {
	du -sk "$cluster_dir" | awk '{print $1}'
}

# discard_sectors: sectors the kernel has sent the ublk device as DISCARD
# (field 14 of /sys/block/DEV/stat; WRITE_ZEROES counts as a write).
discard_sectors() {
	awk '{print $14}' "/sys/block/ublkb$DEV_ID/stat"
}

# nested_marker WHAT: waits (up to the nested deadline) until the nested
# guest's console shows "@@nested:ok WHAT"; fails on "@@nested:fail" or
# when QEMU ends first.
nested_marker() {
	until grep -q "^@@nested:ok $1" "$nested_log" 2>/dev/null; do
		grep -q '^@@nested:fail' "$nested_log" 2>/dev/null && nested_failed "the nested guest failed: $(grep -m1 '^@@nested:fail' "$nested_log")"
		kill -0 "$qemu_pid" 2>/dev/null || { sleep 1; grep -q "^@@nested:ok $1" "$nested_log" && break; nested_failed "nested QEMU ended before '$1'"; }
		[ "$(since "$nested_t0")" -lt "$NESTED_TIMEOUT" ] || nested_failed "no '$1' from the nested guest within ${NESTED_TIMEOUT}s"
		sleep 1
	done
	say "ok: the nested guest reports '$1' after $(since "$nested_t0") s"
}

# nested_failed WHY: shows the nested console's end and fails.
nested_failed() {
	show_nested
	fail "$*"
}
show_nested() {
	tr -d '\r' <"$nested_log" | grep -v '^ *$' | tail -40 | sed 's/^/    nested| /'
}

# wait_nodes_up N: until dog lists N nodes. (start_local_cluster's own
# wait can return early: jq -e exits 0 on empty input, which is what
# `dog node list` prints before etcd answers.)
wait_nodes_up() {
	_i=0
	until _nodes=$($DOG node list --json 2>/dev/null) &&
		[ "$(echo "$_nodes" | $JQ -r 'if type == "array" then length else 0 end' 2>/dev/null)" = "$1" ]; do
		_i=$((_i + 1))
		[ $_i -lt 600 ] || { cat "$WORK/cluster.log"; fail "dog did not list $1 nodes within 60 s"; }
		sleep 0.1
	done
	say "ok: local cluster up: $(echo "$_nodes" | $JQ -c '[.[].addr]')"
}

# 1. The sheep-backed device.
cluster_dir="$SCRATCH/cluster"
start_local_cluster "$cluster_dir"
wait_nodes_up 3
$DOG vdi create vm "${DISK_MIB}M" || { $DOG cluster info; cat "$WORK/cluster.log"; fail "dog vdi create vm ${DISK_MIB}M"; }
say "ok: dog vdi create vm ${DISK_MIB}M"
ublk_add -t sheep --vdi vm --secret-file "$cluster_dir/secret"
check "the kernel sees $DISK_MIB MiB" test "$($BLOCKDEV --getsize64 "$DEV")" = $((DISK_MIB * 1048576))

# 2. Image import with qemu-img.
img=$SCRATCH/vm-image.raw
mkdir -p "$WORK/root/etc"
marker="sheepblk image marker $(head -c 16 /dev/urandom | sha256sum | cut -c1-16)"
echo "$marker" >"$WORK/root/etc/marker"
rm -f "$img"
check "make a ${DISK_MIB} MiB ext4 image with a marker file" $MKFS_EXT4 -q -F -d "$WORK/root" -L vmroot "$img" "${DISK_MIB}M"
t0=$(now)
check "qemu-img convert -O raw the image onto $DEV" $QEMU_IMG convert -p -n -O raw -t none "$img" "$DEV"
say "qemu-img convert took $(since "$t0") s"
check "qemu-img compare: the image and $DEV are identical" $QEMU_IMG compare -f raw -F raw "$img" "$DEV"
drop_caches
mkdir -p /mnt/vm
check "mount the imported image from $DEV" mount -t ext4 -o ro "$DEV" /mnt/vm
check "the marker file reads back" test "$(cat /mnt/vm/etc/marker)" = "$marker"
check "umount" umount /mnt/vm

# 3. The nested guest's dd across its disk.
head -c $((1048576 - 32)) /dev/urandom >"$WORK/pattern"
nested=$WORK/nested-root
rm -rf "$nested"
mkdir -p "$nested/bin" "$nested/proc" "$nested/sys" "$nested/dev" "$nested/tmp"
cp /bin/busybox "$nested/bin/busybox"
cp /lib/modules/virtio_blk.ko "$nested/virtio_blk.ko" || skip "this kernel has no virtio_blk module (the nested guest needs it)"
cp "$WORK/pattern" "$nested/pattern"
cp ./qemu/nested-init.sh "$nested/init"
chmod 755 "$nested/init" "$nested/bin/busybox"
(cd "$nested" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$WORK/nested.img" || fail "pack the nested initramfs"
say "nested initramfs: $(wc -c <"$WORK/nested.img") bytes"
# The control disk: the nested guest waits for "go" in its first sector
# before it discards. On ext4 (cache=none needs O_DIRECT).
control=$SCRATCH/nested-control.img
rm -f "$control"
dd if=/dev/zero of="$control" bs=4096 count=1 2>/dev/null
nested_log=$WORK/nested.log
# Under memory pressure, bound QEMU's translated-code cache (up to 1 GiB
# by default on 64-bit hosts, touched as it fills).
nested_accel=tcg
[ "$MEMORY_PRESSURE" = 1 ] && nested_accel=tcg,tb-size=64
nested_t0=$(now)
$QEMU -accel "$nested_accel" -cpu qemu64,-cx16 -m "$NESTED_MEM" -smp 1 \
	-nographic -no-reboot -vga none -nic none \
	-kernel $VMLINUZ -initrd "$WORK/nested.img" \
	-append "console=ttyS0 panic=-1 quiet" \
	-drive "file=$DEV,format=raw,if=virtio,cache=none,aio=io_uring,discard=unmap" \
	-drive "file=$control,format=raw,if=virtio,cache=none" \
	</dev/null >"$nested_log" 2>&1 &
qemu_pid=$!
say "nested QEMU (pid $qemu_pid) booting on $DEV"
[ "$MEMORY_PRESSURE" = 1 ] && start_hog
nested_marker write
gen_pattern >"$SCRATCH/expected.raw" || fail "generate the expected pattern"
dd if="$DEV" of="$SCRATCH/readback.raw" bs=1M iflag=direct 2>/dev/null || fail "read $DEV back"
cmp "$SCRATCH/expected.raw" "$SCRATCH/readback.raw" || nested_failed "what the nested guest's dd wrote does not read back through $DEV"
say "ok: the nested guest's $DISK_MIB MiB pattern reads back intact through $DEV ($(sha256sum <"$SCRATCH/readback.raw" | cut -c1-16))"

# 4. discard=unmap: the nested guest's blkdiscard reaches the sheep nodes.
sync
kib_before=$(sheep_kib)
disc_before=$(discard_sectors)
printf go | dd of="$control" bs=512 count=1 conv=notrunc,sync oflag=direct 2>/dev/null || fail "write go to the control disk"
nested_marker discard
wait "$qemu_pid"
rc=$?
qemu_pid=
show_nested
[ $rc = 0 ] || fail "nested QEMU exited $rc"
stop_hog
say "ok: the nested VM ran $(since "$nested_t0") s in all"
half_mib=$((DISK_MIB / 2))
disc_after=$(discard_sectors)
say "the ublk device received $((disc_after - disc_before)) sectors as DISCARD"
check "at least $half_mib MiB arrived at the ublk device as DISCARD" test $((disc_after - disc_before)) -ge $((half_mib * 2048))
sync
kib_after=$(sheep_kib)
freed=$((kib_before - kib_after))
# copies=3: each discarded MiB frees about 3 MiB on the nodes.
want=$((half_mib * 1024 * 3 * 9 / 10))
say "sheep nodes' object files: $kib_before KiB before, $kib_after KiB after the discard ($freed KiB freed, want >= $want)"
check "the sheep nodes gave the discarded space back" test "$freed" -ge "$want"
drop_caches
dd if="$DEV" bs=1M skip=$half_mib count=$half_mib iflag=direct 2>/dev/null | cmp -n $((half_mib * 1048576)) - /dev/zero ||
	fail "the discarded half does not read back as zeros"
say "ok: the discarded half reads back as zeros"
dd if="$DEV" bs=1M count=$half_mib iflag=direct 2>/dev/null | cmp -n $((half_mib * 1048576)) - "$SCRATCH/expected.raw" ||
	fail "the first half no longer holds the pattern after the discard"
say "ok: the first half still holds the pattern"

rm -f "$img" "$control" "$SCRATCH/expected.raw" "$SCRATCH/readback.raw"
ublk_del "$DEV_ID"
stop_local_cluster
exit 0
