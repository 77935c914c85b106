#!/usr/bin/env bash
# Builds the same chain with strata and with buildah, side by side in one run, and prints the
# median times and their ratios for three cases:
#   cold     every layer after the base is new (the base is already cached by both)
#   cached   nothing changed: a fully cached rebuild
#   last     only the last build step changed
# and a fourth row, hashing: strata spec (resolve, which hashes the local files, with every
# digest remembered) over a 10,000-file tree, against the floor of listing the same tree
# with one lstat per file (find -printf), in place of buildah's column. An unchanged tree is
# answered from the memo of the last resolve (one lstat per listed file and folder); the
# fifth row, walk, is the same resolve with the memo off (STRATA_NO_FAST_HIT=1): the walk
# and the digest cache, as after any change to the tree.
# The chain: a trixie Python base, apt-get install -y git, python3 -c 'print(1)', ENV X=1.
# strata lends its apt cache (a local proxy) to the RUN steps; the Dockerfile, as users write
# it, has no cache mount, so buildah fetches the packages each time.
# Both tools start from the same base image: strata's debian_slim, imported into buildah.
# Run by hand, as root, on an otherwise idle machine: sudo ./bench/bench.sh [runs]
set -euo pipefail
export LC_NUMERIC=C # $EPOCHREALTIME has the locale's decimal point, and bc reads a dot
cd "$(dirname "$0")/.."
N=${1:-5}
command -v buildah >/dev/null && command -v skopeo >/dev/null || apt-get install -y -qq buildah skopeo bc >/dev/null
export PATH=$PATH:/usr/local/go/bin
work=$(mktemp -d /var/tmp/strata-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
export STRATA_HOME=${STRATA_HOME:-/var/tmp/strata-bench-home}
CGO_ENABLED=0 go build -o "$work/" ./cmd/strata ./cmd/strata-core
strata() { "$work/strata" "$@"; }

. bench/base.sh

from="localhost/bench-base:$tag"
. bench/chain.sh

time_strata() { local t=$EPOCHREALTIME; strata build -f "$work/image.yaml" -t bench --progress plain >"$work/strata.log" 2>&1 || { cat "$work/strata.log"; exit 1; }; local e=$EPOCHREALTIME; echo "$e - $t" | bc; }
time_buildah() { local t=$EPOCHREALTIME; buildah bud --layers --runtime runc --network host -q -t localhost/bench -f "$work/ctx/Dockerfile" "$work/ctx" >"$work/buildah.log" 2>&1 || { cat "$work/buildah.log"; exit 1; }; local e=$EPOCHREALTIME; echo "$e - $t" | bc; }

# One build of each, untimed, first: both start the timed runs with the base, the mirror's
# connection and the page cache warm, and strata with its apt cache warm (its proxy keeps the
# .deb files the chain's apt-get fetched; buildah's RUN, as written, keeps none).
write "warmup-$$-$RANDOM" a
time_strata >/dev/null; time_buildah >/dev/null

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

# Hashing: a 10,000-file tree (100 folders of 100 files, 1-4 KiB each) copied by
# add_local_dir; the first resolve hashes it and remembers the digests, the timed ones find
# every file unchanged. The floor lists the same tree with one lstat per entry.
tree="$work/tree"
for d in $(seq -w 0 99); do
  mkdir -p "$tree/d$d"
  for f in $(seq -w 0 99); do head -c $((1024 + 10#$f * 30)) /dev/zero >"$tree/d$d/f$f.txt"; done
done
printf 'image:\n  - debian_slim: {python_version: "3.13"}\n  - add_local_dir: {local_path: %s, remote_path: /tree, copy: true}\n' "$tree" >"$work/hash.yaml"
# A file changed in the two seconds before a run is never vouched for by a memo (racily
# clean, as git's index): the tree settles first.
sleep 2
strata spec -f "$work/hash.yaml" >/dev/null
time_hash() { local t=$EPOCHREALTIME; strata spec -f "$work/hash.yaml" >/dev/null; local e=$EPOCHREALTIME; echo "$e - $t" | bc; }
time_walk() { local t=$EPOCHREALTIME; STRATA_NO_FAST_HIT=1 strata spec -f "$work/hash.yaml" >/dev/null; local e=$EPOCHREALTIME; echo "$e - $t" | bc; }
time_find() { local t=$EPOCHREALTIME; find "$tree" -printf '%s %T@ %C@ %i\n' >/dev/null; local e=$EPOCHREALTIME; echo "$e - $t" | bc; }
for i in $(seq 1 $((N * 3))); do
  S[hashing]+="$(time_hash) "; B[hashing]+="$(time_find) "
  S[walk]+="$(time_walk) "; B[walk]+="$(time_find) "
done

printf '%-8s %12s %12s %16s\n' case "strata (s)" "buildah (s)" "strata/buildah"
for c in cold cached last hashing walk; do
  s=$(tr ' ' '\n' <<<"${S[$c]}" | grep . | median)
  b=$(tr ' ' '\n' <<<"${B[$c]}" | grep . | median)
  printf '%-8s %12.3f %12.3f %16.3f\n' "$c" "$s" "$b" "$(echo "$s / $b" | bc -l)"
done
echo "hashing: strata spec over a warm 10,000-file tree (whole process), against find -printf's lstat of the same tree (the buildah column); walk: the same with STRATA_NO_FAST_HIT=1" >&2
echo "medians of $N runs each; every figure comes from this run" >&2
