package strata_test

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/strata-build/strata/internal/rootless"
)

// TestMain fixes the umask: file modes are part of cache keys, and the golden keys must not
// depend on the machine's umask.
func TestMain(m *testing.M) {
	// As an ordinary user, the tests run again in a user namespace (rootless), as strata does.
	if err := rootless.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	syscall.Umask(0o022)
	os.Exit(m.Run())
}
