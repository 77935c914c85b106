// Command strata-buildkit is the strata command with the buildkit engine linked in.
// strata-core runs it for --engine buildkit (or STRATA_ENGINE=buildkit), as docker runs its
// CLI plugins, so that strata-core itself does not link BuildKit's client. Install it beside
// strata and strata-core (go build -o DIR/ ./cmd/...).
package main

import (
	_ "github.com/strata-build/strata/engine/buildkit" // registers the buildkit engine
	"github.com/strata-build/strata/internal/cli"
)

func main() { cli.Main() }
