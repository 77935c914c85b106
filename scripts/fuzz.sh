#!/usr/bin/env bash
# Runs every fuzz target (func FuzzX in a _test.go file) for SECONDS each (default 10; the
# test script's run), one at a time. A longer hunt: ./scripts/fuzz.sh 600. A failing input is
# written to the package's testdata/fuzz/FuzzX/ folder: fix the bug and commit the input, which
# go test then runs as a regression test. Inputs that find new coverage are minimized for at
# most a second (a layer extraction is slow enough that the default minute stalls a short run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
secs=${1:-10}
grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./integration/' | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
    echo "== fuzzing $target in $pkg for ${secs}s" >&2
    go test -run '^$' -fuzz "^$target\$" -fuzztime "${secs}s" -fuzzminimizetime 1s "$pkg"
  done
done
