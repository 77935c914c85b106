#!/usr/bin/env bash
# Builds the bench chain (bench.sh's) three ways, side by side in one run, on one machine:
#   local     strata's local engine
#   strata-bk strata --engine buildkit, on a buildkitd started here
#   buildctl  plain buildctl with the equivalent Dockerfile, on the same buildkitd
# and prints the median times and ratios for: cold (every layer after the base is new),
# cached (nothing changed), last (only the last step changed). All three start from the same
# base bytes: strata's debian_slim, which buildctl reads as an oci-layout context.
# buildkitd and buildctl come from scripts/build-buildkitd.sh.
# Run by hand, as root, on an otherwise idle machine: sudo ./bench/buildkit.sh [runs]
set -euo pipefail
export LC_NUMERIC=C # $EPOCHREALTIME has the locale's decimal point, and bc reads a dot
cd "$(dirname "$0")/.."
N=${1:-5}
export PATH=$PATH:/usr/local/go/bin
command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null
./scripts/build-buildkitd.sh /usr/local/bin
work=$(mktemp -d /var/tmp/strata-bench-bk-XXXXXX)
export STRATA_HOME=${STRATA_HOME:-/var/tmp/strata-bench-home}
CGO_ENABLED=0 go build -o "$work/" ./cmd/...
strata() { "$work/strata" "$@"; }

sock=$(mktemp -d /tmp/bench-bk-XXXXXX)/buildkitd.sock
buildkitd --root "$work/buildkitd" --addr "unix://$sock" --oci-worker-net host --containerd-worker=false >"$work/buildkitd.log" 2>&1 &
bkpid=$!
cleanup() { kill "$bkpid" 2>/dev/null || true; wait "$bkpid" 2>/dev/null || true; rm -rf "$work" "$(dirname "$sock")"; }
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
export STRATA_BUILDKIT_ADDR=unix://$sock

echo "preparing the shared base..." >&2
printf 'image:\n  - debian_slim: {python_version: "3.13"}\n' > "$work/base.yaml"
strata build -f "$work/base.yaml" -t bench-base --progress plain >/dev/null 2>&1
strata export bench-base --format oci -o "$work/base-oci"
base=$(strata inspect bench-base | awk '/^manifest:/ {print $2}')

from="bench-base"
. bench/chain.sh

timed() { local log=$1; shift; local t=$EPOCHREALTIME; "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }; local e=$EPOCHREALTIME; echo "$e - $t" | bc; }
local_()  { strata build -f "$work/image.yaml" -t bench --progress plain; }
bk()      { strata --engine buildkit build -f "$work/image.yaml" -t bench-bk --progress plain; }
ctl()     {
  rm -rf "$work/ctl-out"
  buildctl --addr "unix://$sock" build --frontend dockerfile.v0 --local context="$work/ctx" --local dockerfile="$work/ctx" \
    --oci-layout "base=$work/base-oci" --opt "context:bench-base=oci-layout://base@$base" \
    --output "type=oci,tar=false,dest=$work/ctl-out"
}

declare -A L K C
for i in $(seq 1 "$N"); do
  nonce="run-$$-$i-$RANDOM"
  write "$nonce" a
  L[cold]+="$(timed "$work/l.log" local_) "; K[cold]+="$(timed "$work/k.log" bk) "; C[cold]+="$(timed "$work/c.log" ctl) "
  L[cached]+="$(timed "$work/l.log" local_) "; K[cached]+="$(timed "$work/k.log" bk) "; C[cached]+="$(timed "$work/c.log" ctl) "
  write "$nonce" "b$i"
  L[last]+="$(timed "$work/l.log" local_) "; K[last]+="$(timed "$work/k.log" bk) "; C[last]+="$(timed "$work/c.log" ctl) "
  echo "run $i/$N done" >&2
done

printf '%-8s %10s %12s %12s %14s %14s\n' case "local (s)" "strata-bk (s)" "buildctl (s)" "local/buildctl" "strata-bk/buildctl"
for c in cold cached last; do
  l=$(tr ' ' '\n' <<<"${L[$c]}" | grep . | median)
  k=$(tr ' ' '\n' <<<"${K[$c]}" | grep . | median)
  b=$(tr ' ' '\n' <<<"${C[$c]}" | grep . | median)
  printf '%-8s %10.3f %12.3f %12.3f %14.3f %14.3f\n' "$c" "$l" "$k" "$b" "$(echo "$l / $b" | bc -l)" "$(echo "$k / $b" | bc -l)"
done
echo "medians of $N runs each; every figure comes from this run" >&2
