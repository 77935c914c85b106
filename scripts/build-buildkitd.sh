#!/usr/bin/env bash
# Builds buildkitd and buildctl from the BuildKit module strata depends on (go.mod's
# version), into DIR (default /usr/local/bin), for the buildkit engine and its tests.
# `go install github.com/moby/buildkit/cmd/buildkitd@VERSION` is refused by the exclude block
# in BuildKit's go.mod, so the module folder is copied and built in place, with its own
# go.mod; nothing prebuilt is downloaded. Does nothing when DIR has this version already.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
dest=${1:-/usr/local/bin}
version=$(go list -m -f '{{.Version}}' github.com/moby/buildkit)
if [ -x "$dest/buildkitd" ] && [ -x "$dest/buildctl" ] && "$dest/buildkitd" --version 2>/dev/null | grep -qF " $version "; then
  exit 0
fi
mod=$(go mod download -json "github.com/moby/buildkit@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$mod" ] || { echo "build-buildkitd: no module folder for github.com/moby/buildkit@$version" >&2; exit 1; }
src=$(mktemp -d /var/tmp/buildkit-src-XXXXXX)
trap 'rm -rf "$src"' EXIT
cp -r "$mod/." "$src"
chmod -R u+w "$src"
echo "building buildkitd and buildctl $version from $mod" >&2
mkdir -p "$dest"
(cd "$src" && go build -trimpath -ldflags "-X github.com/moby/buildkit/version.Version=$version" -o "$dest/buildkitd" ./cmd/buildkitd \
  && go build -trimpath -ldflags "-X github.com/moby/buildkit/version.Version=$version" -o "$dest/buildctl" ./cmd/buildctl)
"$dest/buildkitd" --version
