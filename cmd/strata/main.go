// Command strata builds container images defined as code.
package main

import "github.com/strata-build/strata/internal/cli"

func main() { cli.Main() }
