#!/usr/bin/env bash
# On a fresh machine: installs what strata needs, then builds the seed example image and runs
# code in it. As root, or as an ordinary user (rootless); for an ordinary user, installing
# the Debian packages is the one step that needs root, and it says so (sudo).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" = 0 ]; then
  ./scripts/install-deps.sh
elif ! ./scripts/install-deps.sh --check 2>/dev/null; then
  echo "installing the Debian packages strata needs is the one step that needs root: sudo ./scripts/install-deps.sh" >&2
  sudo ./scripts/install-deps.sh
fi
export PATH=$PATH:/usr/local/go/bin
go run ./examples/seed "$@"
