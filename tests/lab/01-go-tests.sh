#!/bin/sh
# Go test binaries of packages with lab-only tests (everything the runner
# compiled into /lab/gotest except reclaim.test, which 00 runs) pass as root
# against the real kernel.
. ./lib.sh

found=0
for bin in "$LAB_GOTEST_DIR"/*.test; do
	[ -x "$bin" ] || continue
	[ "$(basename "$bin")" = reclaim.test ] && continue
	found=1
	say "running $(basename "$bin") -test.v"
	"$bin" -test.v -test.count=1 -test.timeout=5m >"$WORK/out" 2>&1
	rc=$?
	cat "$WORK/out"
	[ $rc -eq 0 ] || fail "$(basename "$bin") exited $rc"
	say "ok: $(basename "$bin") passed ($(grep -c -- '--- PASS' "$WORK/out") passed, $(grep -c -- '--- SKIP' "$WORK/out") skipped)"
done
[ $found -eq 1 ] || skip "no lab test binaries besides reclaim.test (packages without tests yet)"
exit 0
