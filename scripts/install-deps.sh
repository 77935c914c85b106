#!/usr/bin/env bash
# Installs what strata and its tests need on a fresh Debian machine (idempotent; needs root).
#   runc, mmdebstrap: the local engine (OCI runtime, Debian bases)
#   git: the example's local repository
#   docker-registry, skopeo, umoci, podman: the tests' real registry and independent checks
#   buildah, openssh-client: the Dockerfile conformance corpus's peer builder and its ssh agent
set -euo pipefail
pkgs=(runc mmdebstrap git ca-certificates docker-registry skopeo umoci podman uidmap buildah openssh-client)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "Go is needed (https://go.dev/dl); this machine kind ships it in /usr/local/go" >&2; exit 1; }
