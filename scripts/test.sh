#!/usr/bin/env bash
# Runs every test: unit tests, and integration tests with real runc, overlayfs, mmdebstrap,
# pip, docker-registry, skopeo, umoci, podman and buildkitd (built from BuildKit's module).
#   As root: installs what is missing, runs the tests as root, then runs them again rootless,
#   as the ordinary user strata-ci (made here, with a subordinate id range).
#   As an ordinary user: runs the suite rootless. Installing Debian packages is the one step
#   that needs root; if any is missing this says so (sudo ./scripts/install-deps.sh).
# Arguments go to go test (-v, -run ...).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
if [ "$(id -u)" = 0 ]; then
  ./scripts/install-deps.sh
else
  ./scripts/install-deps.sh --check
fi
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || { echo "not gofmt-formatted: $unformatted" >&2; exit 1; }
go vet ./...

if [ "$(id -u)" != 0 ]; then
  echo "== the tests, rootless, as $(id -un)" >&2
  STRATA_INTEGRATION=1 go test -count=1 -timeout 60m "$@" ./...
  exit
fi

# buildkitd for the buildkit engine's tests, built from BuildKit's module (not downloaded).
./scripts/build-buildkitd.sh /usr/local/bin
user=strata-ci
id "$user" >/dev/null 2>&1 || useradd -m "$user"
./scripts/install-deps.sh --subids "$user"
echo "== the tests, as root" >&2
STRATA_TEST_ROOTLESS_USER=$user STRATA_INTEGRATION=1 go test -count=1 -timeout 60m "$@" ./...
echo "== fuzzing the parsers of outside input, briefly" >&2
./scripts/fuzz.sh "${STRATA_FUZZ_SECONDS:-10}"

# The rootless run: the tests as the ordinary user, from a copy of this tree the user can
# read, with the user's own Go caches (its modules come from the Go proxy).
echo "== the tests, rootless, as $user" >&2
src=$(mktemp -d /var/tmp/strata-rootless-src-XXXXXX)
trap 'rm -rf "$src"' EXIT
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$src"
else
  cp -r . "$src"
fi
chmod -R a+rX "$src"
uhome=$(getent passwd "$user" | cut -d: -f6)
setpriv --reuid="$user" --regid="$user" --init-groups \
  env -i PATH="$PATH" HOME="$uhome" USER="$user" LOGNAME="$user" CI="${CI:-}" STRATA_INTEGRATION=1 \
  GOPROXY="$(go env GOPROXY)" GOSUMDB="$(go env GOSUMDB)" GOFLAGS="$(go env GOFLAGS)" \
  bash -c 'cd "$1" && shift && go test -count=1 -timeout 60m "$@" ./...' _ "$src" "$@"
