// Command strata-core is the whole strata command. The strata front (cmd/strata) runs it,
// from beside itself or on PATH, for every command line it does not answer from the
// cache-hit path; install the two together. Run alone it works the same, and leaves no
// memos, which only the front reads.
package main

import "github.com/strata-build/strata/internal/cli"

func main() { cli.Main() }
