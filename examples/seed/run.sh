#!/usr/bin/env bash
# On a fresh machine: installs what strata needs, then builds the seed example image and runs
# code in it. Needs root (runc, overlayfs, mmdebstrap).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root: sudo $0" >&2; exit 1; }
./scripts/install-deps.sh
export PATH=$PATH:/usr/local/go/bin
go run ./examples/seed "$@"
