#!/usr/bin/env bash
# Runs every test: unit tests, and integration tests with real runc, overlayfs, mmdebstrap,
# pip, docker-registry, skopeo, umoci and podman. Needs root. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the integration tests need root: run with sudo" >&2; exit 1; }
./scripts/install-deps.sh
export PATH=$PATH:/usr/local/go/bin
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || { echo "not gofmt-formatted: $unformatted" >&2; exit 1; }
go vet ./...
STRATA_INTEGRATION=1 go test -count=1 -timeout 60m "$@" ./...
