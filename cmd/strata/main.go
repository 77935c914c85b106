// Command strata builds container images defined as code.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/strata-build/strata/internal/cli"
	"github.com/strata-build/strata/internal/rootless"
)

func main() {
	if needsEngine(os.Args[1:]) {
		// As an ordinary user, the rest runs again in a user namespace (rootless).
		if err := rootless.Enter(); err != nil {
			fmt.Fprintln(os.Stderr, "strata:", err)
			os.Exit(1)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.New().ExecuteContext(ctx)
	stop()
	var code *cli.ExitCode
	if errors.As(err, &code) {
		os.Exit(code.Code)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata:", err)
		os.Exit(1)
	}
}

// needsEngine says whether a command line may touch the store or run containers: all but
// version, help (asked anywhere on the line) and shell completion, which need no user
// namespace.
func needsEngine(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break // the rest is the container's command
		}
		switch a {
		case "-h", "--help":
			return false
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		switch a {
		case "help", "version", "completion", "__complete", "__completeNoDesc":
			return false
		}
		return true // the command's name decides, and it is not one of the above
	}
	return len(args) > 0
}
