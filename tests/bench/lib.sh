# lib.sh: helpers for the lab's guest benchmark scripts (busybox sh).
# tools/bench stages this directory with bench.conf (the plan: devices,
# their order per repetition, fio jobs) and jobs/*.fio, boots the lab and
# reads back the marker lines these scripts print on the console:
#   @@bench:info  {"key":..,"value":..}          facts about the guest
#   @@bench:fio   {"device":..,"job":..,"rep":..,"read":{..},"write":{..}}
#   @@bench:skip  {"device":..,"reason":..}      a device this boot cannot make
#   @@bench:error {"device":..,"job":..,"rep":..,"message":..}
#   @@bench:rss   {"device":..,"t":..,"rss_kb":..,"lck_kb":..,"hwm_kb":..}
# Every record is one line of JSON made by jq, so the host parses it
# without guessing; a line the host cannot parse is reported, not dropped.

FIO=/usr/bin/fio
JQ=/usr/bin/jq
LOSETUP=/usr/sbin/losetup
NBD_SERVER=/usr/bin/nbd-server
NBD_CLIENT=/usr/sbin/nbd-client
UBLKCTL=/usr/local/bin/ublkctl
UBLKSRV=$PWD/ublksrv/ublk # the C reference daemon, staged by bench --ublksrv
UBLKSRV_ID=99             # its device number, clear of ublkctl's
DOG=/usr/local/bin/dog
SCRATCH=${LAB_SCRATCH:-/scratch}
WORK=/tmp/bench
mkdir -p "$WORK"

. ./bench.conf

SIZE=$((BENCH_SIZE_MB * 1048576))
EXT4_FILE=$SCRATCH/bench/file.img # a file on ext4 on the virtio disk
TMPFS_FILE=$WORK/tmpfs/file.img   # the same on tmpfs (O_DIRECT works there)
NBD_FILE=$SCRATCH/bench/nbd.img
SHEEP_DIR=$SCRATCH/bench/sheep

say() { echo "bench: $*"; }

# emit KIND JQ-ARGS... FILTER: one marker line, JSON built by jq -n.
emit() {
	_kind=$1
	shift
	printf '@@bench:%s %s\n' "$_kind" "$($JQ -cn "$@")"
}

info() { emit info --arg k "$1" --arg v "$2" '{key:$k, value:$v}'; }

skip_device() {
	emit skip --arg d "$1" --arg r "$2" '{device:$d, reason:$r}'
	say "SKIP $1: $2"
}

error_record() { # DEVICE JOB REP MESSAGE
	emit error --arg d "$1" --arg j "$2" --argjson r "$3" --arg m "$4" '{device:$d, job:$j, rep:$r, message:$m}'
	say "ERROR $1 $2 rep $3: $4"
}

# prefill FILE-OR-DEVICE: write every byte once, so that reads hit real
# data (an unwritten brd page, a hole or an unwritten extent reads as
# zeros without touching the medium, which would flatter the device).
prefill() {
	$FIO --name=prefill --filename="$1" --rw=write --bs=1M --iodepth=8 \
		--ioengine=io_uring --direct=1 --size="$SIZE" --output=/dev/null >"$WORK/prefill.err" 2>&1 ||
		{
			echo "prefill $1: $(tail -n 2 "$WORK/prefill.err")"
			return 1
		}
}

# backing_file PATH: a prefilled file of $SIZE bytes, made once per boot.
backing_file() {
	[ -f "$1" ] && [ "$(stat -c %s "$1")" = "$SIZE" ] && return 0
	mkdir -p "$(dirname "$1")"
	rm -f "$1"
	prefill "$1"
}

# ublk_up ARGS...: ublkctl add; sets DEV and UBLK_ID.
ublk_up() {
	[ -x "$UBLKCTL" ] || {
		REASON="ublkctl is not in the image (make build)"
		return 1
	}
	"$UBLKCTL" add -q "$BENCH_UBLK_QUEUES" -d "$BENCH_UBLK_DEPTH" "$@" >"$WORK/add.out" 2>"$WORK/add.err" || {
		REASON="ublkctl add $*: $(tail -n 1 "$WORK/add.err")"
		return 1
	}
	DEV=$(cat "$WORK/add.out")
	UBLK_ID=${DEV#/dev/ublkb}
	[ -b "$DEV" ] || {
		REASON="ublkctl add $* printed '$DEV', not a block device"
		return 1
	}
}

ublk_down() {
	[ -n "$UBLK_ID" ] && "$UBLKCTL" del -n "$UBLK_ID" >/dev/null 2>&1
	UBLK_ID=
}

# ublk_pid: the pid of the daemon serving $UBLK_ID.
ublk_pid() {
	"$UBLKCTL" list --json | $JQ -r ".[] | select(.id == $UBLK_ID) | .pid"
}

# ublksrv_up TARGET ARGS...: ublksrv serves /dev/ublkb$UBLKSRV_ID with the
# queues and depth ublkctl's devices get; sets DEV.
ublksrv_up() {
	[ -x "$UBLKSRV" ] || {
		REASON="ublksrv is not in the image (bench --ublksrv DIR, built by tools/bench/build-ublksrv.sh)"
		return 1
	}
	_t=$1
	shift
	"$UBLKSRV" add -t "$_t" -n $UBLKSRV_ID -q "$BENCH_UBLK_QUEUES" -d "$BENCH_UBLK_DEPTH" "$@" \
		>"$WORK/ublksrv-add.out" 2>&1 || {
		REASON="ublksrv add -t $_t: $(tail -n 1 "$WORK/ublksrv-add.out")"
		return 1
	}
	DEV=/dev/ublkb$UBLKSRV_ID
	_i=0
	while [ ! -b "$DEV" ] && [ $_i -lt 50 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
}

ublksrv_down() {
	"$UBLKSRV" del -n $UBLKSRV_ID >/dev/null 2>&1
}

loop_up() {
	backing_file "$1" || {
		REASON="cannot make backing file $1"
		return 1
	}
	DEV=$($LOSETUP --direct-io=on -f --show "$1" 2>"$WORK/losetup.err") || {
		REASON="losetup --direct-io=on $1: $(cat "$WORK/losetup.err")"
		return 1
	}
	_dio=$(cat "/sys/block/${DEV#/dev/}/loop/dio" 2>/dev/null)
	[ "$_dio" = 1 ] || {
		$LOSETUP -d "$DEV"
		REASON="loop device $DEV has dio=$_dio, want 1"
		return 1
	}
}

nbd_up() {
	[ -x "$NBD_SERVER" ] && [ -x "$NBD_CLIENT" ] || {
		REASON="nbd-server/nbd-client not in the image (apt-get install nbd-server nbd-client on the host)"
		return 1
	}
	[ -b /dev/nbd0 ] || {
		REASON="/dev/nbd0 missing: the nbd module did not load"
		return 1
	}
	backing_file "$NBD_FILE" || {
		REASON="cannot make $NBD_FILE"
		return 1
	}
	cat >"$WORK/nbd.conf" <<-EOF
		[generic]
		user = root
		group = root
		listenaddr = 127.0.0.1
		port = 10809
		[bench]
		exportname = $NBD_FILE
	EOF
	$NBD_SERVER -C "$WORK/nbd.conf" -p "$WORK/nbd.pid" >"$WORK/nbd-server.log" 2>&1 || {
		REASON="nbd-server: $(tail -n 1 "$WORK/nbd-server.log")"
		return 1
	}
	_i=0
	until $NBD_CLIENT -N bench 127.0.0.1 10809 /dev/nbd0 -b 4096 >"$WORK/nbd-client.log" 2>&1; do
		_i=$((_i + 1))
		[ $_i -lt 20 ] || {
			REASON="nbd-client: $(tail -n 1 "$WORK/nbd-client.log")"
			nbd_down
			return 1
		}
		sleep 0.5
	done
	DEV=/dev/nbd0
}

nbd_down() {
	$NBD_CLIENT -d /dev/nbd0 >/dev/null 2>&1
	[ -f "$WORK/nbd.pid" ] && kill "$(cat "$WORK/nbd.pid")" 2>/dev/null
	rm -f "$WORK/nbd.pid"
	sleep 0.5
}

# sheep_available: the sheep target and a local cluster command exist.
sheep_available() {
	[ -x "$DOG" ] || {
		REASON="dog is not in the image"
		return 1
	}
	"$UBLKCTL" add --help 2>&1 | grep -q sheep || {
		REASON="ublkctl add has no sheep target yet"
		return 1
	}
	"$DOG" cluster start-local --help >/dev/null 2>&1 || {
		REASON="dog cluster start-local does not exist yet"
		return 1
	}
}

# sheep_up NODES COPIES: a local cluster (data on the virtio disk, like
# nbd's file), a VDI of $SIZE, prefilled, served by ublkctl add -t sheep.
sheep_up() {
	sheep_available || return 1
	rm -rf "$SHEEP_DIR"
	mkdir -p "$SHEEP_DIR"
	SHEEP_ETCD=http://127.0.0.1:2379
	"$DOG" cluster start-local --dir "$SHEEP_DIR" --nodes "$1" --copies "$2" \
		>"$WORK/cluster.log" 2>&1 &
	SHEEP_CLUSTER_PID=$!
	_i=0
	# jq -e exits 0 on empty input: test the captured output.
	until _nodes=$("$DOG" --etcd "$SHEEP_ETCD" node list --json 2>/dev/null) && [ -n "$_nodes" ] &&
		echo "$_nodes" | $JQ -e "length == $1" >/dev/null 2>&1; do
		_i=$((_i + 1))
		if [ $_i -ge 300 ] || ! kill -0 "$SHEEP_CLUSTER_PID" 2>/dev/null; then
			REASON="dog cluster start-local did not show $1 node(s) within 30 s: $(tail -n 1 "$WORK/cluster.log")"
			sheep_down
			return 1
		fi
		sleep 0.1
	done
	"$DOG" --etcd "$SHEEP_ETCD" vdi create bench "$BENCH_SIZE_MB"M >"$WORK/vdi.log" 2>&1 || {
		REASON="dog vdi create: $(tail -n 1 "$WORK/vdi.log")"
		sheep_down
		return 1
	}
	ublk_up -t sheep --vdi bench --etcd "$SHEEP_ETCD" --secret-file "$SHEEP_DIR/secret" || {
		sheep_down
		return 1
	}
	prefill "$DEV" >"$WORK/prefill.msg" || {
		REASON=$(cat "$WORK/prefill.msg")
		ublk_down
		sheep_down
		return 1
	}
}

sheep_down() {
	ublk_down
	[ -n "$SHEEP_CLUSTER_PID" ] && kill "$SHEEP_CLUSTER_PID" 2>/dev/null && wait "$SHEEP_CLUSTER_PID" 2>/dev/null
	SHEEP_CLUSTER_PID=
	rm -rf "$SHEEP_DIR"
}

# dev_up NAME: makes device NAME; sets DEV, or REASON and returns 1.
dev_up() {
	DEV=
	REASON=
	UBLK_ID=
	case $1 in
	null_blk)
		DEV=/dev/nullb0
		[ -b $DEV ] || REASON="/dev/nullb0 missing: null_blk did not load"
		;;
	brd)
		rmmod brd 2>/dev/null
		insmod /lib/modules/brd.ko rd_nr=1 rd_size=$((BENCH_SIZE_MB * 1024)) max_part=0 2>"$WORK/brd.err" ||
			REASON="insmod brd: $(cat "$WORK/brd.err")"
		DEV=/dev/ram0
		[ -z "$REASON" ] && { prefill $DEV >"$WORK/prefill.msg" || REASON=$(cat "$WORK/prefill.msg"); }
		;;
	ublk-null) ublk_up -t null --size "$BENCH_SIZE_MB"M ;;
	ublksrv-null) ublksrv_up null ;;
	ublk-mem)
		ublk_up -t mem --size "$BENCH_SIZE_MB"M &&
			{ prefill "$DEV" >"$WORK/prefill.msg" || REASON=$(cat "$WORK/prefill.msg"); }
		;;
	loop-ext4) loop_up "$EXT4_FILE" ;;
	loop-tmpfs) loop_up "$TMPFS_FILE" ;;
	ublk-file-ext4)
		if backing_file "$EXT4_FILE"; then ublk_up -t file --file "$EXT4_FILE"; else REASON="cannot make $EXT4_FILE"; fi
		;;
	ublksrv-file-ext4) # direct I/O, as ublksrv's loop target does by default
		if backing_file "$EXT4_FILE"; then ublksrv_up loop -f "$EXT4_FILE"; else REASON="cannot make $EXT4_FILE"; fi
		;;
	ublk-file-tmpfs)
		if backing_file "$TMPFS_FILE"; then ublk_up -t file --file "$TMPFS_FILE"; else REASON="cannot make $TMPFS_FILE"; fi
		;;
	nbd) nbd_up ;;
	ublk-sheep1) sheep_up 1 1 ;;
	ublk-sheep3) sheep_up 3 3 ;;
	*) REASON="unknown device $1" ;;
	esac
	[ -z "$REASON" ] && [ -b "$DEV" ] && return 0
	[ -z "$REASON" ] && REASON="$1: $DEV is not a block device"
	dev_down "$1"
	return 1
}

dev_down() {
	case $1 in
	brd) rmmod brd 2>/dev/null ;;
	loop-*) [ -n "$DEV" ] && $LOSETUP -d "$DEV" 2>/dev/null ;;
	nbd) nbd_down ;;
	ublk-sheep*) sheep_down ;;
	ublk-*) ublk_down ;;
	ublksrv-*) ublksrv_down ;;
	esac
	DEV=
}

# daemon_counters PID: a JSON object of what the daemon used so far: CPU
# time in clock ticks (utime+stime; USER_HZ is 100 on x86), context
# switches of all its threads, and the uptime in seconds. Two of them
# around a fio run give the daemon's CPU share and switches per I/O.
daemon_counters() {
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || {
		echo null
		return
	}
	# The comm field (2) is "(ublkctl)", without spaces, so fields count.
	_ticks=$(awk '{print $14 + $15}' "/proc/$1/stat")
	_ctxt=$(cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}')
	_up=$(awk '{print $1}' /proc/uptime)
	echo "{\"ticks\":$_ticks,\"ctxt\":$_ctxt,\"uptime\":$_up}"
}

# block_counters: $DEV's request counters (/sys/block/DEV/stat: reads,
# read merges, read sectors, writes, write merges, write sectors) as JSON.
block_counters() {
	awk '{printf "{\"ri\":%s,\"rm\":%s,\"rs\":%s,\"wi\":%s,\"wm\":%s,\"ws\":%s}", $1, $2, $3, $5, $6, $7}' \
		"/sys/block/${DEV#/dev/}/stat" 2>/dev/null || echo null
}

# queue_limits NAME: an info record with $DEV's queue limits, which decide
# how the block layer merges and splits what fio sends.
queue_limits() {
	_q=/sys/block/${DEV#/dev/}/queue
	[ -d "$_q" ] || return 0
	info "queue_limits:$1" "max_sectors_kb=$(cat $_q/max_sectors_kb) max_segments=$(cat $_q/max_segments) max_segment_size=$(cat $_q/max_segment_size) nr_requests=$(cat $_q/nr_requests) write_cache=$(cat $_q/write_cache 2>/dev/null | tr ' ' _)"
}

# run_job DEVICE JOB REP: one fio run of jobs/JOB.fio on $DEV; prints its
# @@bench:fio record (with the daemon's CPU and context switches over the
# run, for ublk devices, and the device's request counters).
run_job() {
	rm -f "$WORK/fio.json"
	_pid=
	[ -n "$UBLK_ID" ] && _pid=$(ublk_pid)
	_before=$(daemon_counters "$_pid")
	_blk0=$(block_counters)
	if ! BENCH_DEV=$DEV BENCH_SIZE=$SIZE $FIO --output-format=json --output="$WORK/fio.json" "jobs/$2.fio" >"$WORK/fio.err" 2>&1; then
		error_record "$1" "$2" "$3" "fio exited non-zero: $(tail -n 2 "$WORK/fio.err" | tr '\n' ' ')"
		return 1
	fi
	_after=$(daemon_counters "$_pid")
	BLK0=$_blk0 BLK1=$(block_counters) fio_record "$1" "$2" "$3" "$WORK/fio.json" "$_before" "$_after"
}

# fio_record DEVICE JOB REP FIO-JSON [BEFORE AFTER]: the @@bench:fio line
# of one fio run (IOPS, bandwidth, completion latency percentiles per
# direction; the daemon's counters before and after, if given).
fio_record() {
	_rec=$($JQ -c --arg d "$1" --arg j "$2" --argjson r "$3" --argjson b "${5:-null}" --argjson a "${6:-null}" \
		--argjson k0 "${BLK0:-null}" --argjson k1 "${BLK1:-null}" '
		def side: {iops, bw_bytes, io_bytes, total_ios,
			clat_mean_ns: .clat_ns.mean,
			p50_ns: .clat_ns.percentile["50.000000"],
			p99_ns: .clat_ns.percentile["99.000000"],
			p999_ns: .clat_ns.percentile["99.900000"]};
		.jobs[0] | {device:$d, job:$j, rep:$r, read: (.read|side), write: (.write|side),
			usr_cpu, sys_cpu, error, runtime_ms: .job_runtime,
			daemon: (if $b != null and $a != null then {cpu_ticks: ($a.ticks - $b.ticks),
				ctxt_switches: ($a.ctxt - $b.ctxt), seconds: ($a.uptime - $b.uptime)} else null end),
			blk: (if $k0 != null and $k1 != null then {read_ios: ($k1.ri - $k0.ri), read_merges: ($k1.rm - $k0.rm),
				read_sectors: ($k1.rs - $k0.rs), write_ios: ($k1.wi - $k0.wi), write_merges: ($k1.wm - $k0.wm),
				write_sectors: ($k1.ws - $k0.ws)} else null end)}' "$4" 2>"$WORK/jq.err") || {
		error_record "$1" "$2" "$3" "fio output not understood: $(head -c 200 "$WORK/jq.err")"
		return 1
	}
	printf '@@bench:fio %s\n' "$_rec"
}
