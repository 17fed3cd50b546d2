#!/bin/sh
# ublkctl features reports what the running kernel's ublk really has:
# the 6.12 LTS kernel lacks ZERO_COPY, UPDATE_SIZE, QUIESCE, ...; 7.3 has
# them. Both have USER_RECOVERY and USER_COPY. And `list --json` with no
# devices is an empty array, not an error or null.
. ./lib.sh
need_ublkctl

"$UBLKCTL" features --json >"$WORK/f.json" 2>"$WORK/f.err" || fail "ublkctl features --json failed: $(cat "$WORK/f.err")"
cat "$WORK/f.json"
has() { $JQ -e --arg f "$1" '.features | index($f) != null' "$WORK/f.json" >/dev/null; }
for f in USER_RECOVERY USER_COPY CMD_IOCTL_ENCODE; do
	check "features has $f" has $f
done
case "$(uname -r)" in
6.12.*)
	for f in ZERO_COPY UPDATE_SIZE QUIESCE; do
		check "features on $(uname -r) lacks $f" sh -c "! $JQ -e --arg f $f '.features | index(\$f) != null' '$WORK/f.json' >/dev/null"
	done
	;;
7.*)
	for f in ZERO_COPY UPDATE_SIZE QUIESCE AUTO_BUF_REG; do
		check "features on $(uname -r) has $f" has $f
	done
	;;
esac
"$UBLKCTL" features >"$WORK/f.txt" || fail "ublkctl features failed"
n=$($JQ '.features | length' "$WORK/f.json")
check "the plain listing names the same $n features" test "$(grep -c '^[A-Z_0-9]*$' "$WORK/f.txt")" = "$n"
check "list --json with no devices prints []" test "$(list_json tojson)" = "[]"
exit 0
