#!/usr/bin/env bash
# The package caches: a pip layer of about 50 MB of wheels, rebuilt (force_build on that
# layer) with strata's pip cache warm, against the same build with the cache emptied first.
# Prints the median of each and the ratio warm/cold, side by side with buildah building the
# same step with a RUN --mount=type=cache for pip's cache (BuildKit's recipe), cold and warm.
#
# The index is served on 127.0.0.1 by bench/pyindex: 10 wheels of 5 MB of data each (a third
# source text, the rest pseudo-random bytes). RATE (MB/s, default 0 = as fast as loopback)
# paces its responses like a network link: loopback makes downloads nearly free, which
# understates what a cache saves against a real index; the script prints both figures when
# RATE is set.
# Run by hand, as root, on an otherwise idle machine: sudo ./bench/pipcache.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
RATE=${RATE:-0}
command -v buildah >/dev/null && command -v skopeo >/dev/null || apt-get install -y -qq buildah skopeo >/dev/null
export PATH=$PATH:/usr/local/go/bin
work=$(mktemp -d /var/tmp/strata-bench-XXXXXX)
trap 'kill $idx_pid 2>/dev/null || true; rm -rf "$work"' EXIT
export STRATA_HOME=${STRATA_HOME:-/var/tmp/strata-bench-home}
CGO_ENABLED=0 go build -o "$work/" ./cmd/strata ./cmd/strata-core
go build -o "$work/pyindex" ./bench/pyindex
strata() { "$work/strata" "$@"; }

"$work/pyindex" -rate "$RATE" > "$work/index.txt" &
idx_pid=$!
for _ in $(seq 50); do [ -s "$work/index.txt" ] && break; sleep 0.1; done
read -r index pkgs < "$work/index.txt"
pkgs_yaml=$(echo "$pkgs" | sed 's/ /, /g')

. bench/base.sh

# pip caches over http only from hosts it trusts (and always over https, as from PyPI).
cat > "$work/image.yaml" <<YAML
image:
  - debian_slim: {python_version: "3.13"}
  - pip_install: {packages: [$pkgs_yaml], index_url: "$index", extra_options: "--trusted-host 127.0.0.1", force_build: true}
YAML
mkdir -p "$work/ctx"
cat > "$work/ctx/Dockerfile" <<DOCKERFILE
FROM localhost/bench-base:$tag
ARG NONCE
RUN --mount=type=cache,target=/root/.cache/pip,id=bench-pip env -u PIP_NO_CACHE_DIR python -m pip install $pkgs --index-url $index --trusted-host 127.0.0.1 && echo \$NONCE
DOCKERFILE

ms() { date +%s%N | cut -b1-13; }
declare -A T
time_strata() { local s; s=$(ms); strata build -f "$work/image.yaml" -t bench-pip --progress plain >/dev/null 2>&1; T[$1]+="$(( $(ms) - s )) "; }
time_buildah() { local s; s=$(ms); buildah build --layers --network host --build-arg NONCE=$RANDOM$RANDOM -t bench-pip-buildah "$work/ctx" >/dev/null 2>&1; T[$1]+="$(( $(ms) - s )) "; }
# buildah keeps RUN --mount=type=cache folders under /var/tmp/buildah-cache: emptied for a
# cold run, as strata's pip cache is.
for i in $(seq "$N"); do
  echo "run $i/$N" >&2
  rm -rf "$STRATA_HOME/caches/pip"
  time_strata strata_cold
  time_strata strata_warm
  buildah prune -f >/dev/null 2>&1 || true
  rm -rf /var/tmp/buildah-cache
  time_buildah buildah_cold
  time_buildah buildah_warm
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sc=$(echo ${T[strata_cold]} | median); sw=$(echo ${T[strata_warm]} | median)
bc=$(echo ${T[buildah_cold]} | median); bw=$(echo ${T[buildah_warm]} | median)
size=$(du -sb "$STRATA_HOME/caches/pip" | cut -f1)
printf 'pip layer of %s wheels, index paced at %s MB/s (0 = loopback), pip cache %.1f MB, median of %s runs\n' "$(echo $pkgs | wc -w)" "$RATE" "$(echo "$size/1048576" | bc -l)" "$N"
printf '%-8s %10s %10s %12s\n' tool cold_ms warm_ms warm/cold
printf '%-8s %10s %10s %12.3f\n' strata "$sc" "$sw" "$(echo "$sw/$sc" | bc -l)"
printf '%-8s %10s %10s %12.3f\n' buildah "$bc" "$bw" "$(echo "$bw/$bc" | bc -l)"
printf 'strata/buildah: cold %.3f, warm %.3f\n' "$(echo "$sc/$bc" | bc -l)" "$(echo "$sw/$bw" | bc -l)"
