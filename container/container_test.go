package container

import (
	"fmt"
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

// TestMountsBelowUndoesMountinfoEscapes: the kernel writes a space in a mount point as
// "\040"; a store whose path has one must still find its mounts.
func TestMountsBelowUndoesMountinfoEscapes(t *testing.T) {
	info := `36 35 98:0 / /mnt rw - ext3 /dev/root rw
41 36 0:40 / /var/lib/my\040strata/tmp/build-1/rootfs rw - overlay overlay rw,lowerdir=x
42 41 0:41 / /var/lib/my\040strata/tmp/build-1/rootfs/proc rw - proc proc rw
43 36 0:42 / /var/lib/my\040strata/tmp/build-10 rw - tmpfs tmpfs rw
44 36 0:43 / /var/lib/other\134dir/x rw - tmpfs tmpfs rw
`
	got := mountsBelow(info, "/var/lib/my strata/tmp/build-1")
	want := []string{"/var/lib/my strata/tmp/build-1/rootfs/proc", "/var/lib/my strata/tmp/build-1/rootfs"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := mountsBelow(info, `/var/lib/other\dir`); len(got) != 1 {
		t.Errorf("backslash: %q", got)
	}
	if got := unescapeMountinfo(`a\040b\011c\012d\\e\09`); got != "a b\tc\nd\\\\e\\09" {
		t.Errorf("unescape: %q", got)
	}
}

// TestCompactLowersShortensTheOptions: the lowers that share a folder are written relative
// to it, so that a deep image fits in the one page a mount's options may take.
func TestCompactLowersShortensTheOptions(t *testing.T) {
	lowers := []string{"/work/run-1/mounts"}
	for i := 0; i < 130; i++ {
		lowers = append(lowers, fmt.Sprintf("/var/lib/strata/snapshots/l/%012x", i))
	}
	dir, rel := compactLowers(lowers)
	if dir != "/var/lib/strata/snapshots/l" || rel[0] != "/work/run-1/mounts" || rel[1] != "000000000000" {
		t.Fatalf("dir %s, first %v", dir, rel[:2])
	}
	if n := len(strings.Join(rel, ":")); n > maxMountData/2 {
		t.Errorf("130 layers take %d bytes", n)
	}
	if dir, _ := compactLowers([]string{"/a/x", "/b/y"}); dir != "" {
		t.Errorf("nothing shared, but dir %q", dir)
	}
}
