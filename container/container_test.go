package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookupUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644)
	for user, want := range map[string][2]uint32{
		"": {0, 0}, "root": {0, 0}, "app": {1000, 1001}, "1000": {1000, 1001}, "4242": {4242, 4242},
		"app:staff": {1000, 50}, "app:7": {1000, 7},
	} {
		uid, gid, err := LookupUser(root, user)
		if err != nil || uid != want[0] || gid != want[1] {
			t.Errorf("LookupUser(%q) = %d:%d %v, want %d:%d", user, uid, gid, err, want[0], want[1])
		}
	}
	for user, msg := range map[string]string{"nobody": "no such user", "app:nogroup": "no such group"} {
		if _, _, err := LookupUser(root, user); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("LookupUser(%q) = %v, want %q", user, err, msg)
		}
	}
}

func TestMissingTargetsListsWhatRuncWouldCreate(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/hosts"), nil, 0o644)
	got := missingTargets(root, []Mount{{Target: "/etc/hosts"}, {Target: "/etc/resolv.conf"}, {Target: "/.strata"}, {Target: "/a/b/c"}})
	var rel []string
	for _, p := range got {
		rel = append(rel, strings.TrimPrefix(p, root))
	}
	if s := strings.Join(rel, " "); s != "/etc/resolv.conf /.strata /a /a/b /a/b/c" {
		t.Errorf("got %s", s)
	}
}
