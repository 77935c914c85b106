# Sourced by the benchmarks: builds strata's debian_slim 3.13 as bench-base, and gives
# buildah the same bytes as localhost/bench-base:$tag (tagged by strata's manifest digest),
# so both tools start from the same base. Needs $work and a strata function.
echo "preparing the shared base..." >&2
printf 'image:\n  - debian_slim: {python_version: "3.13"}\n' > "$work/base.yaml"
strata build -f "$work/base.yaml" -t bench-base --progress plain >/dev/null 2>&1
tag=$(strata inspect bench-base | awk '/^manifest:/ {print substr($2, 8, 12)}')
if ! buildah inspect --type image "localhost/bench-base:$tag" >/dev/null 2>&1; then
  strata export bench-base --format oci -o "$work/base-oci"
  skopeo copy -q "oci:$work/base-oci:bench-base:latest" "containers-storage:localhost/bench-base:$tag"
fi
