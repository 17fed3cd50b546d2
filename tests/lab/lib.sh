# lib.sh: helpers sourced by the lab's guest test scripts (busybox sh).
# Each script: `. ./lib.sh`, then assertions with check/fail; it exits 0
# on success, 77 to skip (skip), anything else on failure. Everything it
# asserts is printed, so the console log reads as a record of what held.

# Real tools by full path: busybox would otherwise run its own applets
# (its mke2fs is not e2fsprogs, its losetup has no --direct-io).
MKFS_EXT4=/usr/sbin/mkfs.ext4
E2FSCK=/usr/sbin/e2fsck
BLKDISCARD=/usr/sbin/blkdiscard
BLOCKDEV=/usr/sbin/blockdev
LOSETUP=/usr/sbin/losetup
FIO=/usr/bin/fio
JQ=/usr/bin/jq
UBLKCTL=${UBLKCTL:-/usr/local/bin/ublkctl}
SCRATCH=${LAB_SCRATCH:-/tmp}
NAME=$(basename "$0" .sh)
WORK=/tmp/$NAME
mkdir -p "$WORK"

say() { echo "$NAME: $*"; }

# fail prints why (on stderr, so it shows even inside $(...)), cleans up
# and exits 1.
fail() {
	echo "$NAME: FAIL: $*" >&2
	cleanup
	exit 1
}

skip() {
	echo "$NAME: SKIP: $*" >&2
	cleanup
	exit 77
}

# check DESCRIPTION COMMAND...: runs the command, fails the test if it
# fails, else prints "ok: DESCRIPTION".
check() {
	_desc=$1
	shift
	if "$@"; then
		say "ok: $_desc"
	else
		fail "$_desc (command failed: $*)"
	fi
}

# cleanup removes every device this script made; scripts may extend it
# with their own cleanup_extra.
cleanup_extra() { :; }
cleanup() {
	cleanup_extra
	stop_local_cluster
	for _m in $(awk '$2 ~ "^/mnt/" {print $2}' /proc/mounts); do umount "$_m" 2>/dev/null; done
	[ -x "$UBLKCTL" ] && "$UBLKCTL" del -a >/dev/null 2>&1
	return 0
}

need_ublkctl() {
	[ -x "$UBLKCTL" ] || skip "ublkctl is not in the image (run make build before the lab)"
	[ -c /dev/ublk-control ] || fail "/dev/ublk-control missing: ublk_drv did not load"
}

# ublk_add ARGS...: `ublkctl add ARGS`, which must print the device path
# on stdout and exit 0; sets DEV to the path (and checks it is a block
# device). Stdout goes to a file, not $(...): a daemon that kept the pipe
# open would hang the script (10-target-null checks that case apart).
ublk_add() {
	"$UBLKCTL" add "$@" >"$WORK/add.out" 2>"$WORK/add.err"
	_rc=$?
	DEV=$(cat "$WORK/add.out")
	[ $_rc -eq 0 ] || fail "ublkctl add $* exited $_rc: $(cat "$WORK/add.err")"
	case "$DEV" in
	/dev/ublkb[0-9]*) ;;
	*) fail "ublkctl add $* printed '$DEV', want a /dev/ublkbN path" ;;
	esac
	[ -b "$DEV" ] || fail "ublkctl add $* returned $DEV, which is not a block device"
	DEV_ID=${DEV#/dev/ublkb}
	say "ok: ublkctl add $* -> $DEV"
}

# ublk_del ID: `ublkctl del -n ID` exits 0 and the device node goes away.
ublk_del() {
	"$UBLKCTL" del -n "$1" 2>"$WORK/del.err" || fail "ublkctl del -n $1 failed: $(cat "$WORK/del.err")"
	_i=0
	while [ -e "/dev/ublkb$1" ] && [ $_i -lt 50 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	[ -e "/dev/ublkb$1" ] && fail "/dev/ublkb$1 still exists after del"
	say "ok: ublkctl del -n $1 removed /dev/ublkb$1"
}

# list_json [JQ-FILTER]: `ublkctl list --json` filtered through jq.
list_json() {
	"$UBLKCTL" list --json >"$WORK/list.json" 2>"$WORK/list.err" || fail "ublkctl list --json failed: $(cat "$WORK/list.err")"
	$JQ -r "${1:-.}" "$WORK/list.json" 2>"$WORK/jq.err" || fail "ublkctl list --json output is not what jq '${1:-.}' expects: $(cat "$WORK/list.json") $(cat "$WORK/jq.err")"
}

# dev_field ID KEY: one key of device ID's `list --json` object.
dev_field() {
	list_json ".[] | select(.id == $1) | .$2"
}

# device_count: how many devices `list --json` shows.
device_count() {
	list_json 'length'
}

# write_files DIR N: N files of random data, of different sizes (1 MiB,
# 2 MiB, ...), their sha256sums recorded in $WORK/sums.
write_files() {
	_dir=$1
	_n=$2
	: >"$WORK/sums"
	_i=1
	while [ $_i -le "$_n" ]; do
		head -c $((_i * 1048576)) /dev/urandom >"$_dir/file$_i" || fail "write $_dir/file$_i"
		(cd "$_dir" && sha256sum "file$_i") >>"$WORK/sums"
		_i=$((_i + 1))
	done
	say "ok: wrote $_n files of random data to $_dir"
}

# verify_files DIR: every file's sha256sum matches what write_files saw.
verify_files() {
	(cd "$1" && sha256sum -c "$WORK/sums") || fail "checksums in $1 differ from what was written"
	say "ok: $(wc -l <"$WORK/sums") checksums verified in $1"
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# start_local_cluster DIR [ARGS...]: `dog cluster start-local ARGS` (embedded etcd + 3
# sheep nodes on 127.0.0.1, copies=3) in the background, data under DIR;
# waits until dog lists 3 nodes. Sets CLUSTER_PID (cleanup stops it) and
# CLUSTER_SECRET, the file with the secret the nodes require of clients.
DOG=/usr/local/bin/dog
start_local_cluster() {
	_dir=$1
	shift
	rm -rf "$_dir"
	$DOG cluster start-local --dir "$_dir" --nodes 3 --copies 3 "$@" >"$WORK/cluster.log" 2>&1 &
	CLUSTER_PID=$!
	CLUSTER_SECRET=$_dir/secret
	_i=0
	# jq -e exits 0 on empty input, and dog prints nothing until etcd
	# answers: test the captured output, and that every node is up.
	# With the secret (once start-local has written it) dog may ask each
	# node for its usage; without it the nodes log a refused connection.
	until _sec= && { [ ! -f "$CLUSTER_SECRET" ] || _sec="--secret-file $CLUSTER_SECRET"; } &&
		_nodes=$($DOG node list --json $_sec 2>/dev/null) && [ -n "$_nodes" ] &&
		echo "$_nodes" | $JQ -e 'length == 3 and all(.[]; .state == "up")' >/dev/null 2>&1; do
		_i=$((_i + 1))
		[ $_i -lt 900 ] || { cat "$WORK/cluster.log"; fail "the local cluster did not show 3 nodes up within 90 s"; }
		kill -0 $CLUSTER_PID 2>/dev/null || { cat "$WORK/cluster.log"; fail "dog cluster start-local exited"; }
		sleep 0.1
	done
}

# stop_local_cluster: SIGTERM to the cluster, wait for it to exit.
stop_local_cluster() {
	[ -n "$CLUSTER_PID" ] || return 0
	kill "$CLUSTER_PID" 2>/dev/null
	wait "$CLUSTER_PID" 2>/dev/null
	CLUSTER_PID=
}
