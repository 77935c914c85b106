// Command strata builds container images defined as code. This is the command's front: a
// small program that answers a build or resolve whose inputs are unchanged since its last
// run from that run's memo (internal/fasthit), in a few milliseconds, and runs strata-core,
// the whole command, for everything else. The front links none of strata-core's packages
// (BuildKit's parsers, registry clients, runc plumbing), so a cache hit never pays for
// starting them. strata-core is found beside the front or on PATH, as git finds its git-*
// commands; install the two together:
//
//	CGO_ENABLED=0 go build -o /usr/local/bin/ ./cmd/...
package main

import (
	"os"
	"syscall"

	"github.com/strata-build/strata/internal/companion"
	"github.com/strata-build/strata/internal/fasthit"
)

func main() {
	core, err := companion.Find("strata-core")
	if err != nil {
		fail(err.Error() + ": it is the rest of the strata command; install the strata commands together from a strata checkout: " + companion.Install("./cmd/..."))
	}
	answered, err := fasthit.Try(os.Args[1:], core, os.Stdout, os.Stderr)
	if err != nil {
		fail(err.Error())
	}
	if answered {
		os.Exit(0)
	}
	if a, err := os.Stat(core); err == nil {
		if b, err := os.Stat("/proc/self/exe"); err == nil && os.SameFile(a, b) {
			fail(core + " is this program, the strata front, not strata-core: install it from a strata checkout: " + companion.Install("./cmd/..."))
		}
	}
	err = syscall.Exec(core, append([]string{os.Args[0]}, os.Args[1:]...), os.Environ())
	fail("running " + core + ": " + err.Error())
}

func fail(msg string) {
	os.Stderr.WriteString("strata: " + msg + "\n")
	os.Exit(1)
}
