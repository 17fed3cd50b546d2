#!/usr/bin/env bash
# Runs every fuzz target of the module (func FuzzXxx in a _test.go file)
# for FUZZTIME each (default 5s): the decoders of network input, the kernel
# descriptors' parsers, the console parser. Fails on the first crasher;
# go test leaves it under testdata/fuzz/ for the regression run.
#
# Go 1.26's fuzzing coordinator can fail a target with a bare "context
# deadline exceeded" at the -fuzztime boundary on a loaded machine, having
# found nothing (go.dev/issue/75804, fixed in Go 1.27). Such a run wrote no
# crasher: the target is run once more, and fails only if it fails again in
# any other way or writes a crasher.
set -euo pipefail
fuzztime=${FUZZTIME:-5s}
cd "$(dirname "$0")/../.."
fail=0
count=0

# crashers PKG NAME: the files of the target's corpus under testdata/fuzz.
crashers() {
	ls "$1/testdata/fuzz/$2" 2>/dev/null | sort || true
}

# coordinator_race LOG: the run failed with nothing but the deadline.
coordinator_race() {
	grep -q '^    context deadline exceeded$' "$1" &&
		! grep -q -e 'panic:' -e 'Failing input written' -e '^    [a-z_]*_test\.go:[0-9]*:' "$1"
}

run_target() {
	go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" "$1" >"/tmp/fuzz-$2.log" 2>&1
}

# only_race PKG NAME BEFORE: the last run of the target failed with nothing
# but the deadline, and its corpus holds no new file.
only_race() {
	coordinator_race "/tmp/fuzz-$2.log" && [ "$(crashers "$1" "$2")" = "$3" ]
}

while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	count=$((count + 1))
	echo "fuzz: $pkg $name ($fuzztime)"
	before=$(crashers "$pkg" "$name")
	if run_target "$pkg" "$name"; then
		continue
	fi
	if only_race "$pkg" "$name" "$before"; then
		echo "fuzz: $pkg $name: 'context deadline exceeded' with no crasher (go.dev/issue/75804); running it again"
		if run_target "$pkg" "$name"; then
			continue
		fi
		if only_race "$pkg" "$name" "$before"; then
			echo "fuzz: $pkg $name: the same again, and again no crasher: counted as passed"
			continue
		fi
	fi
	cat "/tmp/fuzz-$name.log"
	echo "fuzz: $pkg $name FAILED"
	fail=$((fail + 1))
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's|^\./||; s|:func |:|')
echo "fuzz: $((count - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
