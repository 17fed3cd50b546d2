#!/bin/sh
# The null target: add, list, a direct read that succeeds, del.
. ./lib.sh
need_ublkctl

ublk_add -t null --size 64M
check "list --json shows target null" test "$(dev_field "$DEV_ID" target)" = null
check "list --json shows size 67108864" test "$(dev_field "$DEV_ID" size)" = 67108864
check "the kernel sees 67108864 bytes" test "$($BLOCKDEV --getsize64 "$DEV")" = 67108864
pid=$(dev_field "$DEV_ID" pid)
check "the daemon pid $pid is alive" kill -0 "$pid"
"$UBLKCTL" list >"$WORK/table" || fail "ublkctl list failed"
cat "$WORK/table"
check "list's table header starts ID STATE QUEUES DEPTH SIZE TARGET PID" \
	sh -c "head -1 '$WORK/table' | grep -Eq '^ *ID +STATE +QUEUES +DEPTH +SIZE +TARGET +PID( |\$)'"
check "list's table has a row for device $DEV_ID" grep -Eq "^ *$DEV_ID +" "$WORK/table"
n=$(dd if="$DEV" bs=1M count=4 iflag=direct 2>"$WORK/dd.err" | wc -c)
check "a 4 MiB direct read succeeds and returns 4194304 bytes (got $n)" test "$n" = 4194304
ublk_del "$DEV_ID"
check "list --json is empty after del" test "$(device_count)" = 0
sleep 0.5
check "the daemon $pid exited after del" sh -c "! kill -0 $pid 2>/dev/null"

# Users write DEV=$(ublkctl add ...): the daemon left behind must not hold
# the command substitution's pipe open, or that never returns.
rm -f "$WORK/subst"
(
	d=$("$UBLKCTL" add -t null --size 64M 2>/dev/null)
	echo "$d" >"$WORK/subst"
) &
i=0
while [ ! -s "$WORK/subst" ] && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -s "$WORK/subst" ] || fail "DEV=\$(ublkctl add ...) did not return within 30 s: the daemon keeps stdout open"
say "ok: DEV=\$(ublkctl add ...) returned $(cat "$WORK/subst")"
"$UBLKCTL" del -a || fail "ublkctl del -a failed"
check "list --json is empty after del -a" test "$(device_count)" = 0
exit 0
