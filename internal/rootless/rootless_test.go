package rootless

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIDMapReadsEveryRangeOfTheUser(t *testing.T) {
	f := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(f, []byte("# ranges\nalice:100000:65536\nbob:165536:65536\n1001:300000:1000\n1001:100000:65536\nalice:100100:10\n\n"), 0o644)
	got, err := idMap(f, "alice", "1001", "--add-subuids")
	if err != nil {
		t.Fatal(err)
	}
	// alice's ranges, by name and by uid, one after the other from id 1; the same range
	// given twice, or one inside another, once.
	if want := "1 100000 65536 65537 300000 1000"; strings.Join(got, " ") != want {
		t.Errorf("map %q, want %q", strings.Join(got, " "), want)
	}
}

func TestIDMapSaysWhatToRun(t *testing.T) {
	f := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(f, []byte("bob:165536:65536\ncarol:200000:1000\n"), 0o644)
	for _, c := range []struct{ user, want string }{
		{"alice", "user alice has no subordinate ids in " + f},
		{"carol", "user carol has 1000 subordinate ids in " + f + "; strata needs at least 65534"},
	} {
		_, err := idMap(f, c.user, "1234", "--add-subuids")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "usermod --add-subuids 100000-165535 "+c.user) {
			t.Errorf("%s: %v", c.user, err)
		}
	}
	if _, err := idMap(filepath.Join(t.TempDir(), "none"), "alice", "1", "--add-subgids"); err == nil || !strings.Contains(err.Error(), "usermod --add-subgids") {
		t.Errorf("no file: %v", err)
	}
	os.WriteFile(f, []byte("alice:x:65536\n"), 0o644)
	if _, err := idMap(f, "alice", "1", "--add-subuids"); err == nil || !strings.Contains(err.Error(), "bad line") {
		t.Errorf("bad line: %v", err)
	}
}
