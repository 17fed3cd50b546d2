#!/bin/sh
# Where the ublk daemon's time goes: for each "device:job" of
# BENCH_PROFILES, the job runs again while perf samples the daemon's
# threads, on CPU (cpu-clock: TCG has no hardware counters; Go keeps
# frame pointers, so call stacks work) and off CPU (every switch away,
# with its stack), printed as a @@bench:profile record. perf and its libraries come from
# the host, staged by tools/bench under ./perf (run through the loader,
# so the lab's base image stays as it is).
. ./lib.sh

PERF_DIR=$PWD/perf
perf() { LD_LIBRARY_PATH=$PERF_DIR/lib /lib64/ld-linux-x86-64.so.2 "$PERF_DIR/bin/perf" "$@"; }
if [ ! -f "$PERF_DIR/bin/perf" ] || ! perf --version >/dev/null 2>&1; then
	for t in $BENCH_PROFILES; do skip_device "${t%%:*}" "no profile: perf is not installed on the host (apt-get install linux-perf)"; done
	exit 77
fi
info perf "$(perf --version)"

# Off-CPU view: sched_switch needs tracefs.
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null

# report FILE SORT LIMIT: perf report's lines without comments.
report() {
	perf report -i "$1" --stdio --no-children --sort "$2" -g none --percent-limit "$3" 2>"$WORK/perf-report.err" |
		grep -v -e '^#' -e '^$' | head -n 40
}
samples() { perf report -i "$1" --stdio 2>/dev/null | awk '/^# Samples:/ {print $3; exit}'; }

failed=0
for t in $BENCH_PROFILES; do
	device=${t%%:*}
	job=${t#*:}
	if ! dev_up "$device"; then
		skip_device "$device" "$REASON"
		continue
	fi
	pid=$(ublk_pid)
	say "profiling daemon $pid of $device during $job"
	BENCH_DEV=$DEV BENCH_SIZE=$SIZE $FIO --output-format=json --output="$WORK/fio.json" "jobs/$job.fio" >"$WORK/fio.err" 2>&1 &
	fio_pid=$!
	sleep "$BENCH_RAMP_SECS"
	# On-CPU: where the daemon's threads run. Off-CPU: where they go to
	# sleep (every context switch, with its call stack); a daemon that is
	# slow but idle shows up there, not in the first.
	half=$(((BENCH_PROFILE_SECS + 1) / 2))
	perf record -e cpu-clock -F 499 -g -p "$pid" -o "$WORK/on.data" -- sleep "$half" >"$WORK/perf-record.err" 2>&1
	rc=$?
	perf record -e sched:sched_switch -g -p "$pid" -o "$WORK/off.data" -- sleep "$half" >>"$WORK/perf-record.err" 2>&1
	wait "$fio_pid"
	if [ $rc -ne 0 ]; then
		error_record "$device" "$job" 1 "perf record exited $rc: $(tail -n 2 "$WORK/perf-record.err" | tr '\n' ' ')"
		failed=$((failed + 1))
		dev_down "$device"
		continue
	fi
	iops=$($JQ -r '.jobs[0] | (.read.iops + .write.iops) | floor' "$WORK/fio.json" 2>/dev/null)
	report "$WORK/on.data" dso,sym 1 >"$WORK/on.txt"
	report "$WORK/off.data" sym 2 >"$WORK/off.txt"
	perf report -i "$WORK/off.data" --stdio --no-children --sort sym -g caller,0.5,callee,function,percent \
		--percent-limit 5 2>/dev/null | grep -v -e '^#' -e '^$' | head -n 80 >"$WORK/off.calls"
	emit profile --arg d "$device" --arg j "$job" --arg s "$(samples "$WORK/on.data")" \
		--arg sw "$(samples "$WORK/off.data")" --arg secs "$half" --arg iops "${iops:-?}" \
		--rawfile top "$WORK/on.txt" --rawfile off "$WORK/off.txt" --rawfile calls "$WORK/off.calls" \
		'{device:$d, job:$j, samples:$s, switches:$sw, seconds:$secs, iops:$iops, top:$top, off_cpu:$off, callers:$calls}'
	dev_down "$device"
done
[ "$failed" -eq 0 ]
