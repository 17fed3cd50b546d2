#!/bin/sh
# A backend error fails only the request that hit it: with --fail-range,
# I/O touching that range gets EIO, the rest of the device works and the
# daemon keeps serving.
. ./lib.sh
need_ublkctl

ublk_add -t mem --size 64M --fail-range 1048576:65536
dd if="$DEV" of=/dev/null bs=4k skip=256 count=1 iflag=direct 2>"$WORK/dd.err" &&
	fail "a read at 1 MiB (inside the fail range) succeeded"
cat "$WORK/dd.err"
grep -Eqi 'i/o error|input/output error' "$WORK/dd.err" || fail "the failing read did not report an I/O error"
say "ok: a read inside the fail range fails with an I/O error"
dd if=/dev/zero of="$DEV" bs=4k seek=260 count=1 oflag=direct 2>"$WORK/dd.err" &&
	fail "a write at 1 MiB + 16 KiB (inside the fail range) succeeded"
say "ok: a write inside the fail range fails: $(grep -i error "$WORK/dd.err" | head -1)"
check "a read before the range succeeds" dd if="$DEV" of=/dev/null bs=4k skip=0 count=1 iflag=direct
check "a read just after the range succeeds" dd if="$DEV" of=/dev/null bs=4k skip=272 count=1 iflag=direct
check "a read at 2 MiB succeeds" dd if="$DEV" of=/dev/null bs=4k skip=512 count=1 iflag=direct
check "a write at 8 MiB succeeds" dd if=/dev/urandom of="$DEV" bs=4k seek=2048 count=1 oflag=direct
pid=$(dev_field "$DEV_ID" pid)
check "list --json still shows device $DEV_ID with a live daemon ($pid)" kill -0 "$pid"
ublk_del "$DEV_ID"
exit 0
