#!/bin/sh
# The daemon serving a device is protected from reclaim deadlocks: every
# thread has PF_MEMALLOC_NOIO (PR_SET_IO_FLUSHER), its memory is locked
# (enough for every queue's I/O buffers), the OOM killer never picks it,
# and each queue thread is pinned to a single CPU.
. ./lib.sh
need_ublkctl

queues=2
depth=32
ublk_add -t mem --size 64M -q $queues -d $depth
pid=$(dev_field "$DEV_ID" pid)
check "the daemon pid '$pid' is alive" kill -0 "$pid"

threads=0
for stat in /proc/"$pid"/task/*/stat; do
	# Field 9 (flags) is the 7th field after the last ')': comm may hold spaces and parens.
	flags=$(sed 's/.*) //' "$stat" | awk '{print $7}')
	tid=$(basename "$(dirname "$stat")")
	[ $((flags & 0x80000)) -ne 0 ] || fail "thread $tid of $pid lacks PF_MEMALLOC_NOIO (flags $flags)"
	threads=$((threads + 1))
done
say "ok: all $threads threads of $pid have PF_MEMALLOC_NOIO (0x80000)"

vmlck=$(awk '/^VmLck:/ {print $2}' /proc/"$pid"/status)
max_io=$(dev_field "$DEV_ID" max_io)
if [ -n "$max_io" ] && [ "$max_io" != null ]; then
	need=$((queues * depth * max_io / 1024))
	say "daemon reports max_io=$max_io: needs VmLck >= $queues*$depth*$max_io = $need kB"
else
	need=1024
	say "list --json has no max_io key: asserting only VmLck >= 1 MiB"
fi
check "VmLck $vmlck kB >= $need kB" test "${vmlck:-0}" -ge "$need"
# VmLck also counts address space the Go runtime reserved but never
# touched (mlockall locks every mapping); smaps' Locked counts only pages
# that are resident and locked, so the buffers must really be there.
locked=$(awk '/^Locked:/ {print $2}' /proc/"$pid"/smaps_rollup)
rss=$(awk '/^VmRSS:/ {print $2}' /proc/"$pid"/status)
check "resident locked memory $locked kB >= $need kB" test "${locked:-0}" -ge "$need"
check "all resident memory is locked (Locked $locked kB, VmRSS $rss kB)" test "$((rss - locked))" -le 64
check "oom_score_adj is -1000" test "$(cat /proc/"$pid"/oom_score_adj)" = -1000

tids=$(dev_field "$DEV_ID" 'queue_tids // empty | .[]')
[ -n "$tids" ] || fail "list --json has no queue_tids for device $DEV_ID"
n=0
for tid in $tids; do
	[ -d /proc/"$pid"/task/"$tid" ] || fail "queue thread $tid is not a thread of $pid"
	cpus=$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/"$pid"/task/"$tid"/status)
	case "$cpus" in
	*[,-]* | "") fail "queue thread $tid may run on CPUs '$cpus', want a single CPU" ;;
	esac
	say "ok: queue thread $tid is pinned to CPU $cpus"
	n=$((n + 1))
done
check "one queue thread per queue ($n of $queues)" test $n -eq $queues
ublk_del "$DEV_ID"
exit 0
