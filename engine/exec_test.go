package engine

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

func TestCopyPlanFollowsDockerRules(t *testing.T) {
	files := ctxFiles("app", "app/a.py", "app/sub", "app/sub/b.py", "req.txt", "x.py", "y.py")
	for _, c := range []struct {
		srcs     []string
		dst      string
		dstIsDir bool
		want     string
	}{
		{[]string{"app"}, "/srv", false, "app>/srv app/a.py>/srv/a.py app/sub>/srv/sub app/sub/b.py>/srv/sub/b.py"},
		{[]string{"req.txt"}, "/r.txt", false, "req.txt>/r.txt"},
		{[]string{"req.txt"}, "/etc", true, "req.txt>/etc/req.txt"},
		{[]string{"*.py"}, "/py", false, "x.py>/py/x.py y.py>/py/y.py"},
		{[]string{"req.txt", "x.py"}, "/d", false, "req.txt>/d/req.txt x.py>/d/x.py"},
		{[]string{"."}, "/", false, "app>/app app/a.py>/app/a.py app/sub>/app/sub app/sub/b.py>/app/sub/b.py req.txt>/req.txt x.py>/x.py y.py>/y.py"},
	} {
		plan, err := copyPlan(files, c.srcs, c.dst, c.dstIsDir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range plan {
			got = append(got, p.file.Path+">"+p.target)
		}
		if s := join(got); s != c.want {
			t.Errorf("COPY %v %s:\n got %s\nwant %s", c.srcs, c.dst, s, c.want)
		}
	}
	if _, err := copyPlan(files, []string{"missing"}, "/x", false); err == nil {
		t.Error("a missing source was accepted")
	}
}

func ctxFiles(paths ...string) []spec.ContextFile {
	var out []spec.ContextFile
	for _, p := range paths {
		mode := uint32(0o644)
		if !strings.Contains(p, ".") {
			mode = uint32(fs.ModeDir | 0o755)
		}
		out = append(out, spec.ContextFile{Path: p, Mode: mode})
	}
	return out
}

func join(s []string) string { return strings.Join(s, " ") }

func TestStageMountsCopiesAcrossFileSystems(t *testing.T) {
	// /dev/shm is another file system than the temp folder, so a hard link fails there.
	src, err := os.MkdirTemp("/dev/shm", "strata-stage-")
	if err != nil {
		t.Skip("no /dev/shm")
	}
	defer os.RemoveAll(src)
	os.WriteFile(filepath.Join(src, "run.sh"), []byte("echo hi\n"), 0o755)
	dir := t.TempDir()
	err = stageMounts(dir, []store.Mount{{Method: "add_local_dir", Sources: []spec.LocalSource{{Local: src, Prefix: "app"}}}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "app", "run.sh"))
	if err != nil || info.Mode().Perm() != 0o755 {
		t.Fatalf("staged file: %v %v", info, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "app", "run.sh")); string(b) != "echo hi\n" {
		t.Errorf("staged content %q", b)
	}
}
