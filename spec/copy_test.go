package spec

import (
	"io/fs"
	"strings"
	"testing"
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
		plan, err := CopyPlan(files, c.srcs, c.dst, c.dstIsDir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range plan {
			got = append(got, p.File.Path+">"+p.Target)
		}
		if s := join(got); s != c.want {
			t.Errorf("COPY %v %s:\n got %s\nwant %s", c.srcs, c.dst, s, c.want)
		}
	}
	if _, err := CopyPlan(files, []string{"missing"}, "/x", false); err == nil {
		t.Error("a missing source was accepted")
	}
}

func ctxFiles(paths ...string) []ContextFile {
	var out []ContextFile
	for _, p := range paths {
		mode := uint32(0o644)
		if !strings.Contains(p, ".") {
			mode = uint32(fs.ModeDir | 0o755)
		}
		out = append(out, ContextFile{Path: p, Mode: mode})
	}
	return out
}

func join(s []string) string { return strings.Join(s, " ") }

// TestNames: a source names a path itself, as a path or a glob, not the files of a folder.
func TestNames(t *testing.T) {
	for _, c := range []struct {
		srcs []string
		p    string
		want bool
	}{
		{[]string{"a.tar"}, "a.tar", true},
		{[]string{"./a.tar"}, "a.tar", true},
		{[]string{"*.tar"}, "a.tar", true},
		{[]string{"dir"}, "dir/a.tar", false},
		{[]string{"dir/"}, "dir/a.tar", false},
		{[]string{"."}, "a.tar", false},
		{[]string{"dir", "dir/a.tar"}, "dir/a.tar", true},
		{[]string{"d*"}, "dir/a.tar", false},
	} {
		if got := NamedByAny(c.srcs, c.p); got != c.want {
			t.Errorf("NamedByAny(%q, %q) = %v, want %v", c.srcs, c.p, got, c.want)
		}
	}
}
