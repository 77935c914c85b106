#!/usr/bin/env bash
# Registry figures, strata side by side with its peers in one run, against Debian's
# docker-registry on 127.0.0.1:
#   push      push of the ~220 MB debian_slim image to a new repository, against skopeo copy
#             of the same image (strata's own OCI export) to another new repository
#   repush    the same push again (nothing to send), against skopeo copy again
#   remote    the bench chain built from an empty store with --cache-from a registry cache that
#             an earlier build filled (--cache-to), against buildah bud --layers --cache-from
#             from an empty storage, both starting from the base in the registry
# Run by hand, as root, on an otherwise idle machine: sudo ./bench/registry.sh [runs]
set -euo pipefail
export LC_NUMERIC=C # $EPOCHREALTIME has the locale's decimal point, and bc reads a dot
cd "$(dirname "$0")/.."
N=${1:-3}
command -v buildah >/dev/null && command -v skopeo >/dev/null && command -v docker-registry >/dev/null || apt-get install -y -qq buildah skopeo docker-registry bc >/dev/null
export PATH=$PATH:/usr/local/go/bin
work=$(mktemp -d /var/tmp/strata-bench-reg-XXXXXX)
cleanup() { for p in "${regpids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
export STRATA_HOME=${STRATA_HOME:-/var/tmp/strata-bench-home}
CGO_ENABLED=0 go build -o "$work/" ./cmd/strata ./cmd/strata-core
strata() { "$work/strata" "$@"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
timed() { local t=$EPOCHREALTIME; "$@" >"$work/out.log" 2>&1 || { cat "$work/out.log" >&2; exit 1; }; local e=$EPOCHREALTIME; echo "$e - $t" | bc; }

# start_registry NAME: a fresh docker-registry; prints its address.
regpids=()
start_registry() {
  local port=$((20000 + RANDOM % 20000)) dir="$work/registry-$1"
  mkdir -p "$dir"
  printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%s\n' "$dir" "$port" > "$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  regpids+=($!)
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "127.0.0.1:$port"
}
echo "preparing the base..." >&2
printf 'image:\n  - debian_slim: {python_version: "3.13"}\n' > "$work/base.yaml"
strata build -f "$work/base.yaml" -t bench-base --progress plain >/dev/null 2>&1
strata export bench-base --format oci -o "$work/base-oci"
size=$(strata inspect bench-base | awk '/^ +sha256:/ {print $2, $3}')
echo "base layer: $size" >&2

# Each run pushes to two new registries, one per tool, so neither can mount what it (or the
# other) pushed before.
declare -A S P
for i in $(seq 1 "$N"); do
  sreg=$(start_registry "s$i"); preg=$(start_registry "p$i")
  S[push]+="$(timed strata push bench-base "$sreg/bench/base:1") "
  P[push]+="$(timed skopeo copy -q --dest-tls-verify=false "oci:$work/base-oci:bench-base:latest" "docker://$preg/bench/base:1") "
  S[repush]+="$(timed strata push bench-base "$sreg/bench/base:1") "
  P[repush]+="$(timed skopeo copy -q --dest-tls-verify=false "oci:$work/base-oci:bench-base:latest" "docker://$preg/bench/base:1") "
  echo "push run $i/$N done" >&2
done
reg=$sreg

# The bench chain, from the base in the registry.
nonce="remote-$$-$RANDOM"
cat > "$work/chain.yaml" <<YAML
image:
  - from_registry: {tag: "$reg/bench/base:1"}
  - run_commands: {commands: ["apt-get update && apt-get install -y git # $nonce"]}
  - run_commands: {commands: ["python3 -c 'print(1)' # $nonce"]}
  - env: {vars: {X: "1"}}
YAML
mkdir -p "$work/ctx"
cat > "$work/ctx/Dockerfile" <<DOCKERFILE
FROM $reg/bench/base:1
RUN apt-get update && apt-get install -y git # $nonce
RUN python3 -c 'print(1)' # $nonce
ENV X=1
DOCKERFILE
echo "filling both registry caches..." >&2
strata build -f "$work/chain.yaml" -t bench-remote --cache-to "$reg/cache/strata" --progress plain >"$work/fill.log" 2>&1 || { cat "$work/fill.log"; exit 1; }
buildah --root "$work/b-fill/root" --runroot "$work/b-fill/run" bud --layers --runtime runc --network host --tls-verify=false \
  --cache-to "$reg/cache/buildah" -q -t localhost/bench-remote -f "$work/ctx/Dockerfile" "$work/ctx" >"$work/fill.log" 2>&1 || { cat "$work/fill.log"; exit 1; }
for i in $(seq 1 "$N"); do
  S[remote]+="$(STRATA_HOME="$work/s-$i" timed strata build -f "$work/chain.yaml" -t bench-remote --cache-from "$reg/cache/strata" --progress plain) "
  grep -q building "$work/out.log" && { echo "strata ran a step in the remote-cached build:" >&2; cat "$work/out.log" >&2; exit 1; }
  P[remote]+="$(timed buildah --root "$work/b-$i/root" --runroot "$work/b-$i/run" bud --layers --runtime runc --network host --tls-verify=false \
    --cache-from "$reg/cache/buildah" -q -t localhost/bench-remote -f "$work/ctx/Dockerfile" "$work/ctx") "
  buildah --root "$work/b-$i/root" --runroot "$work/b-$i/run" rm --all >/dev/null 2>&1 || true
  rm -rf "$work/s-$i" "$work/b-$i"
  echo "remote run $i/$N done" >&2
done

printf '%-8s %12s %12s %10s %14s\n' case "strata (s)" "peer (s)" peer "strata/peer"
for c in push repush remote; do
  peer=skopeo; [ "$c" = remote ] && peer=buildah
  s=$(tr ' ' '\n' <<<"${S[$c]}" | grep . | median)
  p=$(tr ' ' '\n' <<<"${P[$c]}" | grep . | median)
  printf '%-8s %12.3f %12.3f %10s %14.3f\n' "$c" "$s" "$p" "$peer" "$(echo "$s / $p" | bc -l)"
done
echo "medians of $N runs each; every figure comes from this run" >&2
