package strata_test

import (
	"os"
	"syscall"
	"testing"
)

// TestMain fixes the umask: file modes are part of cache keys, and the golden keys must not
// depend on the machine's umask.
func TestMain(m *testing.M) {
	syscall.Umask(0o022)
	os.Exit(m.Run())
}
