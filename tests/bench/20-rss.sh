#!/bin/sh
# The daemon's resident memory during a long mixed run: fio's rss job on
# $BENCH_RSS_DEVICE while /proc/PID/status is sampled every
# $BENCH_RSS_INTERVAL seconds. With mlockall the daemon's memory should be
# its locked buffers plus a fixed margin, flat over the whole run.
. ./lib.sh

device=$BENCH_RSS_DEVICE
if ! dev_up "$device"; then
	skip_device "$device" "$REASON"
	exit 77
fi
case $device in
ublk-*) ;;
*)
	dev_down "$device"
	skip_device "$device" "not a ublk device: no daemon to sample"
	exit 77
	;;
esac
pid=$(ublk_pid)
[ -n "$pid" ] && [ -d "/proc/$pid" ] || {
	error_record "$device" rss 1 "no daemon pid in ublkctl list --json"
	dev_down "$device"
	exit 1
}
say "sampling daemon $pid of $DEV every ${BENCH_RSS_INTERVAL}s during the rss job"

status_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
sample() {
	emit rss --arg d "$device" --argjson t "$1" --argjson rss "$(status_kb VmRSS)" \
		--argjson lck "$(status_kb VmLck)" --argjson hwm "$(status_kb VmHWM)" \
		--argjson thr "$(status_kb Threads)" \
		'{device:$d, t:$t, rss_kb:$rss, lck_kb:$lck, hwm_kb:$hwm, threads:$thr}'
}

sample 0
BENCH_DEV=$DEV BENCH_SIZE=$SIZE $FIO --output-format=json --output="$WORK/rss.json" jobs/rss.fio >"$WORK/fio.err" 2>&1 &
fio_pid=$!
start=$(date +%s)
while kill -0 "$fio_pid" 2>/dev/null; do
	sleep "$BENCH_RSS_INTERVAL"
	[ -d "/proc/$pid" ] || break
	sample $(($(date +%s) - start))
done
wait "$fio_pid"
rc=$?
if [ $rc -ne 0 ]; then
	error_record "$device" rss 1 "fio exited $rc: $(tail -n 2 "$WORK/fio.err" | tr '\n' ' ')"
	dev_down "$device"
	exit 1
fi
[ -d "/proc/$pid" ] || {
	error_record "$device" rss 1 "the daemon $pid died during the run"
	exit 1
}
sample $(($(date +%s) - start))
fio_record "$device" rss 1 "$WORK/rss.json"
rc=$?
dev_down "$device"
exit $rc
