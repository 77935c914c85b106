package companion

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	// Beside the running program (the test binary) first.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if p, err := Find(filepath.Base(self)); err != nil || p != self {
		t.Errorf("beside: %q %v", p, err)
	}
	if Dir() != filepath.Dir(self) {
		t.Errorf("Dir: %s", Dir())
	}

	// Then on PATH, an executable file only.
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	os.WriteFile(filepath.Join(dir, "strata-x"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "strata-y"), []byte("#!/bin/sh\n"), 0o644)
	if p, err := Find("strata-x"); err != nil || p != filepath.Join(dir, "strata-x") {
		t.Errorf("on PATH: %q %v", p, err)
	}
	_, err = Find("strata-y")
	if err == nil || !strings.Contains(err.Error(), "strata-y is not installed beside "+self+" or on PATH") {
		t.Errorf("not executable: %v", err)
	}
}
