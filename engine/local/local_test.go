package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A store records the id maps its owners were written under, and refuses other ones: root's
// store opened rootless, or the other way.
func TestStoreRefusesOtherIDMaps(t *testing.T) {
	home := t.TempDir() + "/store"
	if err := checkIDMaps(home); err != nil {
		t.Fatal(err)
	}
	if err := checkIDMaps(home); err != nil {
		t.Fatalf("the same maps again: %v", err)
	}
	now, _ := currentIDMaps()
	other := "uid_map 0 1000 1\nuid_map 1 100000 65536\ngid_map 0 1000 1\ngid_map 1 100000 65536\n"
	if now != "root\n" {
		other = "root\n"
	}
	os.WriteFile(filepath.Join(home, idMapsFile), []byte(other), 0o644)
	err := checkIDMaps(home)
	if err == nil || !strings.Contains(err.Error(), "owners would be read wrong") || !strings.Contains(err.Error(), "STRATA_HOME") {
		t.Errorf("other maps: %v", err)
	}
	// A store from before the record is root's.
	old := t.TempDir()
	os.Mkdir(filepath.Join(old, "blobs"), 0o700)
	if err := checkIDMaps(old); (err == nil) != (now == "root\n") {
		t.Errorf("a store from before, opened with maps %q: %v", now, err)
	}
}
