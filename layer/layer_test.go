package layer

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type entry struct {
	name, link string
	typ        byte
	body       string
}

func mkTar(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return &buf
}

func TestExtractRefusesEscapes(t *testing.T) {
	for name, entries := range map[string][]entry{
		"dotdot":          {{name: "../evil", typ: tar.TypeReg, body: "x"}},
		"nested dotdot":   {{name: "a/../../evil", typ: tar.TypeReg, body: "x"}},
		"absolute":        {{name: "/etc/evil", typ: tar.TypeReg, body: "x"}},
		"escaping link":   {{name: "a/", typ: tar.TypeDir}, {name: "a/l", link: "../../../etc", typ: tar.TypeSymlink}},
		"through symlink": {{name: "l", link: "/etc", typ: tar.TypeSymlink}, {name: "l/passwd", typ: tar.TypeReg, body: "x"}},
		"hardlink out":    {{name: "h", link: "../../etc/passwd", typ: tar.TypeLink}},
	} {
		t.Run(name, func(t *testing.T) {
			outer := t.TempDir()
			dir := filepath.Join(outer, "root")
			os.Mkdir(dir, 0o755)
			err := Extract(mkTar(t, entries...), dir, ExtractOptions{})
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("got %v, want ErrUnsafe", err)
			}
			if _, err := os.Stat(filepath.Join(outer, "evil")); err == nil {
				t.Fatal("a file was written outside the root")
			}
		})
	}
	// Absolute symlinks and in-root relative ones are normal in images.
	dir := t.TempDir()
	ok := mkTar(t, entry{name: "bin", link: "usr/bin", typ: tar.TypeSymlink}, entry{name: "usr/lib/x", link: "/usr/bin/python3", typ: tar.TypeSymlink}, entry{name: "usr/lib/y", link: "../../bin", typ: tar.TypeSymlink})
	if err := Extract(ok, dir, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestWhiteoutsRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("whiteouts are device nodes: needs root")
	}
	// An overlay upper folder: a file, a deletion, an opaque folder.
	upper := t.TempDir()
	os.WriteFile(filepath.Join(upper, "new"), []byte("hello"), 0o644)
	if err := unix.Mknod(filepath.Join(upper, "gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(upper, "opaque"), 0o755)
	if err := unix.Lsetxattr(filepath.Join(upper, "opaque"), opaqueXattr(), []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	os.Symlink("new", filepath.Join(upper, "link"))
	os.Link(filepath.Join(upper, "new"), filepath.Join(upper, "hard"))
	var buf bytes.Buffer
	if err := WriteTar(upper, &buf, Options{}); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != ".wh.gone,hard,link,new,opaque/,opaque/.wh..wh..opq" {
		t.Errorf("tar entries %s", got)
	}
	// And extracts back to overlay form.
	dir := t.TempDir()
	if err := Extract(bytes.NewReader(buf.Bytes()), dir, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	// The same tree gives the same bytes: the extracted copy has other inodes, was made in
	// tar order rather than the order above, and at another time.
	var again bytes.Buffer
	if err := WriteTar(dir, &again, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("the same tree, made again, gave a different tar")
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout not restored: %v %o", err, st.Mode)
	}
	if !IsOpaque(filepath.Join(dir, "opaque")) {
		t.Error("opaque folder not restored")
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(dir, "new"), &a)
	unix.Lstat(filepath.Join(dir, "hard"), &b)
	if a.Ino != b.Ino {
		t.Error("hard link not restored")
	}
}

// TestEpochClampsTimes: with an epoch, two trees that differ only in their files' times
// give the same tar.
func TestEpochClampsTimes(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	tree := func(mtime time.Time) []byte {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "app"), 0o755)
		os.WriteFile(filepath.Join(dir, "app", "main.py"), []byte("print(1)\n"), 0o644)
		for _, p := range []string{"app/main.py", "app"} {
			os.Chtimes(filepath.Join(dir, p), mtime, mtime)
		}
		var buf bytes.Buffer
		if err := WriteTar(dir, &buf, Options{Epoch: &epoch}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a, b := tree(time.Now()), tree(time.Now().Add(time.Hour))
	if !bytes.Equal(a, b) {
		t.Error("times after the epoch were not clamped")
	}
	tr := tar.NewReader(bytes.NewReader(a))
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: %v", h.Name, h.ModTime)
		}
	}
}

// TestPlainExtractRefusesLayerEntries: an archive that is not a layer may hold no whiteout,
// opaque marker or device node, and its setuid and setgid bits are dropped.
func TestPlainExtractRefusesLayerEntries(t *testing.T) {
	for name, e := range map[string]entry{
		"whiteout": {name: "python/.wh.lib", typ: tar.TypeReg},
		"opaque":   {name: "python/.wh..wh..opq", typ: tar.TypeReg},
		"device":   {name: "python/dev", typ: tar.TypeChar},
	} {
		if err := Extract(mkTar(t, e), t.TempDir(), ExtractOptions{Plain: true}); err == nil || !strings.Contains(err.Error(), "may not hold") {
			t.Errorf("%s: %v", name, err)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "python/bin/su", Typeflag: tar.TypeReg, Mode: 0o6755, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	dir := t.TempDir()
	if err := Extract(&buf, dir, ExtractOptions{Plain: true}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "python/bin/su")); err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("setuid file: %v %v", fi.Mode(), err)
	}
}

// TestExtractStopsPastMaxEntries: a tar with more entries than MaxEntries stops there with a
// LimitError naming the limit; one with as many extracts.
func TestExtractStopsPastMaxEntries(t *testing.T) {
	var entries []entry
	for i := 0; i < 10; i++ {
		entries = append(entries, entry{name: "f" + string(rune('a'+i)), typ: tar.TypeReg, body: "x"})
	}
	o := ExtractOptions{MaxEntries: 9, Limit: "LIMIT_VAR sets it"}
	err := Extract(mkTar(t, entries...), t.TempDir(), o)
	var le *LimitError
	if !errors.As(err, &le) || err.Error() != "holds more than 9 files and folders (LIMIT_VAR sets it)" {
		t.Errorf("10 entries past 9: %v", err)
	}
	o.MaxEntries = 10
	if err := Extract(mkTar(t, entries...), t.TempDir(), o); err != nil {
		t.Errorf("10 entries, 10 allowed: %v", err)
	}
}
