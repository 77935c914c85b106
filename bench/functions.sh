#!/usr/bin/env bash
# The time from calling a Go function on a built image to its first line of output, against
# podman run of the same image (strata's debian_slim, imported into podman) printing a line,
# side by side in one run. Run by hand, as root: sudo ./bench/functions.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-9}
command -v podman >/dev/null && command -v skopeo >/dev/null || apt-get install -y -qq podman skopeo >/dev/null
export PATH=$PATH:/usr/local/go/bin
work=$(mktemp -d /var/tmp/strata-bench-fn-XXXXXX)
trap 'rm -rf "$work"' EXIT
export STRATA_HOME=${STRATA_HOME:-/var/tmp/strata-bench-home}
CGO_ENABLED=0 go build -o "$work/fnlatency" ./bench/fnlatency
CGO_ENABLED=0 go build -o "$work/" ./cmd/strata ./cmd/strata-core
printf 'image:\n  - debian_slim: {python_version: "3.13"}\n' > "$work/base.yaml"
"$work/strata" build -f "$work/base.yaml" -t bench-base --progress plain >/dev/null 2>&1
tag=$("$work/strata" inspect bench-base | awk '/^manifest:/ {print substr($2, 8, 12)}')
if ! podman image exists "localhost/bench-base:$tag"; then
  "$work/strata" export bench-base --format oci -o "$work/base-oci"
  skopeo copy -q "oci:$work/base-oci:bench-base:latest" "containers-storage:localhost/bench-base:$tag"
fi
"$work/fnlatency" -n "$N" -podman-image "localhost/bench-base:$tag"
