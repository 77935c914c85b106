package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/internal/companion"
	"github.com/strata-build/strata/internal/fasthit"
	"github.com/strata-build/strata/internal/rootless"
)

// Main runs the strata command line: cmd/strata-core, which the strata front runs for all but
// a cache hit, and cmd/strata-buildkit, which is the same command with the buildkit engine
// linked in.
func Main() {
	args := os.Args[1:]
	if name := engineArg(args); name != "" && name != "local" {
		if _, ok := engine.Lookup(name); !ok {
			err := fmt.Errorf("strata-%s does not link the %s engine", name, name)
			if os.Getenv("STRATA_ENGINE_PLUGIN") == "" { // not run by strata already
				// As docker's CLI plugins: the engine lives in its own command, so that
				// strata-core does not pay for linking BuildKit's client on every start.
				os.Setenv("STRATA_ENGINE_PLUGIN", name)
				err = execPlugin(name, args)
			}
			fmt.Fprintln(os.Stderr, "strata:", err)
			os.Exit(1)
		}
	}
	keepMemoKey(args, rootless.Reentered())
	if needsEngine(args) {
		// As an ordinary user, the rest runs again in a user namespace (rootless).
		if err := rootless.Enter(); err != nil {
			fmt.Fprintln(os.Stderr, "strata:", err)
			os.Exit(1)
		}
	}
	os.Unsetenv(fasthit.KeyEnv) // not for the build's steps and containers
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := New().ExecuteContext(ctx)
	stop()
	var code *ExitCode
	if errors.As(err, &code) {
		os.Exit(code.Code)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata:", err)
		os.Exit(1)
	}
}

// engineArg is the engine a command line asks for: --engine, else STRATA_ENGINE.
func engineArg(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--engine="); ok {
			return v
		}
		if a == "--engine" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return os.Getenv("STRATA_ENGINE")
}

// execPlugin replaces the process with strata-NAME, found beside this program or on PATH.
func execPlugin(name string, args []string) error {
	plugin := "strata-" + name
	path, err := companion.Find(plugin)
	if err != nil {
		return fmt.Errorf("the %s engine is in the %s command: %w; install it from a strata checkout: %s", name, plugin, err, companion.Install("./cmd/"+plugin))
	}
	return syscall.Exec(path, append([]string{path}, args...), os.Environ())
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
	skip := false
	for _, a := range args {
		if skip {
			skip = false
			continue
		}
		if a == "--engine" || a == "--addr" {
			skip = true // a global flag's value is not the command's name
			continue
		}
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
