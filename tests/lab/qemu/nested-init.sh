#!/bin/busybox sh
# /init of the nested guest that tests/lab/qemu-vm.sh boots in QEMU on a
# ublk device. It sees the ublk device as /dev/vda (virtio) and a small
# control disk as /dev/vdb, and does, in one boot (a nested boot is slow):
#  1. write: the original workload, dd writing a known pattern across the
#     whole disk (1 MiB blocks, each a numbered 32-byte header and then
#     /pattern), O_DIRECT, then fsync; reports "@@nested:ok write";
#  2. waits until the outer test, done checking the pattern, writes "go"
#     at the start of /dev/vdb;
#  3. discard: blkdiscard of the second half of /dev/vda (discard=unmap on
#     the QEMU drive passes it on to the ublk device); "@@nested:ok discard".
# A failure prints "@@nested:fail STEP WHY". Then it powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
set -o pipefail

uptime_s() { cut -d' ' -f1 /proc/uptime; }
finish() {
	echo "@@nested:$*"
	sync
	poweroff -f
}

insmod /virtio_blk.ko || finish "fail boot insmod virtio_blk"
i=0
while { [ ! -b /dev/vda ] || [ ! -b /dev/vdb ]; } && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -b /dev/vda ] && [ -b /dev/vdb ] || finish "fail boot no /dev/vda and /dev/vdb"
mib=$(($(cat /sys/block/vda/size) / 2048))
echo "nested: booted in $(uptime_s) s; /dev/vda is $mib MiB, discard granularity $(cat /sys/block/vda/queue/discard_granularity)"

start=$(uptime_s)
i=0
while [ $i -lt $mib ]; do
	printf '%-31s\n' "sheepblk nested block $i"
	cat /pattern
	i=$((i + 1))
	[ $((i % 4)) = 0 ] && echo "nested: $i MiB generated at $(uptime_s) s" >&2
done | dd of=/dev/vda bs=1M iflag=fullblock oflag=direct conv=fsync 2>/tmp/dd.err ||
	finish "fail write dd: $(cat /tmp/dd.err)"
echo "nested: dd wrote $mib MiB in $(awk -v s="$start" '{printf "%.1f", $1 - s}' /proc/uptime) s: $(tail -1 /tmp/dd.err)"
echo "@@nested:ok write"

until [ "$(dd if=/dev/vdb bs=512 count=1 iflag=direct 2>/dev/null | head -c 2)" = go ]; do
	sleep 1
done
half=$((mib / 2 * 1048576))
blkdiscard -o $half -l $half /dev/vda 2>/tmp/discard.err || finish "fail discard blkdiscard: $(cat /tmp/discard.err)"
echo "nested: blkdiscard -o $half -l $half /dev/vda done"
finish "ok discard"
