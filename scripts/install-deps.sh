#!/usr/bin/env bash
# Installs what strata and its tests need on a fresh Debian machine (idempotent). It is the
# one step that needs root:
#   sudo ./scripts/install-deps.sh
#   runc, mmdebstrap: the local engine (OCI runtime, Debian bases)
#   uidmap: newuidmap and newgidmap, for rootless strata (an ordinary user's builds)
#   git: the example's local repository
#   docker-registry, skopeo, umoci, podman: the tests' real registry and independent checks
#   buildah, openssh-client: the Dockerfile conformance corpus's peer builder and its ssh agent
# Run with sudo, it also gives the user who ran it a subordinate id range (/etc/subuid,
# /etc/subgid) if the user has none: rootless strata maps the ids of a build's files to it.
#   ./scripts/install-deps.sh --check        says what is missing (any user; exit 1 if anything)
#   sudo ./scripts/install-deps.sh --subids USER   gives USER a range if USER has none
set -euo pipefail
pkgs=(runc mmdebstrap git ca-certificates docker-registry skopeo umoci podman uidmap buildah openssh-client)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
export PATH=$PATH:/usr/local/go/bin
gomissing() { ! command -v go >/dev/null; }

if [ "${1:-}" = --check ]; then
  if ((${#missing[@]})); then
    echo "missing Debian packages: ${missing[*]}; installing them is the one step that needs root: sudo $0" >&2
    exit 1
  fi
  me=$(id -un)
  if [ "$(id -u)" != 0 ] && ! { grep -q "^$me:" /etc/subuid && grep -q "^$me:" /etc/subgid; } 2>/dev/null; then
    echo "$me has no subordinate ids (/etc/subuid, /etc/subgid), which rootless strata needs: sudo $0 gives $me a range" >&2
    exit 1
  fi
  gomissing && { echo "Go is needed (https://go.dev/dl); this machine kind ships it in /usr/local/go" >&2; exit 1; }
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "installing Debian packages needs root: sudo $0" >&2; exit 1; }

# subids USER: a subordinate uid and gid range of 65536 ids after every range in use.
subids() {
  local u=$1
  grep -q "^$u:" /etc/subuid 2>/dev/null && grep -q "^$u:" /etc/subgid 2>/dev/null && return
  local start
  start=$({ cat /etc/subuid /etc/subgid 2>/dev/null || true; } | awk -F: 'BEGIN {m = 100000} NF == 3 && $2 + $3 > m {m = $2 + $3} END {print m}')
  usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" "$u"
  echo "gave $u the subordinate ids $start-$((start + 65535)), for rootless strata" >&2
}

if [ "${1:-}" = --subids ]; then
  [ -n "${2:-}" ] || { echo "usage: sudo $0 --subids USER" >&2; exit 2; }
  subids "$2"
  exit 0
fi
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
  subids "$SUDO_USER"
fi
gomissing && { echo "Go is needed (https://go.dev/dl); this machine kind ships it in /usr/local/go" >&2; exit 1; }
exit 0
