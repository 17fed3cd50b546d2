#!/bin/sh
# Daemon crash and recovery (UBLK_F_USER_RECOVERY with REISSUE): the daemon
# of a --recovery device is killed with SIGKILL in the middle of an fio
# verify-write run; `ublkctl recover` starts a new daemon that takes the
# device over; fio finishes, its verify pass finds zero errors, and data
# fsynced before the kill is intact. Then: `del` of a device whose daemon
# is gone, and SIGTERM stopping a daemon cleanly.
. ./lib.sh
need_ublkctl
$UBLKCTL features | grep -q '^USER_RECOVERY$' || skip "this kernel's ublk has no USER_RECOVERY"

ublk_add -t file --file "$SCRATCH/recovery.img" --size 128M --recovery -q 2 -d 32
pid=$(dev_field "$DEV_ID" pid)
check "list --json says recovery" test "$(dev_field "$DEV_ID" recovery)" = true
# Where ublk has AUTO_BUF_REG (7.x) the file target runs with zero copy,
# and the recovered daemon must serve the device the same way.
if "$UBLKCTL" features --json | $JQ -e '.features | index("AUTO_BUF_REG")' >/dev/null; then zc=true; else zc=false; fi
zero_copy() { list_json ".[] | select(.id == $DEV_ID) | .flags | index(\"AUTO_BUF_REG\") != null"; }
check "zero copy is $zc" test "$(zero_copy)" = "$zc"

# 8 MiB of random data at 100 MiB, fsynced before the crash.
head -c 8388608 /dev/urandom >"$WORK/fsynced"
check "write 8 MiB at 100 MiB with fsync" dd if="$WORK/fsynced" of="$DEV" bs=1M seek=100 conv=fsync 2>/dev/null

set -- --filename="$DEV" --rw=randwrite --bsrange=4k-64k --ioengine=io_uring --direct=1 --iodepth=16 \
	--size=96M --verify=crc32c --verify_fatal=1 --randrepeat=1
$FIO --name=crash "$@" --do_verify=0 >"$WORK/fio.out" 2>&1 &
fio_pid=$!
sleep 3
kill -0 $fio_pid 2>/dev/null || { cat "$WORK/fio.out"; fail "fio finished before the crash could happen"; }
check "kill -9 the daemon (pid $pid) while fio writes" kill -9 "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
say "device state after the crash: $(dev_field "$DEV_ID" state)"

"$UBLKCTL" recover -n "$DEV_ID" >"$WORK/recover.out" 2>"$WORK/recover.err" ||
	fail "ublkctl recover -n $DEV_ID failed: $(cat "$WORK/recover.err")"
check "recover printed $DEV" test "$(cat "$WORK/recover.out")" = "$DEV"
newpid=$(dev_field "$DEV_ID" pid)
check "a new daemon ($newpid) serves the device" test "$newpid" != "$pid" -a "$newpid" -gt 0
check "state is LIVE" test "$(dev_field "$DEV_ID" state)" = LIVE
check "the recovered device still has zero copy $zc" test "$(zero_copy)" = "$zc"

wait $fio_pid
rc=$?
cat "$WORK/fio.out"
[ $rc -eq 0 ] || fail "fio across the crash exited $rc"
$FIO --name=crash "$@" --verify_only >"$WORK/verify.out" 2>&1
rc=$?
cat "$WORK/verify.out"
[ $rc -eq 0 ] || fail "fio --verify_only after recovery exited $rc"
grep -q 'err= 0' "$WORK/verify.out" || fail "fio verify pass did not end with err= 0"
say "ok: fio's writes across the crash verify with zero errors"
dd if="$DEV" of="$WORK/readback" bs=1M skip=100 count=8 iflag=direct 2>/dev/null
check "the data fsynced before the crash is intact" cmp "$WORK/fsynced" "$WORK/readback"
ublk_del "$DEV_ID"

# del of a --recovery device whose daemon is dead.
ublk_add -t mem --size 32M --recovery
kill -9 "$(dev_field "$DEV_ID" pid)"
sleep 0.5
ublk_del "$DEV_ID"
check "no device left" test "$(device_count)" = 0

# SIGTERM: the daemon completes what is in flight, deletes the device, exits.
ublk_add -t mem --size 32M
pid=$(dev_field "$DEV_ID" pid)
dd if=/dev/urandom of="$DEV" bs=1M count=8 oflag=direct 2>/dev/null
check "SIGTERM to the daemon" kill -TERM "$pid"
i=0
while { kill -0 "$pid" 2>/dev/null || [ -e "$DEV" ]; } && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "the daemon exited" sh -c "! kill -0 $pid 2>/dev/null"
check "the device is gone" test ! -e "$DEV"
check "no device left" test "$(device_count)" = 0
exit 0
