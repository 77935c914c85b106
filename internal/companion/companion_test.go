package companion

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	for name, mode := range map[string]os.FileMode{"strata-x": 0o755, "strata-y": 0o644, filepath.Base(self): 0o755} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	// Beside the running program (the test binary) first, then on PATH.
	if p, err := Find(filepath.Base(self)); err != nil || p != self {
		t.Errorf("beside, and on PATH too: %q %v", p, err)
	}
	if p, err := Find("strata-x"); err != nil || p != filepath.Join(dir, "strata-x") {
		t.Errorf("on PATH: %q %v", p, err)
	}
	// An executable file only.
	_, err = Find("strata-y")
	if err == nil || !strings.Contains(err.Error(), "no executable strata-y beside "+self+" or on PATH") {
		t.Errorf("not executable: %v", err)
	}
}

func TestInstall(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(self)
	want := "CGO_ENABLED=0 go build -o " + dir + "/ ./cmd/..."
	if strings.ContainsAny(dir, " '$") {
		t.Skipf("the test binary's folder %s needs quoting", dir)
	}
	if got := Install("./cmd/..."); got != want {
		t.Errorf("Install: %s, want %s", got, want)
	}
}
