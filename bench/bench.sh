#!/usr/bin/env bash
# Builds the same chain with strata and with buildah, side by side in one run, and prints the
# median times and their ratios for three cases:
#   cold     every layer after the base is new (the base is already cached by both)
#   cached   nothing changed: a fully cached rebuild
#   last     only the last build step changed
# The chain: a trixie Python base, apt-get install -y git, python3 -c 'print(1)', ENV X=1.
# Both tools start from the same base image: strata's debian_slim, imported into buildah.
# Run by hand, as root, on an otherwise idle machine: sudo ./bench/bench.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
command -v buildah >/dev/null && command -v skopeo >/dev/null || apt-get install -y -qq buildah skopeo bc >/dev/null
export PATH=$PATH:/usr/local/go/bin
work=$(mktemp -d /var/tmp/strata-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
export STRATA_HOME=${STRATA_HOME:-/var/tmp/strata-bench-home}
go build -o "$work/strata" ./cmd/strata
strata() { "$work/strata" "$@"; }

. bench/base.sh

from="localhost/bench-base:$tag"
. bench/chain.sh

time_strata() { local t=$(now); strata build -f "$work/image.yaml" -t bench --progress plain >"$work/strata.log" 2>&1 || { cat "$work/strata.log"; exit 1; }; echo "$(now) - $t" | bc; }
time_buildah() { local t=$(now); buildah bud --layers --runtime runc --network host -q -t localhost/bench -f "$work/ctx/Dockerfile" "$work/ctx" >"$work/buildah.log" 2>&1 || { cat "$work/buildah.log"; exit 1; }; echo "$(now) - $t" | bc; }

declare -A S B
for i in $(seq 1 "$N"); do
  nonce="run-$$-$i-$RANDOM"
  write "$nonce" a
  S[cold]+="$(time_strata) "; B[cold]+="$(time_buildah) "
  S[cached]+="$(time_strata) "; B[cached]+="$(time_buildah) "
  write "$nonce" "b$i"
  S[last]+="$(time_strata) "; B[last]+="$(time_buildah) "
  echo "run $i/$N done" >&2
done

printf '%-8s %12s %12s %16s\n' case "strata (s)" "buildah (s)" "strata/buildah"
for c in cold cached last; do
  s=$(tr ' ' '\n' <<<"${S[$c]}" | grep . | median)
  b=$(tr ' ' '\n' <<<"${B[$c]}" | grep . | median)
  printf '%-8s %12.3f %12.3f %16.3f\n' "$c" "$s" "$b" "$(echo "$s / $b" | bc -l)"
done
echo "medians of $N runs each; every figure comes from this run" >&2
