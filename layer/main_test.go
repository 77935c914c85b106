package layer

import (
	"fmt"
	"os"
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
