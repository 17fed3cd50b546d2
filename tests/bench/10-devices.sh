#!/bin/sh
# Runs every fio job of the plan on every device of the plan, in the order
# bench.conf gives for each repetition (tools/bench alternates which
# device of a pair goes first, so drift in the emulated machine does not
# always favour the same side). A device is made before its jobs and
# removed after them; one this boot cannot make is reported as skipped.
. ./lib.sh

info kernel "$(uname -r)"
info cpus "$(nproc)"
info mem_kb "$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
info fio "$($FIO --version)"
[ -x "$UBLKCTL" ] && info ublk_features "$("$UBLKCTL" features 2>&1 | tr '\n' ' ')"

failed=0
rep=1
while [ "$rep" -le "$BENCH_REPS" ]; do
	eval "order=\$BENCH_ORDER_$rep"
	for device in $order; do
		if ! dev_up "$device"; then
			skip_device "$device" "$REASON"
			continue
		fi
		say "rep $rep: $device on $DEV"
		[ "$rep" -eq 1 ] && queue_limits "$device"
		for job in $BENCH_JOBS; do
			run_job "$device" "$job" "$rep" || failed=$((failed + 1))
		done
		dev_down "$device"
	done
	rep=$((rep + 1))
done
say "$failed fio run(s) failed"
[ "$failed" -eq 0 ]
