// Command strata builds container images defined as code.
package main

import (
	"github.com/strata-build/strata/internal/cli"
	_ "github.com/strata-build/strata/internal/fasthit/hook" // a build that is all cache hits ends in its init
)

func main() { cli.Main() }
