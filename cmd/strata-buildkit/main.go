// Command strata-buildkit is the strata command with the buildkit engine linked in. strata
// runs it for --engine buildkit (or STRATA_ENGINE=buildkit), as docker runs its CLI
// plugins, so that strata itself does not link BuildKit's client. Install it beside strata.
package main

import (
	_ "github.com/strata-build/strata/engine/buildkit" // registers the buildkit engine
	"github.com/strata-build/strata/internal/cli"
)

func main() { cli.Main() }
