package localfiles

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// A walk's file infos are fstatat's, relative to their folder: they must say what os.Lstat
// says (mode bits with setuid, setgid and sticky, size, time, and the Stat_t the hash cache
// reads), or a copy would get other modes and the hash cache would miss.
func TestWalkInfoIsLstats(t *testing.T) {
	dir := tree(t, map[string]string{"a.txt": "hello", "sub/deep/b.bin": "x"})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("a.txt", filepath.Join(dir, "link")))
	must(os.Symlink("/nowhere", filepath.Join(dir, "sub", "dangling")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "suid"), nil, 0o755))
	must(os.Chmod(filepath.Join(dir, "suid"), 0o4755|os.ModeSetuid|os.ModeSetgid))
	must(os.Mkdir(filepath.Join(dir, "sticky"), 0o755))
	must(os.Chmod(filepath.Join(dir, "sticky"), 0o1777|os.ModeSticky))

	d, err := os.Open(dir)
	must(err)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	must(err)
	for _, name := range append(names, "sub") {
		got := new(statInfo)
		must(got.lstatAt(int(d.Fd()), name))
		want, err := os.Lstat(filepath.Join(dir, name))
		must(err)
		if got.Name() != want.Name() || got.Mode() != want.Mode() || got.Size() != want.Size() ||
			!got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() || !reflect.DeepEqual(got.Sys(), want.Sys()) {
			t.Errorf("%s: fstatat says %v %v %d %v, lstat %v %v %d %v", name, got.Name(), got.Mode(), got.Size(), got.ModTime(),
				want.Name(), want.Mode(), want.Size(), want.ModTime())
		}
	}
	if err := new(statInfo).lstatAt(int(d.Fd()), "missing"); !os.IsNotExist(err) {
		t.Errorf("a missing file: %v", err)
	}
	// The walk gives them to the files it lists, with the fifo refused as before.
	if _, err := Walk(dir, "", Matcher{}); err == nil || !strings.Contains(err.Error(), "fifo") {
		t.Errorf("a fifo in the tree: %v", err)
	}
	must(os.Remove(filepath.Join(dir, "fifo")))
	files, err := Walk(dir, "ctx", Matcher{})
	must(err)
	for _, f := range files[1:] { // the first is the root folder, listed without a stat
		want, err := os.Lstat(f.Source)
		must(err)
		if f.Info == nil || f.Info.Mode() != want.Mode() || f.Mode != uint32(want.Mode()) || statOf(f.Info) != statOf(want) {
			t.Errorf("%s: listed as %v, lstat says %v", f.Path, f.Info, want.Mode())
		}
	}
}

// A walk names each file's source as filepath.Join(root, rel) would, whatever form root
// takes: the file digest cache is keyed by it.
func TestWalkSourcesAreJoined(t *testing.T) {
	dir := tree(t, map[string]string{"a.txt": "a", "sub/b.txt": "b"})
	t.Chdir(dir)
	for _, root := range []string{".", "./", dir, dir + "/", dir + "/sub/..", "sub/.."} {
		files, err := Walk(root, "", Matcher{})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if want := filepath.Join(root, f.Path); f.Source != want {
				t.Errorf("root %q: %s has source %q, not %q", root, f.Path, f.Source, want)
			}
		}
	}
}
