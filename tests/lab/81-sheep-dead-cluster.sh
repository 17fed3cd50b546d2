#!/bin/sh
# A dead cluster is an I/O error, not a hang (issue 4 §3): a sheep device
# with a 5 s io-timeout over a local cluster; every node and etcd stopped
# with SIGSTOP: a direct read and a direct write each fail with EIO within
# a bounded time, the daemon stays up; SIGCONT: I/O works again and what
# was written before reads back intact; the cluster killed with SIGKILL:
# EIO again, bounded; the device is then deleted cleanly.
. ./lib.sh
need_ublkctl
[ -x $DOG ] || skip "dog is not in the image"
start_local_cluster "$SCRATCH/cluster"
check "dog vdi create disk1 64M" $DOG vdi create disk1 64M
ublk_add -t sheep --vdi disk1 -q 1 -d 16 --io-timeout 5s --secret-file "$CLUSTER_SECRET"
pid=$(dev_field "$DEV_ID" pid)
check "the kernel sees 64 MiB" test "$($BLOCKDEV --getsize64 "$DEV")" -eq 67108864
# A stopped cluster would not end on cleanup's SIGTERM.
cleanup_extra() { [ -n "$CLUSTER_PID" ] && kill -CONT "$CLUSTER_PID" 2>/dev/null; return 0; }

head -c 4194304 /dev/urandom >"$WORK/pattern"
check "write 4 MiB of random data (O_DIRECT)" dd if="$WORK/pattern" of="$DEV" bs=1M oflag=direct conv=fsync

# diagnose: what the daemon and the cluster were doing, for a failure.
diagnose() {
	echo "--- dd: $(cat "$WORK/eio.err" 2>/dev/null)"
	echo "--- $DEV: $($BLOCKDEV --getsize64 "$DEV" 2>&1) bytes"
	echo "--- cluster threads (state): $(cat /proc/"$CLUSTER_PID"/task/*/stat 2>/dev/null | awk '{print $3}' | sort | uniq -c | tr '\n' ' ')"
	echo "--- daemon log (last 30 lines):"
	tail -n 30 /run/ublkctl/ublkd-*.log 2>/dev/null
	echo "--- cluster log (last 30 lines):"
	tail -n 30 "$WORK/cluster.log" 2>/dev/null
}

# stop_cluster: SIGSTOP to the cluster process, then wait until every one
# of its threads is stopped (state T): kill returns before the threads of
# another CPU have taken the signal.
stop_cluster() {
	kill -STOP "$CLUSTER_PID" || fail "kill -STOP $CLUSTER_PID failed"
	_i=0
	while awk '$3 != "T" {found = 1} END {exit !found}' /proc/"$CLUSTER_PID"/task/*/stat; do
		_i=$((_i + 1))
		[ $_i -lt 100 ] || { diagnose; fail "the cluster's threads are not all stopped 10 s after SIGSTOP"; }
		sleep 0.1
	done
	say "ok: all $(ls /proc/"$CLUSTER_PID"/task | wc -l) threads of the cluster are stopped"
}

# expect_eio WHAT LIMIT COMMAND...: the command fails with an I/O error
# within LIMIT seconds.
expect_eio() {
	_what=$1
	_limit=$2
	shift 2
	_t0=$(date +%s)
	if "$@" 2>"$WORK/eio.err"; then
		diagnose
		fail "$_what succeeded with the cluster down"
	fi
	_took=$(($(date +%s) - _t0))
	grep -q -e "Input/output error" -e "I/O error" "$WORK/eio.err" || fail "$_what failed, but not with EIO: $(cat "$WORK/eio.err")"
	[ "$_took" -le "$_limit" ] || fail "$_what took ${_took}s to fail, more than ${_limit}s"
	say "ok: $_what failed with EIO after ${_took}s"
}

# Every node and etcd stopped (one process: dog cluster start-local).
stop_cluster
expect_eio "direct read with every node stopped" 30 dd if="$DEV" of=/dev/null bs=4k count=1 skip=2048 iflag=direct
expect_eio "direct write with every node stopped" 30 dd if=/dev/zero of="$DEV" bs=4k count=1 seek=4096 oflag=direct
check "the daemon is still running" kill -0 "$pid"
check "ublkctl list still shows the device" test "$(dev_field "$DEV_ID" state)" = LIVE
kill -CONT "$CLUSTER_PID"

# The cluster is back: I/O works again and the data is intact. Retry the
# first read for a while: connections are re-established on demand.
_i=0
until dd if="$DEV" of="$WORK/readback" bs=1M count=4 iflag=direct 2>"$WORK/rb.err"; do
	_i=$((_i + 1))
	[ $_i -lt 30 ] || fail "reads still fail 30 s after the cluster resumed: $(cat "$WORK/rb.err")"
	sleep 1
done
check "the 4 MiB written before read back identical" cmp "$WORK/pattern" "$WORK/readback"
check "a direct write succeeds again" dd if=/dev/zero of="$DEV" bs=4k count=1 seek=4096 oflag=direct

# The cluster killed outright: connections refused, EIO again.
kill -9 "$CLUSTER_PID"
wait "$CLUSTER_PID" 2>/dev/null
CLUSTER_PID=
expect_eio "direct read with the cluster killed" 30 dd if="$DEV" of=/dev/null bs=4k count=1 skip=1024 iflag=direct
expect_eio "direct write with the cluster killed" 30 dd if=/dev/zero of="$DEV" bs=4k count=1 seek=4096 oflag=direct
check "the daemon is still running" kill -0 "$pid"
ublk_del "$DEV_ID"
exit 0
