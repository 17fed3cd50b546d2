#!/bin/busybox sh
# The lab guest's /init (written by tools/lab). It prepares a minimal
# system, runs the planned test scripts with marker lines around each on
# the serial console, and powers off. Its exit status never matters: the
# host reads the markers.
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=linux
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
hostname lab
ip link set lo up
set -a # the plan's variables reach the test scripts
. /lab/plan
set +a
echo "$LAB_HUNG_TASK_SECS" > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
for m in $(cat /lib/modules/load.order); do
	insmod "/lib/modules/$m" || echo "lab: insmod $m failed"
done
if [ -n "$LAB_SCRATCH_DISK" ]; then
	mount -t ext4 "$LAB_SCRATCH_DISK" /scratch || echo "lab: cannot mount the scratch disk $LAB_SCRATCH_DISK"
fi
export LAB_SCRATCH=/scratch LAB_TESTS_DIR=/lab/tests LAB_GOTEST_DIR=/lab/gotest
printf '\n@@lab:boot %s\n' "$(uname -r)"

if [ "$LAB_MODE" = shell ]; then
	echo "lab: interactive shell; leave with exit (or Ctrl-A x)"
	cd /lab/tests && setsid cttyhack sh -l
else
	cd /lab/tests || exit 1
	for t in $LAB_TESTS; do
		printf '\n@@lab:begin %s\n' "$t"
		timeout -s KILL "$LAB_TEST_TIMEOUT" sh "/lab/tests/$t" </dev/null
		rc=$?
		[ "$rc" = 137 ] && echo "lab: $t was killed (SIGKILL: the ${LAB_TEST_TIMEOUT}s limit or the OOM killer)"
		printf '\n@@lab:end %s %d\n' "$t" "$rc"
	done
	printf '\n@@lab:done\n'
fi
sync
poweroff -f
