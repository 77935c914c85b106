#!/usr/bin/env bash
# A multi-stage Dockerfile with two independent stages, built by strata and by buildah side by
# side in one run, from the same base bytes (strata's debian_slim, imported into buildah):
#   cold     every stage is new (a nonce in each), the base is cached by both
#   cached   nothing changed: a fully cached rebuild
# buildah runs with --jobs 2, so that it too may build the two stages at once.
# Run by hand, as root, on an otherwise idle machine: sudo ./bench/dockerfile.sh [runs]
set -euo pipefail
export LC_NUMERIC=C # $EPOCHREALTIME has the locale's decimal point, and bc reads a dot
cd "$(dirname "$0")/.."
N=${1:-5}
command -v buildah >/dev/null && command -v skopeo >/dev/null || apt-get install -y -qq buildah skopeo bc >/dev/null
export PATH=$PATH:/usr/local/go/bin
work=$(mktemp -d /var/tmp/strata-bench-df-XXXXXX)
trap 'rm -rf "$work"' EXIT
export STRATA_HOME=${STRATA_HOME:-/var/tmp/strata-bench-home}
CGO_ENABLED=0 go build -o "$work/" ./cmd/strata ./cmd/strata-core
strata() { "$work/strata" "$@"; }

. bench/base.sh

mkdir -p "$work/ctx"
write() {
  cat > "$work/ctx/Dockerfile" <<DOCKERFILE
ARG BASE
FROM \$BASE AS tools
RUN apt-get update && apt-get install -y --no-install-recommends git # $1
RUN git --version > /tools.txt

FROM \$BASE AS data
RUN python3 -c "import hashlib; open('/data.txt','w').write(hashlib.sha256(b'x'*200_000_000).hexdigest())" # $1

FROM \$BASE
COPY --from=tools /tools.txt /out/
COPY --from=data /data.txt /out/
ENV X=1
DOCKERFILE
}

time_strata() { local t=$EPOCHREALTIME; strata build -t bench-df --build-arg BASE=bench-base --progress plain "$work/ctx" >"$work/strata.log" 2>&1 || { cat "$work/strata.log"; exit 1; }; local e=$EPOCHREALTIME; echo "$e - $t" | bc; }
time_buildah() { local t=$EPOCHREALTIME; buildah bud --layers --jobs 2 --runtime runc --network host -q --build-arg BASE="localhost/bench-base:$tag" -t localhost/bench-df "$work/ctx" >"$work/buildah.log" 2>&1 || { cat "$work/buildah.log"; exit 1; }; local e=$EPOCHREALTIME; echo "$e - $t" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A S B
for i in $(seq 1 "$N"); do
  write "run-$$-$i-$RANDOM"
  S[cold]+="$(time_strata) "; B[cold]+="$(time_buildah) "
  S[cached]+="$(time_strata) "; B[cached]+="$(time_buildah) "
  echo "run $i/$N done" >&2
done

printf '%-8s %12s %12s %16s\n' case "strata (s)" "buildah (s)" "strata/buildah"
for c in cold cached; do
  s=$(tr ' ' '\n' <<<"${S[$c]}" | grep . | median)
  b=$(tr ' ' '\n' <<<"${B[$c]}" | grep . | median)
  printf '%-8s %12.3f %12.3f %16.3f\n' "$c" "$s" "$b" "$(echo "$s / $b" | bc -l)"
done
echo "medians of $N runs each; every figure comes from this run" >&2
