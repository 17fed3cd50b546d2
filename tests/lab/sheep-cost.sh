#!/bin/sh
# Measurement, not a test (never in the default suite): what one request
# costs on the network paths, nbd-server + the kernel's nbd client against
# ublk sheep with one node (copies=1; see COST_NODES), in one boot:
#   out/lab/lab run --kernel 6.12 --go-test= sheep-cost.sh
# For each job it samples, between the end of fio's ramp and its end, the
# CPU time (utime+stime) and the context switches of the block driver's
# user-space side (the ublk daemon; nothing for nbd, whose client is in
# the kernel), of the server (the process running the sheep node, or
# nbd-server), and the whole guest's busy time, and divides by the
# requests fio completed. With ./alt/ublkctl and ./alt/dog beside this
# script (another build), the same jobs also run on them ("sheep-alt"),
# for an A/B of two builds in one boot.
# Prints one "COST" line per device, job and repetition.
. ./lib.sh
need_ublkctl
[ -x "$DOG" ] || skip "dog is not in the image"
[ -b /dev/nbd0 ] && [ -x /usr/bin/nbd-server ] || skip "no nbd in this image"

# What a system call costs depends on these: with page-table isolation
# every one switches page tables, which an emulated CPU pays for dearly.
echo "CPU meltdown: $(cat /sys/devices/system/cpu/vulnerabilities/meltdown 2>/dev/null); spectre_v2: $(cat /sys/devices/system/cpu/vulnerabilities/spectre_v2 2>/dev/null)"

RUNTIME=${COST_RUNTIME:-5}
RAMP=2
SIZE_MB=256
HZ=100 # USER_HZ: /proc/*/stat counts CPU time in 1/100 s
data=$SCRATCH/cost
rm -rf "$data"
mkdir -p "$data"

cleanup_extra() {
	nbd_stop
	cluster_kill
}

# cluster_kill: stops the cluster's processes (sheep_start).
cluster_kill() {
	for _p in $NPIDS $CPID; do kill "$_p" 2>/dev/null && wait "$_p" 2>/dev/null; done
	CPID=
	NPIDS=
}

# cpu PIDS...: utime+stime of the processes, in ticks.
cpu() {
	_t=0
	for _p in "$@"; do
		_t=$((_t + $(awk '{print $14 + $15}' /proc/"$_p"/stat 2>/dev/null || echo 0)))
	done
	echo $_t
}

# switches PIDS...: context switches of every thread of the processes.
switches() {
	[ $# -gt 0 ] || { echo 0; return; }
	cat $(for _p in "$@"; do echo /proc/"$_p"/task/*/status; done) 2>/dev/null </dev/null |
		awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}'
}

# threads PIDS...: "tid switches cpu_ticks comm" per thread of the processes.
threads() {
	for _p in "$@"; do
		for _t in /proc/"$_p"/task/*; do
			[ -r "$_t/status" ] || continue
			printf '%s %s %s\n' "${_t##*/}" \
				"$(awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}' "$_t/status" 2>/dev/null)" \
				"$(awk '{print $14 + $15}' "$_t/stat" 2>/dev/null)"
		done
	done
}

# thread_costs LABEL JOB SIDE REQS BEFORE AFTER: with COST_THREADS=1, one
# THREAD line per thread that switched, its switches and CPU per request and
# where it sleeps (wchan), busiest first: which threads a request wakes.
thread_costs() {
	[ "${COST_THREADS:-0}" = 1 ] || return 0
	echo "$6" | while read -r _tid _sw _cpu; do
		_b=$(echo "$5" | awk -v t="$_tid" '$1 == t {print $2, $3}')
		[ -n "$_b" ] || _b="0 0"
		echo "$_tid $_sw $_cpu $_b $(cat /proc/*/task/"$_tid"/wchan 2>/dev/null | head -n 1)"
	done | awk -v l="$1" -v j="$2" -v side="$3" -v r="$4" -v hz=$HZ '{
		sw = $2 - $4; c = $3 - $5
		if (sw > 0) printf "%09.4f THREAD dev=%s job=%s %s tid=%s sw_per_req=%.2f cpu_us_per_req=%.0f wchan=%s\n",
			sw / r, l, j, side, $1, sw / r, c * 1e6 / hz / r, $6 }' | sort -r | cut -d' ' -f2- | head -n 8
}

# busy: the guest's non-idle CPU time, in ticks.
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# measure LABEL DEV JOB DRIVER_PIDS SERVER_PIDS: runs the job and prints its COST line.
measure() {
	_label=$1 _dev=$2 _job=$3 _drv=$4 _srv=$5
	set -- $_job
	$FIO --name=j --filename="$_dev" --rw=$1 --bs=4k --iodepth=$2 --numjobs=$3 --direct=1 --ioengine=io_uring \
		--runtime=$RUNTIME --ramp_time=$RAMP --time_based --size=${SIZE_MB}M --group_reporting \
		--output-format=json >"$WORK/fio.json" 2>"$WORK/fio.err" </dev/null &
	_fio=$!
	sleep $RAMP
	_d0=$(cpu $_drv) _s0=$(cpu $_srv) _b0=$(busy) _dw0=$(switches $_drv) _sw0=$(switches $_srv)
	_dt0=$(threads $_drv) _st0=$(threads $_srv)
	profile "$_label" "$1/qd$2x$3" "$_drv" "$_srv"
	wait $_fio || fail "fio $_job on $_label: $(tail -n 2 "$WORK/fio.err")"
	_d1=$(cpu $_drv) _s1=$(cpu $_srv) _b1=$(busy) _dw1=$(switches $_drv) _sw1=$(switches $_srv)
	_dt1=$(threads $_drv) _st1=$(threads $_srv)
	_iops=$($JQ -r '.jobs[0] | (.read.iops + .write.iops) | floor' "$WORK/fio.json")
	thread_costs "$_label" "$1/qd$2x$3" driver $((_iops * RUNTIME + 1)) "$_dt0" "$_dt1"
	thread_costs "$_label" "$1/qd$2x$3" server $((_iops * RUNTIME + 1)) "$_st0" "$_st1"
	_lat=$($JQ -r '.jobs[0] | [.read, .write] | map(select(.io_bytes > 0)) | .[0].clat_ns.percentile["99.000000"] / 1000 | floor' "$WORK/fio.json")
	awk -v l="$_label" -v j="$1/qd$2x$3" -v n="$_iops" -v t="$RUNTIME" -v hz=$HZ -v p99="$_lat" \
		-v d=$((_d1 - _d0)) -v s=$((_s1 - _s0)) -v b=$((_b1 - _b0)) -v dw=$((_dw1 - _dw0)) -v sw=$((_sw1 - _sw0)) 'BEGIN {
		r = n * t; if (r < 1) r = 1; us = 1e6 / hz / r
		printf "COST rep=%s dev=%s job=%s iops=%d p99_us=%s cpu_us_per_req: driver=%.0f server=%.0f guest=%.0f switches_per_req: driver=%.2f server=%.2f\n",
			ENVIRON["REP"], l, j, n, p99, d * us, s * us, b * us, dw / r, sw / r }'
}

# idle LABEL DRIVER_PIDS SERVER_PIDS: what the processes cost doing nothing
# (timers, the embedded etcd of the local cluster), per second.
idle() {
	_d0=$(cpu $2) _s0=$(cpu $3) _dw0=$(switches $2) _sw0=$(switches $3)
	sleep $RUNTIME
	_d1=$(cpu $2) _s1=$(cpu $3) _dw1=$(switches $2) _sw1=$(switches $3)
	awk -v l="$1" -v t="$RUNTIME" -v hz=$HZ -v d=$((_d1 - _d0)) -v s=$((_s1 - _s0)) -v dw=$((_dw1 - _dw0)) -v sw=$((_sw1 - _sw0)) 'BEGIN {
		printf "IDLE rep=%s dev=%s cpu_ms_per_s: driver=%.1f server=%.1f switches_per_s: driver=%.0f server=%.0f\n",
			ENVIRON["REP"], l, d * 1000 / hz / t, s * 1000 / hz / t, dw / t, sw / t }'
}

# profile LABEL JOB DRIVER_PIDS SERVER_PIDS: with ./perf beside this script
# (the host's perf and its libraries), records 1.5 s of each side during
# the job for every mode COST_PROFILE names (each mode takes its own 1.5 s:
# give COST_RUNTIME room). The recording runs inside the measured window
# and slows the guest: COST lines of a profiled run are not comparable with
# those of a run without COST_PROFILE.
#   cpu (or 1)  on-CPU samples, the top symbols as PROFILE lines;
#   system      the whole guest, kernel threads and fio included, with the
#               busiest call chains of the user-space processes;
#   switches    where the threads block: the call chain of every switch-out;
#   wakeups     which threads the side's threads wake, and from where;
#   syscalls    the system calls per second of each thread, by number;
#   timeline    where a request's time goes: every wakeup and switch of the
#               driver, the server and fio, as the mean gap from one kind
#               of event to the next (at QD1 the chain is one request).
PERF_DIR=$PWD/perf
perf() { LD_LIBRARY_PATH=$PERF_DIR/lib /lib64/ld-linux-x86-64.so.2 "$PERF_DIR/bin/perf" "$@"; }
profile() {
	[ "${COST_PROFILE:-0}" != 0 ] && [ -f "$PERF_DIR/bin/perf" ] || return 0
	mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
	for _mode in $COST_PROFILE; do
		[ "$_mode" = 1 ] && _mode=cpu
		case $_mode in
		cpu | system | switches | wakeups | syscalls | timeline) ;;
		*) fail "COST_PROFILE: unknown mode $_mode (cpu, system, switches, wakeups, syscalls, timeline)" ;;
		esac
		if [ "$_mode" = system ] || [ "$_mode" = timeline ]; then
			profile_$_mode "$1" "$2" "$3" "$4"
			continue
		fi
		for _side in driver server; do
			_pids=$3
			[ $_side = server ] && _pids=$4
			[ -n "$_pids" ] && profile_$_mode "$1 $2 $_side" "$(echo $_pids | tr ' ' ',')" "$WORK/$_side.data"
		done
	done
}

# profile_MODE "LABEL JOB SIDE" PIDS DATAFILE: one mode of profile.
profile_cpu() {
	perf record -e cpu-clock -F 499 -g -p "$2" -o "$3" -- sleep 1.5 >/dev/null 2>&1
	perf report -i "$3" --stdio --no-children --sort dso,sym -g none --percent-limit 1.5 2>/dev/null |
		grep -v -e '^#' -e '^$' | head -n 25 | sed "s|^|PROFILE $1: |"
	# The same by thread (perf's "pid" key is the thread): which threads
	# burn the CPU, and on what.
	perf report -i "$3" --stdio --no-children --sort pid,sym -g none --percent-limit 1 2>/dev/null |
		grep -v -e '^#' -e '^$' | head -n 30 | sed "s|^|PROFILE-TID $1: |"
}
profile_switches() {
	# The user-space call chains of every switch-out, folded.
	perf record -e sched:sched_switch -g -p "$2" -o "$3" -- sleep 1.5 >/dev/null 2>&1
	perf script -i "$3" -F ip,sym 2>/dev/null | awk '
		NF == 0 { if (st != "") n[st]++; st = ""; k = 0; next }
		{ if (k < 16) st = st (st == "" ? "" : ";") $2; k++ }
		END { for (s in n) printf "%d %s\n", n[s], s }' | sort -rn | head -n 10 | sed "s|^|SWITCHES $1: |"
}
profile_wakeups() {
	# Every wakeup the threads cause, as "waker tid > wakee comm/tid" and
	# the waker's user-space call chain, or "[kernel]" and its first
	# kernel frames for a wakeup from an interrupt, folded.
	perf record -e sched:sched_wakeup -g -p "$2" -o "$3" -- sleep 1.5 >/dev/null 2>&1
	perf script -i "$3" -F tid,trace,ip,sym 2>/dev/null | awk '
		NF == 0 { if (h != "") n[h ": " (irq || st == "" ? "[kernel] " kst : st)]++; h = ""; st = ""; kst = ""; k = 0; kn = 0; irq = 0; next }
		h == "" { w = ""; for (i = 2; i <= NF; i++) { if ($i ~ /^comm=/) w = substr($i, 6); if ($i ~ /^pid=/) w = w "/" substr($i, 5) }
			h = $1 " > " w; next }
		$1 ~ /^ffffffff/ { if (kn >= 1 && kn < 5) kst = kst (kst == "" ? "" : ";") $2; kn++
			if ($2 ~ /^asm_(sysvec|common_interrupt)/) irq = 1; next }
		{ if (k < 12) st = st (st == "" ? "" : ";") $2; k++ }
		END { for (s in n) printf "%d %s\n", n[s], s }' | sort -rn | head -n 14 | sed "s|^|WAKEUPS $1: |"
}
profile_syscalls() {
	# Per thread and system call number (x86-64: 0 read, 1 write, 20
	# writev, 202 futex, 232/281 epoll_wait, 327 preadv2, 426
	# io_uring_enter), per second.
	perf record -e raw_syscalls:sys_enter -p "$2" -o "$3" -- sleep 1.5 >/dev/null 2>&1
	perf script -i "$3" -F tid,trace 2>/dev/null | awk '
		{ for (i = 2; i <= NF; i++) if ($i == "NR") n[$1 " nr=" $(i + 1)]++ }
		END { for (s in n) printf "%.0f %s\n", n[s] / 1.5, s }' | sort -rn | head -n 16 | sed "s|^|SYSCALLS $1: |"
}
profile_system() {
	perf record -e cpu-clock -F 499 -a -g -o "$WORK/system.data" -- sleep 1.5 >/dev/null 2>&1
	perf report -i "$WORK/system.data" --stdio --no-children --sort comm,dso,sym -g none --percent-limit 0.7 2>/dev/null |
		grep -v -e '^#' -e '^$' | head -n 60 | sed "s|^|PROFILE $1 $2 system: |"
	perf report -i "$WORK/system.data" --stdio --no-children --sort comm -g none --percent-limit 0.5 2>/dev/null |
		grep -v -e '^#' -e '^$' | head -n 20 | sed "s|^|PROFILE $1 $2 comm: |"
	# The busiest call chains of the user-space processes, leaf first,
	# folded to 12 frames.
	perf script -i "$WORK/system.data" -F comm,ip,sym 2>/dev/null | awk '
		NF == 0 { if (st != "" && c !~ /^(swapper|fio|kworker|ksoftirqd|rcu)/) n[c ": " st]++; st = ""; c = ""; k = 0; next }
		c == "" { c = $1; next }
		{ if (k < 12) st = st (st == "" ? "" : ";") $2; k++ }
		END { for (s in n) printf "%d %s\n", n[s], s }' | sort -rn | head -n 25 | sed "s|^|STACK $1 $2: |"
}

profile_timeline() {
	perf record -e sched:sched_switch -e sched:sched_wakeup -a -o "$WORK/timeline.data" -- sleep 1.5 >/dev/null 2>&1
	# Each event becomes "<kind>:<side>": wake (woken), run (switched in)
	# or sleep (switched out) of a thread of the driver (D), the server
	# (S) or fio (F); others are dropped. Then, for each pair of kinds
	# that follow each other, how often and the mean gap in µs.
	_tids() { for _p in "$@"; do ls /proc/"$_p"/task 2>/dev/null; done | tr '\n' ' '; }
	perf script -i "$WORK/timeline.data" -F time,event,trace 2>/dev/null | awk \
		-v D=" $(_tids $3) " -v S=" $(_tids $4) " -v F=" $(pidof fio | xargs -n1 | while read -r _p; do _tids "$_p"; done) " '
		function side(t) { t = " " t " "; return index(D, t) ? "D" : index(S, t) ? "S" : index(F, t) ? "F" : "" }
		function ev(k, t, ts,  sd) { sd = side(t); if (sd == "") return
			k = k ":" sd
			if (prev != "") { n[prev " > " k]++; g[prev " > " k] += ts - last }
			prev = k; last = ts }
		{ ts = $1 + 0 }
		$2 ~ /sched_wakeup/ { for (i = 3; i <= NF; i++) if ($i ~ /^pid=/) ev("wake", substr($i, 5), ts) }
		$2 ~ /sched_switch/ { for (i = 3; i <= NF; i++) { if ($i ~ /^prev_pid=/) p = substr($i, 10); if ($i ~ /^next_pid=/) q = substr($i, 10) }
			ev("sleep", p, ts); ev("run", q, ts) }
		END { for (k in n) printf "%d %s mean_us=%.0f\n", n[k], k, g[k] / n[k] * 1e6 }' |
		sort -rn | head -n 24 | sed "s|^|TIMELINE $1 $2: |"
}

nbd_start() {
	dd if=/dev/zero of="$data/nbd.img" bs=1M count=$SIZE_MB 2>/dev/null
	printf '[generic]\nuser = root\ngroup = root\nlistenaddr = 127.0.0.1\nport = 10809\n[bench]\nexportname = %s\n' \
		"$data/nbd.img" >"$WORK/nbd.conf"
	/usr/bin/nbd-server -C "$WORK/nbd.conf" -p "$WORK/nbd.pid" >"$WORK/nbd.log" 2>&1 || fail "nbd-server: $(cat "$WORK/nbd.log")"
	_i=0
	until /usr/sbin/nbd-client -N bench 127.0.0.1 10809 /dev/nbd0 -b 4096 >"$WORK/nbd-client.log" 2>&1; do
		_i=$((_i + 1))
		[ $_i -lt 20 ] || fail "nbd-client: $(cat "$WORK/nbd-client.log")"
		sleep 0.5
	done
	dd if=/dev/urandom of=/dev/nbd0 bs=1M count=$SIZE_MB oflag=direct 2>/dev/null
}
nbd_stop() {
	/usr/sbin/nbd-client -d /dev/nbd0 >/dev/null 2>&1
	[ -f "$WORK/nbd.pid" ] && kill "$(cat "$WORK/nbd.pid")" 2>/dev/null
	rm -f "$WORK/nbd.pid"
	sleep 0.5
}

# COST_NODES nodes (default 1) and COST_COPIES copies (default: as many as
# nodes) in one of two layouts: "in" runs every node in the one process of
# dog cluster start-local, beside its etcd; "procs" runs etcd alone
# (start-local --nodes 0) and each node as a sheep process of its own, as
# deployed. The server side is then the nodes, without etcd.
NODES=${COST_NODES:-1}
COPIES=${COST_COPIES:-$NODES}
SHEEP=/usr/local/bin/sheep

# sheep_start DIR UBLKCTL DOG LAYOUT: the cluster, a prefilled VDI; sets
# DEV, CPID (start-local) and NPIDS (the sheep processes, with "procs").
sheep_start() {
	rm -rf "$1"
	_n=$NODES
	[ "$4" = procs ] && _n=0
	"$3" cluster start-local --dir "$1" --nodes $_n --copies $COPIES >"$WORK/cluster.log" 2>&1 &
	CPID=$!
	NPIDS=
	if [ "$4" = procs ]; then
		_i=0
		until [ -f "$1/secret" ] && "$3" cluster info >/dev/null 2>&1; do
			_i=$((_i + 1))
			[ $_i -lt 600 ] || fail "etcd alone did not come up: $(tail -n 3 "$WORK/cluster.log")"
			sleep 0.1
		done
		for _k in $(seq 1 $NODES); do
			"$SHEEP" --dir "$1/node-$_k" --listen 127.0.0.1:$((7100 + _k)) --secret-file "$1/secret" \
				--log-format json >"$WORK/sheep-$_k.log" 2>&1 &
			NPIDS="$NPIDS $!"
		done
	fi
	_i=0
	until _l=$("$3" node list --json --secret-file "$1/secret" 2>/dev/null) &&
		echo "$_l" | $JQ -e "length == $NODES and all(.[]; .state == \"up\")" >/dev/null 2>&1; do
		_i=$((_i + 1))
		[ $_i -lt 600 ] || fail "the $NODES-node cluster ($4) did not come up: $(tail -n 3 "$WORK/cluster.log")"
		sleep 0.1
	done
	# A new node becomes a member a moment after it registers.
	_i=0
	until "$3" vdi create cost ${SIZE_MB}M >"$WORK/vdi.log" 2>&1; do
		_i=$((_i + 1))
		[ $_i -lt 100 ] || fail "dog vdi create: $(cat "$WORK/vdi.log")"
		sleep 0.2
	done
	DEV=$("$2" add -t sheep --vdi cost -q 1 -d 128 --secret-file "$1/secret") || fail "ublkctl add -t sheep"
	dd if=/dev/urandom of="$DEV" bs=1M count=$SIZE_MB oflag=direct 2>/dev/null
}
sheep_stop() {
	"$1" del -a
	cluster_kill
}

# COST_JOBS: "rw iodepth numjobs" per line.
JOBS=${COST_JOBS:-"randread 1 1
randread 32 2
randwrite 32 2"}

run_sheep() { # label ublkctl dog layout
	sheep_start "$data/$1" "$2" "$3" "$4"
	_drv=$("$2" list --json | $JQ -r '.[0].pid')
	_srv=${NPIDS:-$CPID}
	idle "$1" "$_drv" "$_srv"
	echo "$JOBS" | while read -r job; do measure "$1" "$DEV" "$job" "$_drv" "$_srv"; done
	sheep_stop "$2"
}

# COST_DEVICES: which of nbd, sheep, sheep-procs (the nodes as processes of
# their own) and (with ./alt) sheep-alt to measure.
has() { case " ${COST_DEVICES:-nbd sheep sheep-alt} " in *" $1 "*) return 0 ;; esac; return 1; }
for REP in $(seq 1 "${COST_REPS:-2}"); do
	export REP
	if has nbd; then
		nbd_start
		srv=$(pidof nbd-server)
		idle nbd "" "$srv"
		echo "$JOBS" | while read -r job; do measure nbd /dev/nbd0 "$job" "" "$srv"; done
		nbd_stop
	fi
	has sheep && run_sheep sheep "$UBLKCTL" "$DOG" in
	has sheep-procs && run_sheep sheep-procs "$UBLKCTL" "$DOG" procs
	has sheep-alt && [ -x ./alt/ublkctl ] && [ -x ./alt/dog ] && run_sheep sheep-alt ./alt/ublkctl ./alt/dog in
done
exit 0
