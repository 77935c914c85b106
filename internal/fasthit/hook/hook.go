// Package hook runs the strata command's cache-hit path (package fasthit) from its init.
// Go initialises a package as soon as the packages it imports are, in import path order
// (the Go spec, "Package initialization"), so this one, importing only small packages,
// runs before BuildKit's, go-containerregistry's and the rest of the command's: a build
// that is all cache hits exits here, having initialised none of them. Only cmd/strata
// imports it.
package hook

import (
	"os"

	"github.com/strata-build/strata/internal/fasthit"
)

func init() {
	answered, err := fasthit.Try(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		os.Stderr.WriteString("strata: " + err.Error() + "\n")
		os.Exit(1)
	}
	if answered {
		os.Exit(0)
	}
}
