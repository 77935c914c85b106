package localfiles

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata/spec"
)

func tree(t testing.TB, files map[string]string) string {
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func paths(fs []spec.ContextFile) string {
	var p []string
	for _, f := range fs {
		p = append(p, f.Path)
	}
	return strings.Join(p, ",")
}

func TestWalkWithDockerignorePatterns(t *testing.T) {
	dir := tree(t, map[string]string{
		"a.py": "", "b.pyc": "", "build/out.o": "", "docs/keep.md": "", "docs/drop.md": "", "node_modules/x/y.js": "",
	})
	if err := os.Symlink("a.py", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		patterns []string
		want     string
	}{
		{nil, "app,app/a.py,app/b.pyc,app/build,app/build/out.o,app/docs,app/docs/drop.md,app/docs/keep.md,app/link,app/node_modules,app/node_modules/x,app/node_modules/x/y.js"},
		{[]string{"*.pyc", "build", "node_modules"}, "app,app/a.py,app/docs,app/docs/drop.md,app/docs/keep.md,app/link"},
		{[]string{"docs", "!docs/keep.md", "**/*.js", "build/", "*.pyc"}, "app,app/a.py,app/docs/keep.md,app/link,app/node_modules,app/node_modules/x"},
	} {
		m, err := Patterns(c.patterns)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := Walk(dir, "/app", m)
		if err != nil {
			t.Fatal(err)
		}
		if got := paths(fs); got != c.want {
			t.Errorf("patterns %q:\n got %s\nwant %s", c.patterns, got, c.want)
		}
	}
	fs, _ := Walk(dir, "app", Matcher{})
	for _, f := range fs {
		if f.Path == "app/link" && f.Link != "a.py" {
			t.Errorf("symlink listed with target %q, want a.py", f.Link)
		}
	}
	if _, err := Patterns([]string{"!"}); err == nil {
		t.Error(`pattern "!" accepted`)
	}
}

func TestPythonSourceKeepsOnlyPyFiles(t *testing.T) {
	dir := tree(t, map[string]string{"m/__init__.py": "", "m/data.json": "", "m/__pycache__/m.cpython-313.pyc": "", "m/sub/x.py": ""})
	fs, err := Walk(filepath.Join(dir, "m"), "root/m", PythonSource)
	if err != nil {
		t.Fatal(err)
	}
	if got := paths(fs); got != "root/m,root/m/__init__.py,root/m/sub,root/m/sub/x.py" {
		t.Errorf("got %s", got)
	}
}

// rememberFreshFiles lets a test's freshly written files be remembered, as if they were
// older than the racily clean window.
func rememberFreshFiles(t testing.TB) {
	racyWindow = 0
	t.Cleanup(func() { racyWindow = RacyWindow })
}

// hashWith lists dir and hashes its files with h.
func hashWith(t testing.TB, h *Hasher, dir string) []spec.ContextFile {
	t.Helper()
	fs, err := Walk(dir, "", Matcher{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Hash(fs); err != nil {
		t.Fatal(err)
	}
	return fs
}

// hashDir lists dir, hashes its files with a Hasher remembering in cache, and saves it.
func hashDir(t testing.TB, dir, cache string) []spec.ContextFile {
	t.Helper()
	h := NewHasher(cache)
	fs := hashWith(t, h, dir)
	if err := h.Save(); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestHasherReusesDigestsOfUnchangedFiles(t *testing.T) {
	rememberFreshFiles(t)
	dir := tree(t, map[string]string{"a": "hello", "b": "world"})
	cache := filepath.Join(t.TempDir(), "filehash")
	hash := func() []spec.ContextFile { return hashDir(t, dir, cache) }
	first := hash()
	if first[0].Digest != "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("digest of a = %s", first[0].Digest)
	}
	// A cached digest is used while the stat matches: prove it by planting a wrong one.
	h := NewHasher(cache)
	if h.known != nil {
		t.Error("the cache file was read before anything was hashed")
	}
	h.load()
	r := h.known[filepath.Join(dir, "a")]
	r.Digest = "sha256:planted"
	h.known[filepath.Join(dir, "a")] = r
	h.dirty = true
	if err := h.Save(); err != nil {
		t.Fatal(err)
	}
	if got := hash(); got[0].Digest != "sha256:planted" {
		t.Fatalf("digest was recomputed although the file is unchanged: %s", got[0].Digest)
	}
	// A changed stat (here only the mtime) makes it hash again.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "a"), later, later); err != nil {
		t.Fatal(err)
	}
	if got := hash(); got[0].Digest != first[0].Digest {
		t.Errorf("after a touch: %s, want %s", got[0].Digest, first[0].Digest)
	}
	// Deleted files are forgotten at the next save that learns something.
	os.Remove(filepath.Join(dir, "b"))
	os.WriteFile(filepath.Join(dir, "c"), []byte("new"), 0o644)
	hash()
	h = NewHasher(cache)
	h.load()
	if len(h.known) != 2 || h.known[filepath.Join(dir, "b")] != nil {
		t.Errorf("cache after deleting b: %v", h.known)
	}
	// A corrupt cache file costs a re-hash, never an error.
	if err := os.WriteFile(cache, []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := hash(); got[0].Digest != first[0].Digest {
		t.Error("corrupt cache gave a wrong digest")
	}
}

// TestHasherForgetsRacilyCleanFiles: a file whose ctime is within the racily clean window of
// its read gets its digest, for the rest of the run, but it is not saved, and a digest saved
// for its path before is dropped: a change in the same tick of the file system's clock would
// keep its stat, and the remembered digest would hide it.
func TestHasherForgetsRacilyCleanFiles(t *testing.T) {
	dir := tree(t, map[string]string{"a": "hello"})
	cache := filepath.Join(t.TempDir(), "filehash")
	hash := func() []spec.ContextFile { return hashDir(t, dir, cache) }
	remembered := func() map[string]*remembered {
		h := NewHasher(cache)
		h.load()
		return h.known
	}
	a := filepath.Join(dir, "a")
	// Within the window, with nothing remembered before: no cache file is written.
	hash()
	if _, err := os.Stat(cache); err == nil {
		t.Error("hashing only racily clean files wrote the cache file")
	}
	rememberFreshFiles(t)
	hash()
	if remembered()[a] == nil {
		t.Fatal("with no window, a was not remembered")
	}
	// The file is rewritten, a moment ago: within the window, its new digest is right and
	// not saved, and the old one is forgotten.
	racyWindow = time.Hour
	if err := os.WriteFile(a, []byte("HELLO"), 0o644); err != nil {
		t.Fatal(err)
	}
	const hello = "sha256:3733cd977ff8eb18b987357e22ced99f46097f31ecb239e878ae63760e83e4d5"
	if got := hash(); got[0].Digest != hello {
		t.Errorf("digest of the rewritten a = %s", got[0].Digest)
	}
	if r, ok := remembered()[a]; ok {
		t.Errorf("a racily clean file was saved: %+v", r)
	}
	// Within one run, the digest serves every later listing of the file (one read).
	h := NewHasher(cache)
	hashWith(t, h, dir)
	h.known[a].Digest = "sha256:planted"
	if again := hashWith(t, h, dir); again[0].Digest != "sha256:planted" {
		t.Errorf("a racily clean file was read again in the same run: %s", again[0].Digest)
	}
}

// TestHasherSeesSameSizeChangeWithOldMtime: a remembered digest is keyed on ctime too, so a
// same-size rewrite with its mtime set back is read again.
func TestHasherSeesSameSizeChangeWithOldMtime(t *testing.T) {
	rememberFreshFiles(t)
	dir := tree(t, map[string]string{"a": "hello"})
	cache := filepath.Join(t.TempDir(), "filehash")
	a := filepath.Join(dir, "a")
	before, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	first := hashDir(t, dir, cache)
	if err := os.WriteFile(a, []byte("HELLO"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(a, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got := hashDir(t, dir, cache); got[0].Digest == first[0].Digest {
		t.Error("a same-size rewrite with its mtime set back kept its remembered digest")
	}
}

// BenchmarkHashTree reports the hashing throughput of a 10,000-file tree, cold (no remembered
// digests) and warm (every digest remembered from the previous run).
func BenchmarkHashTree(b *testing.B) {
	files := map[string]string{}
	content := strings.Repeat("x", 4096)
	for i := 0; i < 10000; i++ {
		files[fmt.Sprintf("d%02d/f%05d.txt", i%100, i)] = content[:1024+i%3072]
	}
	dir := tree(b, files)
	rememberFreshFiles(b)
	var total int64
	run := func(b *testing.B, cache string) {
		fs := hashDir(b, dir, cache)
		total = 0
		for _, f := range fs {
			total += f.Size
		}
	}
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			run(b, filepath.Join(b.TempDir(), fmt.Sprint(i)))
		}
		b.SetBytes(total)
		b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "files/s")
	})
	b.Run("warm", func(b *testing.B) {
		cache := filepath.Join(b.TempDir(), "filehash")
		run(b, cache)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			run(b, cache)
		}
		b.SetBytes(total)
		b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "files/s")
	})
}

// TestCacheFormat: the cache file round-trips, and any truncation of it is refused whole
// (a re-hash), never a panic or a wrong entry.
func TestCacheFormat(t *testing.T) {
	known := map[string]*remembered{
		"/a":           {Stat: stat{Size: 5, Mtime: -1, Ctime: 1 << 40, Inode: 1 << 62}, Digest: "sha256:aa"},
		"/dir/b é.txt": {Stat: stat{Size: 0}, Digest: "sha256:bb"},
	}
	b := encodeCache(known)
	got, err := decodeCache(b)
	if err != nil || len(got) != 2 || *got["/a"] != *known["/a"] || *got["/dir/b é.txt"] != *known["/dir/b é.txt"] {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for n := 0; n < len(b); n++ {
		if got, err := decodeCache(b[:n]); err == nil && n != len(cacheMagic) {
			for p, r := range got {
				if *r != *known[p] {
					t.Errorf("a truncation to %d bytes gave a wrong entry for %s", n, p)
				}
			}
		}
	}
	if _, err := decodeCache([]byte(`{"/a":{"t":{},"d":"x"}}`)); err == nil {
		t.Error("the JSON of earlier versions was read as this format")
	}
}
