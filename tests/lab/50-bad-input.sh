#!/bin/sh
# Bad input to ublkctl add: exactly one line on stderr, a non-zero exit,
# and no device left behind.
. ./lib.sh
need_ublkctl
cleanup_extra() { [ -e /dev/ublk-control.x ] && mv /dev/ublk-control.x /dev/ublk-control; }

# expect_reject WANT_DEVICES DESCRIPTION ARGS... (WANT_DEVICES "-": do not count)
expect_reject() {
	_want=$1
	_what=$2
	shift 2
	"$UBLKCTL" add "$@" >"$WORK/out" 2>"$WORK/err"
	_rc=$?
	[ $_rc -ne 0 ] || fail "$_what: ublkctl add $* succeeded (printed $(cat "$WORK/out"))"
	_lines=$(wc -l <"$WORK/err")
	[ "$_lines" -eq 1 ] || { cat "$WORK/err"; fail "$_what: stderr has $_lines lines, want exactly 1"; }
	grep -Eq 'goroutine |panic:' "$WORK/err" && fail "$_what: stderr shows a Go panic"
	[ -s "$WORK/out" ] && fail "$_what: stdout not empty: $(cat "$WORK/out")"
	if [ "$_want" != - ]; then
		_left=$(device_count)
		[ "$_left" = "$_want" ] || fail "$_what: list --json shows $_left devices afterwards, want $_want"
		# The kernel's own view: a half-made device would leave a char node.
		_nodes=$(ls /dev/ublkc* 2>/dev/null | wc -l)
		[ "$_nodes" = "$_want" ] || fail "$_what: $_nodes /dev/ublkcN nodes exist afterwards, want $_want: $(ls /dev/ublkc* 2>/dev/null)"
	fi
	say "ok: $_what: exit $_rc, '$(cat "$WORK/err")'"
}

expect_reject 0 "missing file without --size" -t file --file /nonexistent/x
expect_reject 0 "size 0" -t mem --size 0
expect_reject 0 "size 1000 with 512-byte blocks" -t mem --size 1000 --block-size 512
expect_reject 0 "no queues" -t mem --size 64M -q 0
expect_reject 0 "queue depth 5000" -t mem --size 64M -d 5000
expect_reject 0 "unknown target" -t floppy --size 64M

ublk_add -t mem --size 64M -n 0
pid=$(dev_field 0 pid)
expect_reject 1 "a second device 0" -t mem --size 64M -n 0
check "device 0's daemon $pid still runs" kill -0 "$pid"
check "/dev/ublkb0 still reads" dd if=/dev/ublkb0 of=/dev/null bs=4k count=1 iflag=direct
ublk_del 0

# Without /dev/ublk-control even `list` cannot look, so count the devices
# after putting it back.
mv /dev/ublk-control /dev/ublk-control.x || fail "cannot hide /dev/ublk-control"
expect_reject - "no /dev/ublk-control (ublk_drv not loaded)" -t mem --size 64M
mv /dev/ublk-control.x /dev/ublk-control
check "no device left behind by the add without /dev/ublk-control" test "$(device_count)" = 0
check "no /dev/ublkcN node left behind either" sh -c '! ls /dev/ublkc* >/dev/null 2>&1'
exit 0
