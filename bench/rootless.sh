#!/usr/bin/env bash
# Rootless against root, side by side in one run: the bench chain (bench.sh's) built by
# strata as root, by strata as an ordinary user (rootless, in a user namespace), and by
# buildah as the same ordinary user (rootless buildah, overlay storage), each from the same
# base bytes. Prints the medians of the cold, fully cached and last-layer-changed builds, and
# the ratios rootless/root and rootless strata/rootless buildah.
# Run as root, on an otherwise idle machine: sudo ./bench/rootless.sh [runs] (it creates the
# user strata-bench, with a subordinate id range, if it does not exist).
set -euo pipefail
export LC_NUMERIC=C # $EPOCHREALTIME has the locale's decimal point, and bc reads a dot
cd "$(dirname "$0")/.."
N=${1:-5}
[ "$(id -u)" = 0 ] || { echo "run as root: it compares root with rootless and makes the user it runs rootless as" >&2; exit 1; }
./scripts/install-deps.sh
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }
export PATH=$PATH:/usr/local/go/bin
user=strata-bench
id "$user" >/dev/null 2>&1 || useradd -m "$user"
./scripts/install-deps.sh --subids "$user"
uhome=$(getent passwd "$user" | cut -d: -f6)
work=$(mktemp -d /var/tmp/strata-bench-XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
export STRATA_HOME=${STRATA_HOME:-/var/tmp/strata-bench-home}
CGO_ENABLED=0 go build -o "$work/" ./cmd/strata ./cmd/strata-core
strata() { "$work/strata" "$@"; }
# as_user runs a command as the bench user, with the user's own environment and no PAM
# session (setpriv, not su, so that the tool's start is all that is timed).
as_user() {
  setpriv --reuid="$user" --regid="$user" --init-groups \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$uhome" USER="$user" LOGNAME="$user" \
    STRATA_HOME="$uhome/strata-bench-home" "$@"
}

# Rootless buildah on overlayfs, as strata (its default for a new user may be vfs, which
# copies every layer): the kernel's overlayfs in a user namespace, no fuse-overlayfs.
if [ "$(as_user buildah info --format '{{.store.GraphDriverName}}' 2>/dev/null)" != overlay ]; then
  rm -rf "$uhome/.local/share/containers" # its files belong to the user's subordinate ids
  as_user sh -c 'mkdir -p "$HOME/.config/containers" &&
    printf "[storage]\ndriver = \"overlay\"\n" > "$HOME/.config/containers/storage.conf"'
fi
[ "$(as_user buildah info --format '{{.store.GraphDriverName}}')" = overlay ] || { echo "rootless buildah does not use overlay" >&2; exit 1; }

. bench/base.sh
# The same base for the user: strata bootstraps it rootless (the same bytes: the layer digests
# are checked; the configs' times differ), buildah gets root strata's export.
as_user "$work/strata" build -f "$work/base.yaml" -t bench-base --progress plain >/dev/null 2>&1
layers() { grep -o '"diff_id": *"[^"]*"' | tr -d ' '; }
[ "$(as_user "$work/strata" inspect bench-base --json | layers)" = "$(strata inspect bench-base --json | layers)" ] ||
  { echo "the rootless base's layer differs from the root base's" >&2; exit 1; }
if ! as_user buildah inspect --type image "localhost/bench-base:$tag" >/dev/null 2>&1; then
  [ -d "$work/base-oci" ] || strata export bench-base --format oci -o "$work/base-oci"
  chmod -R a+rX "$work/base-oci"
  as_user skopeo copy -q "oci:$work/base-oci:bench-base:latest" "containers-storage:localhost/bench-base:$tag"
fi

from="localhost/bench-base:$tag"
. bench/chain.sh

timed() { # log command...
  local log=$1 t; shift; t=$EPOCHREALTIME
  "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  local e=$EPOCHREALTIME; echo "$e - $t" | bc
}
time_root() { timed "$work/root.log" strata build -f "$work/image.yaml" -t bench --progress plain; }
time_rootless() { timed "$work/rootless.log" as_user "$work/strata" build -f "$work/image.yaml" -t bench --progress plain; }
time_buildah() { timed "$work/buildah.log" as_user buildah bud --layers --runtime runc --network host -q -t localhost/bench -f "$work/ctx/Dockerfile" "$work/ctx"; }

declare -A R U B
for i in $(seq 1 "$N"); do
  nonce="run-$$-$i-$RANDOM"
  write "$nonce" a
  R[cold]+="$(time_root) "; U[cold]+="$(time_rootless) "; B[cold]+="$(time_buildah) "
  R[cached]+="$(time_root) "; U[cached]+="$(time_rootless) "; B[cached]+="$(time_buildah) "
  write "$nonce" "b$i"
  R[last]+="$(time_root) "; U[last]+="$(time_rootless) "; B[last]+="$(time_buildah) "
  echo "run $i/$N done" >&2
done

printf '%-8s %11s %15s %16s %17s %22s\n' case "root (s)" "rootless (s)" "buildah rl (s)" "rootless/root" "rootless/buildah rl"
for c in cold cached last; do
  r=$(tr ' ' '\n' <<<"${R[$c]}" | grep . | median)
  u=$(tr ' ' '\n' <<<"${U[$c]}" | grep . | median)
  b=$(tr ' ' '\n' <<<"${B[$c]}" | grep . | median)
  printf '%-8s %11.3f %15.3f %16.3f %17.3f %22.3f\n' "$c" "$r" "$u" "$b" "$(echo "$u / $r" | bc -l)" "$(echo "$u / $b" | bc -l)"
done
echo "medians of $N runs each; strata root and rootless, and rootless buildah, on the same base bytes; every figure comes from this run" >&2
