#!/usr/bin/env bash
# Runs every fuzz target of the module (func FuzzXxx in a _test.go file)
# for FUZZTIME each (default 5s): the decoders of network input, the kernel
# descriptors' parsers, the console parser. Fails on the first crasher;
# go test leaves it under testdata/fuzz/ for the regression run.
set -euo pipefail
fuzztime=${FUZZTIME:-5s}
cd "$(dirname "$0")/../.."
fail=0
count=0
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	count=$((count + 1))
	echo "fuzz: $pkg $name ($fuzztime)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/fuzz-$name.log 2>&1; then
		cat /tmp/fuzz-$name.log
		echo "fuzz: $pkg $name FAILED"
		fail=$((fail + 1))
	fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's|^\./||; s|:func |:|')
echo "fuzz: $((count - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
