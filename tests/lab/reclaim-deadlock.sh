#!/bin/sh
# The original Sheepdog deadlock, in the lab (issue 4, part 1): on one small
# guest, three sheep nodes (dog cluster start-local: embedded etcd + 3 nodes
# in one process, copies=3) and the ublk daemon serving /dev/ublkbN from
# them; ext4 on it; a known random pattern written and then `dd if=/dev/zero
# bs=4k` writing 4x the guest's RAM, while memhog holds the guest down to 5%
# MemAvailable (deep in reclaim). It passes only when dd completes, the file
# system unmounts cleanly, the pattern verifies after remount, no task is
# reported "blocked for more than" hung_task_timeout_secs, no I/O error is
# logged, direct reclaim really happened, and every thread of the ublk
# daemon and of the node process carries PF_MEMALLOC_NOIO before and after
# the load (threads created meanwhile included). ITERATIONS rounds in one
# boot, each timed.
#
# Not in the default lab selection (no NN- prefix): it needs a small guest
# of its own (make test-deadlock: 512 MiB). The initramfs lives in the
# guest's RAM, so the lab-needs line below keeps fio and etcd out of it and
# the Makefile strips the binaries (initrd ~21 MB, not ~95).
#   lab run --mem 512 --scratch 12G --hung-task-secs 10 --go-test= --bin-dir DIR reclaim-deadlock.sh
# UNPROTECTED=1 (reclaim-deadlock-unprotected.sh) is the experiment: the
# same with PR_SET_IO_FLUSHER and mlockall switched off in the daemon and
# the nodes; it reports whether and where it hung.
# lab-needs: ublkctl dog memhog
. ./lib.sh
need_ublkctl
DOG=/usr/local/bin/dog
MEMHOG=/usr/local/bin/memhog
[ -x $DOG ] || skip "dog is not in the image"
[ -x $MEMHOG ] || skip "memhog is not in the image (make build)"

ITERATIONS=${ITERATIONS:-3}
UNPROTECTED=${UNPROTECTED:-0}
STALL_SECS=${STALL_SECS:-90}      # no write progress for this long while dd/sync/umount runs: a hang
STEP_LIMIT_SECS=${STEP_LIMIT_SECS:-900}
AVAIL_PERCENT=${AVAIL_PERCENT:-5}
unprot=""
mode=protected
if [ "$UNPROTECTED" = 1 ]; then
	unprot=--unprotected
	mode=unprotected
fi

# A hang leaves tasks in D state: unmounting or deleting would block this
# script too, so a hang ends it without the usual cleanup.
hung=0
cleanup_extra() {
	[ -n "$hog_pid" ] && kill "$hog_pid" 2>/dev/null
	[ $hung = 1 ] && return 0
	# A failure may come while dd still writes: stop it first (bounded:
	# a task stuck in D state never dies), else umount fails as busy.
	if [ -n "$dd_pid" ] && kill -KILL "$dd_pid" 2>/dev/null; then
		_i=0
		while kill -0 "$dd_pid" 2>/dev/null && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
		kill -0 "$dd_pid" 2>/dev/null && { say "cleanup: dd (pid $dd_pid) does not die; leaving everything in place"; return 0; }
	fi
	for _m in $(awk '$2 ~ "^/mnt/" {print $2}' /proc/mounts); do
		# Deleting the device under a mounted file system would block in
		# the kernel; leave both then.
		umount "$_m" 2>/dev/null || { say "cleanup: cannot unmount $_m; leaving the device in place"; return 0; }
	done
	"$UBLKCTL" del -a >/dev/null 2>&1
	[ -n "$cluster_pid" ] && kill "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null
	return 0
}
cleanup() {
	cleanup_extra
	return 0
}

# Every failure after the device is up says what the daemon and the nodes
# were doing and logged (lib.sh's write_files and check fail directly).
fail() {
	echo "$NAME: FAIL: $*" >&2
	[ -n "$daemon_pid" ] && [ "$logs_shown" != 1 ] && logs_shown=1 && show_logs
	cleanup
	exit 1
}

now_ms() { awk '{printf "%d\n", $1 * 1000}' /proc/uptime; }
secs() { awk -v ms="$1" 'BEGIN {printf "%.1f", ms / 1000}'; }
mem_kib() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }

# vmstat_snap: direct-reclaim stalls, pages scanned directly and by kswapd.
vmstat_snap() {
	awk '/^allocstall/ {a += $2} $1 == "pgscan_direct" {d = $2} $1 == "pgscan_kswapd" {k = $2}
		$1 == "pgsteal_direct" {s = $2} END {print a + 0, d + 0, k + 0, s + 0}' /proc/vmstat
}

# cpu_snap: the guest's busy and total CPU ticks (/proc/stat), and the
# ticks (utime+stime) of the daemon, the nodes and kswapd0: who used the
# (emulated, so scarce) CPU during a round.
cpu_snap() {
	echo "$(awk '$1 == "cpu" {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat)" \
		"$(proc_ticks "$daemon_pid") $(proc_ticks "$cluster_pid") $(proc_ticks "$kswapd_pid")"
}
proc_ticks() { sed 's/.*) //' /proc/"$1"/stat 2>/dev/null | awk '{print $12 + $13; f = 1} END {if (!f) print 0}'; }
kswapd_pid=$(grep -lx kswapd0 /proc/[0-9]*/comm 2>/dev/null | head -1 | cut -d/ -f3)

# cpu_report LABEL BEFORE...: what the guest's CPUs did since cpu_snap
# printed BEFORE (busy share; the daemon's, the nodes' and kswapd's share
# of the busy time).
cpu_report() {
	_label=$1
	shift
	set -- "$@" $(cpu_snap)
	awk -v l="$_label" -v b0="$1" -v t0="$2" -v d0="$3" -v n0="$4" -v k0="$5" -v b1="$6" -v t1="$7" -v d1="$8" -v n1="$9" -v k1="${10}" 'BEGIN {
		b = b1 - b0; t = t1 - t0; if (b < 1) b = 1; if (t < 1) t = 1
		printf "%s: guest CPUs %d%% busy; of the busy time: ublk daemon %d%%, sheep nodes %d%%, kswapd0 %d%%, the rest (dd, ext4, memhog, this script, irq) %d%%\n",
			l, 100 * b / t, 100 * (d1 - d0) / b, 100 * (n1 - n0) / b, 100 * (k1 - k0) / b, 100 * (b - (d1 - d0) - (n1 - n0) - (k1 - k0)) / b }'
}

# dev_written_sectors: sectors the ublk device has written (a sign of life).
dev_written_sectors() { awk '{print $7}' "/sys/block/ublkb$DEV_ID/stat" 2>/dev/null; }

# kernel_trouble: fails on a hung-task report or an I/O error in the log.
kernel_trouble() {
	dmesg >"$WORK/dmesg"
	if grep -q 'blocked for more than' "$WORK/dmesg"; then
		grep -A3 'blocked for more than' "$WORK/dmesg" | head -40
		report_hang "the kernel reported a task blocked for more than ${hung_secs}s during $1"
	fi
	if grep 'Killed process' "$WORK/dmesg" | grep -qv '(memhog)'; then
		grep 'Killed process' "$WORK/dmesg"
		fail "the OOM killer killed something other than memhog during $1"
	fi
	if grep -q -e 'I/O error' -e 'EXT4-fs error' -e 'ublk.*error' "$WORK/dmesg"; then
		grep -e 'I/O error' -e 'EXT4-fs error' -e 'ublk.*error' "$WORK/dmesg" | head -20
		fail "the kernel logged an I/O error during $1"
	fi
}

# show_logs prints the warnings and errors of the daemon and the nodes,
# and where their threads are.
show_logs() {
	thread_states "$daemon_pid" ublk-daemon
	thread_states "$cluster_pid" sheep-nodes
	for _f in $daemon_log "$WORK/cluster.log"; do
		[ -f "$_f" ] || continue
		say "last warnings and errors in $_f:"
		grep -i -e warn -e error -e '"level":"fatal"' "$_f" | tail -15 | cut -c1-400
	done
}

# log_summary WHEN: how many warnings and errors the daemon and the nodes
# have logged, and the most frequent messages: a write the sheep backend
# had to resend shows here even in a round that passes.
log_summary() {
	for _f in $daemon_log "$WORK/cluster.log"; do
		[ -f "$_f" ] || continue
		grep -e '"level":"warn"' -e '"level":"error"' "$_f" >"$WORK/warnings"
		_top=$(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$WORK/warnings" | sort | uniq -c | sort -rn | head -3 | awk '{$1 = $1 "x"; print}' | tr '\n' ';')
		say "$1: $(wc -l <"$WORK/warnings") warnings and errors in $_f so far${_top:+ (most frequent: $_top)}"
	done
}

# thread_states PID LABEL: where each thread of PID waits (state, wchan)
# and the kernel stack of those not idle in futex/epoll/nanosleep: what a
# stall of the daemon or the nodes is made of.
thread_states() {
	_summary=$(for _t in /proc/"$1"/task/*; do
		echo "$(sed 's/.*) //' "$_t/stat" 2>/dev/null | awk '{print $1}'):$(cat "$_t/wchan" 2>/dev/null)"
	done | sort | uniq -c | tr '\n' ' ')
	say "$2 (pid $1) threads by state:wchan: $_summary"
	for _t in /proc/"$1"/task/*; do
		case "$(cat "$_t/wchan" 2>/dev/null)" in
		futex_* | do_epoll_wait | ep_poll | hrtimer_nanosleep | do_nanosleep | io_cqring_wait | 0 | "") continue ;;
		esac
		say "  thread $(basename "$_t") $(sed 's/.*) //' "$_t/stat" | awk '{print $1}') in $(cat "$_t/wchan"):"
		sed 's/^/      /' "$_t/stack" 2>/dev/null | head -12
	done
}

# report_hang prints what is stuck and where, then ends the test.
report_hang() {
	hung=1
	say "HANG ($mode): $1"
	say "MemAvailable $(($(mem_kib MemAvailable) / 1024)) MiB of $(($(mem_kib MemTotal) / 1024)) MiB; reclaim counters (allocstall pgscan_direct pgscan_kswapd pgsteal_direct): $(vmstat_snap)"
	for p in /proc/[0-9]*; do
		for t in "$p"/task/*; do
			st=$(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{print $1}')
			[ "$st" = D ] || continue
			say "D state: pid $(basename "$p") tid $(basename "$t") ($(cat "$t/comm" 2>/dev/null)) flags $(sed 's/.*) //' "$t/stat" | awk '{print $7}')"
			sed 's/^/    /' "$t/stack" 2>/dev/null | head -25
		done
	done
	echo w >/proc/sysrq-trigger 2>/dev/null
	show_logs
	sleep 2
	echo "$NAME: FAIL: $1" >&2
	exit 1
}

# watch PID WHAT: waits for PID to exit; a hang is STALL_SECS without the
# device writing a sector and without PID writing a byte, or more than
# STEP_LIMIT_SECS in all. Sets WATCH_RC to PID's exit status.
watch() {
	_pid=$1
	_what=$2
	_start=$(now_ms)
	_last=$_start
	_lastsay=$_start
	_snapped=0
	_seen=""
	while kill -0 "$_pid" 2>/dev/null; do
		sleep 1
		_now=$(now_ms)
		_mark="$(dev_written_sectors) $(awk '/^wchar/ {print $2}' /proc/"$_pid"/io 2>/dev/null)"
		if [ "$_mark" != "$_seen" ]; then
			_seen=$_mark
			_last=$_now
			_snapped=0
		elif [ $((_now - _last)) -ge 10000 ] && [ "$_snapped" = 0 ]; then
			# Once per stall: what the daemon and the nodes are doing.
			_snapped=1
			say "  $_what: no progress for 10 s; MemAvailable $(($(mem_kib MemAvailable) / 1024)) MiB, dirty+writeback $((($(mem_kib Dirty) + $(mem_kib Writeback)) / 1024)) MiB"
			thread_states "$daemon_pid" ublk-daemon
			thread_states "$cluster_pid" sheep-nodes
		fi
		if [ -n "$hog_pid" ] && ! kill -0 "$hog_pid" 2>/dev/null; then
			wait "$hog_pid"
			say "memhog exited $? during $_what (137: the OOM killer chose it, as it should); starting it again"
			hog_restarts=$((hog_restarts + 1))
			start_hog
		fi
		if [ $(((_now - _lastsay) / 1000)) -ge 30 ]; then
			_lastsay=$_now
			say "  $_what: $(($(dev_written_sectors) / 2048)) MiB written to $DEV, $(secs $((_now - _start))) s; MemAvailable $(($(mem_kib MemAvailable) / 1024)) MiB, dirty+writeback $((($(mem_kib Dirty) + $(mem_kib Writeback)) / 1024)) MiB, memhog RSS $(($(awk '/^VmRSS/ {print $2}' /proc/$hog_pid/status 2>/dev/null || echo 0) / 1024)) MiB"
		fi
		[ $((_now - _last)) -lt $((STALL_SECS * 1000)) ] || report_hang "$_what made no progress for ${STALL_SECS}s (device sectors written, bytes written: $_mark)"
		[ $((_now - _start)) -lt $((STEP_LIMIT_SECS * 1000)) ] || report_hang "$_what still running after ${STEP_LIMIT_SECS}s"
		[ $(((_now - _start) / 1000 % 5)) = 0 ] && kernel_trouble "$_what"
	done
	wait "$_pid"
	WATCH_RC=$?
}

# start_hog: memhog holds the guest at AVAIL_PERCENT until it is stopped
# after the round's sync; its --duration is only a bound. The guest has no
# swap, so its anonymous pages cannot be reclaimed whether touched or not:
# re-touching them every second (memhog's default) would only take
# emulated CPU from the writers.
start_hog() {
	$MEMHOG --duration "${STEP_LIMIT_SECS}s" --avail-percent "$AVAIL_PERCENT" --step-mib 4 --retouch 60s --log-level warn >>"$WORK/memhog.out" 2>>"$WORK/memhog.err" &
	hog_pid=$!
}

# check_noio PID LABEL: every thread of PID has PF_MEMALLOC_NOIO (in the
# unprotected mode: report how many lack it). Threads not in LABEL's first
# list were created after start-up.
check_noio() {
	_pid=$1
	_label=$2
	_n=0
	_miss=""
	_new=0
	for _stat in /proc/"$_pid"/task/*/stat; do
		_flags=$(sed 's/.*) //' "$_stat" 2>/dev/null | awk '{print $7}')
		[ -n "$_flags" ] || continue # the thread exited meanwhile
		_tid=$(basename "$(dirname "$_stat")")
		_n=$((_n + 1))
		if [ -f "$WORK/tids-$_label" ]; then
			grep -qx "$_tid" "$WORK/tids-$_label" || _new=$((_new + 1))
		else
			echo "$_tid" >>"$WORK/tids-$_label.tmp"
		fi
		[ $((_flags & 0x80000)) -ne 0 ] || _miss="$_miss $_tid"
	done
	[ -f "$WORK/tids-$_label.tmp" ] && mv "$WORK/tids-$_label.tmp" "$WORK/tids-$_label"
	[ $_n -gt 0 ] || fail "$_label (pid $_pid) has no threads: is it still running?"
	if [ "$UNPROTECTED" = 1 ]; then
		say "unprotected: $(echo $_miss | wc -w) of $_n threads of $_label (pid $_pid) lack PF_MEMALLOC_NOIO ($_new created after start-up)"
		return 0
	fi
	[ -z "$_miss" ] || fail "threads$_miss of $_label (pid $_pid) lack PF_MEMALLOC_NOIO (0x80000)"
	say "ok: all $_n threads of $_label (pid $_pid) have PF_MEMALLOC_NOIO, $_new of them created after start-up"
}

hung_secs=$(cat /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null)
[ -n "$hung_secs" ] || fail "this kernel has no hung task detector (/proc/sys/kernel/hung_task_timeout_secs)"
total_kib=$(mem_kib MemTotal)
ram_mib=$(((total_kib / 1024 + 63) / 64 * 64)) # MemTotal rounded up to the -m the guest got
[ "$ram_mib" -le 1024 ] || skip "the guest has $ram_mib MiB: this test needs a small one (lab run --mem 640)"
dd_mib=$((4 * ram_mib))
vdi_mib=$((dd_mib + dd_mib / 4 + 256))
scratch_free_mib=$(df -m "$SCRATCH" | awk 'NR == 2 {print $4}')
[ "$scratch_free_mib" -ge $((3 * vdi_mib)) ] || fail "$SCRATCH has $scratch_free_mib MiB free; copies=3 of a $vdi_mib MiB VDI need $((3 * vdi_mib)) (lab run --scratch 12G)"
say "mode $mode: guest RAM $ram_mib MiB (MemTotal $((total_kib / 1024)) MiB, MemAvailable $(($(mem_kib MemAvailable) / 1024)) MiB), hung_task_timeout_secs $hung_secs, dd ${dd_mib} MiB per round, VDI ${vdi_mib} MiB, $ITERATIONS round(s)"

t0=$(now_ms)
cluster_dir="$SCRATCH/deadlock-cluster"
start_local_cluster "$cluster_dir" $unprot
cluster_pid=$CLUSTER_PID
say "ok: 3 sheep nodes up in process $cluster_pid"
# Seen twice in the lab (never on the host): right after the nodes show up,
# `vdi create` says the cluster is not formatted. Retry, and say so.
i=0
until $DOG vdi create deadlock "${vdi_mib}M" 2>"$WORK/vdi.err"; do
	i=$((i + 1))
	say "dog vdi create failed (try $i): $(cat "$WORK/vdi.err"); cluster info: $($DOG cluster info 2>&1 | tr '\n' ' ')"
	[ $i -lt 10 ] || { tail -20 "$WORK/cluster.log"; fail "dog vdi create deadlock ${vdi_mib}M failed 10 times"; }
	sleep 1
done
say "ok: dog vdi create deadlock ${vdi_mib}M"
ublk_add -t sheep --vdi deadlock -q 2 -d 32 --secret-file "$cluster_dir/secret" $unprot
daemon_pid=$(dev_field "$DEV_ID" pid)
daemon_log=$(dev_field "$DEV_ID" 'log_file // empty') # read now: in a hang, ublkctl might block too
check "mkfs.ext4 on $DEV" $MKFS_EXT4 -q -F "$DEV"
check_noio "$daemon_pid" ublk-daemon
check_noio "$cluster_pid" sheep-nodes
say "setup took $(secs $(($(now_ms) - t0))) s; daemon VmRSS $(awk '/^VmRSS/ {print $2}' /proc/$daemon_pid/status) kB, nodes VmRSS $(awk '/^VmRSS/ {print $2}' /proc/$cluster_pid/status) kB"

mnt=/mnt/deadlock
mkdir -p $mnt
durations=""
round=1
while [ $round -le "$ITERATIONS" ]; do
	r0=$(now_ms)
	check "round $round: mount $DEV" mount -t ext4 "$DEV" $mnt
	set -- $(vmstat_snap)
	stall0=$1 scan0=$2 kswapd0=$3
	cpu0=$(cpu_snap)
	: >"$WORK/memhog.out"
	: >"$WORK/memhog.err"
	hog_restarts=0
	start_hog
	i=0
	while [ "$(mem_kib MemAvailable)" -gt $((total_kib * (AVAIL_PERCENT + 5) / 100)) ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -0 $hog_pid 2>/dev/null || fail "memhog exited early: $(cat "$WORK/memhog.err")"
	say "round $round: memhog took MemAvailable to $(($(mem_kib MemAvailable) / 1024)) MiB in $(secs $((i * 100))) s"

	# The verified part: random files written under pressure.
	write_files $mnt 6
	w0=$(now_ms)
	dd if=/dev/zero of=$mnt/big bs=4k count=$((dd_mib * 256)) 2>"$WORK/dd.err" &
	dd_pid=$!
	watch $dd_pid "round $round: dd of ${dd_mib} MiB"
	dd_pid=""
	kernel_trouble "round $round: dd of ${dd_mib} MiB"
	[ "$WATCH_RC" = 0 ] || fail "round $round: dd exited $WATCH_RC: $(cat "$WORK/dd.err")"
	w1=$(now_ms)
	sync &
	watch $! "round $round: sync"
	w2=$(now_ms)
	kernel_trouble "round $round's writes"
	kill -TERM $hog_pid 2>/dev/null
	wait $hog_pid
	hog_rc=$?
	hog_pid=""
	[ $hog_rc = 0 ] || say "round $round: memhog exited $hog_rc (137: the OOM killer chose it): $(tail -c 300 "$WORK/memhog.err")"
	say "round $round: memhog was OOM-killed and restarted $hog_restarts time(s); its last run: $(tail -1 "$WORK/memhog.out")"
	set -- $(vmstat_snap)
	say "$(cpu_report "round $round: writes" $cpu0)"
	say "round $round: reclaim during the round: $(($1 - stall0)) direct-reclaim stalls, $(($2 - scan0)) pages scanned directly, $(($3 - kswapd0)) by kswapd"
	[ $(($1 - stall0 + $2 - scan0)) -gt 0 ] || fail "round $round: no direct reclaim happened: the guest was never under real memory pressure"
	say "ok: round $round: dd wrote ${dd_mib} MiB in $(secs $((w1 - w0))) s ($((dd_mib * 1000 / (w1 - w0 + 1))) MiB/s), sync took $(secs $((w2 - w1))) s"
	check_noio "$daemon_pid" ublk-daemon
	check_noio "$cluster_pid" sheep-nodes
	log_summary "round $round"

	umount $mnt &
	watch $! "round $round: umount"
	[ "$WATCH_RC" = 0 ] || fail "round $round: umount exited $WATCH_RC"
	drop_caches
	check "round $round: mount again" mount -t ext4 "$DEV" $mnt
	verify_files $mnt
	size=$(stat -c %s $mnt/big)
	check "round $round: big is $((dd_mib * 1048576)) bytes (is $size)" test "$size" = $((dd_mib * 1048576))
	rm -f $mnt/big $mnt/file*
	check "round $round: umount" umount $mnt
	kernel_trouble "round $round's verification"
	r1=$(now_ms)
	say "ok: round $round passed in $(secs $((r1 - r0))) s"
	durations="$durations $(secs $((r1 - r0)))s"
	round=$((round + 1))
done

check "e2fsck -fn clean" $E2FSCK -f -n "$DEV"
ublk_del "$DEV_ID"
kill "$cluster_pid"
wait "$cluster_pid"
rc=$?
cluster_pid=""
[ $rc = 0 ] || { tail -5 "$WORK/cluster.log"; fail "the cluster exited $rc on SIGTERM"; }
say "ok: mode $mode: $ITERATIONS round(s) passed, durations:$durations; total $(secs $(($(now_ms) - t0))) s"
exit 0
