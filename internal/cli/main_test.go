package cli

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/strata-build/strata/internal/rootless"
)

// TestMain runs the tests again in a user namespace as an ordinary user (rootless), as
// strata does: they change owners and open the store.
func TestMain(m *testing.M) {
	if err := rootless.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestNeedsEngine(t *testing.T) {
	for args, want := range map[string]bool{
		"":                            false,
		"version":                     false,
		"--help":                      false,
		"help build":                  false,
		"completion bash":             false,
		"--engine buildkit version":   false,
		"build -f x.yaml":             true,
		"--progress plain build":      true,
		"run img -- version":          true,
		"images":                      true,
		"--addr unix:///x.sock build": true,
	} {
		if got := needsEngine(strings.Fields(args)); got != want {
			t.Errorf("needsEngine(%q) = %v, want %v", args, got, want)
		}
	}
}

func TestEngineArg(t *testing.T) {
	t.Setenv("STRATA_ENGINE", "")
	for args, want := range map[string]string{
		"build -f x.yaml":                    "",
		"--engine buildkit build":            "buildkit",
		"build --engine=buildkit -f x":       "buildkit",
		"run img -- sh -c --engine=buildkit": "",
	} {
		if got := engineArg(strings.Fields(args)); got != want {
			t.Errorf("engineArg(%q) = %q, want %q", args, got, want)
		}
	}
	t.Setenv("STRATA_ENGINE", "buildkit")
	if got := engineArg([]string{"images"}); got != "buildkit" {
		t.Errorf("STRATA_ENGINE: %q", got)
	}
}
