package fasthit

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// self is the test binary's path: the strata-core whose identity the fixtures' memos hold.
var self = func() string {
	p, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return p
}()

func TestParse(t *testing.T) {
	for _, c := range []struct {
		args     []string
		ok       bool
		file     string
		progress string
	}{
		{[]string{"build", "-f", "a.yaml", "-t", "x"}, true, "a.yaml", "auto"},
		{[]string{"spec", "-f", "a.yaml"}, true, "a.yaml", "auto"},
		{[]string{"spec", "--json", "--file=a.yaml"}, true, "a.yaml", "auto"},
		{[]string{"spec", "-f", "a.yaml", "-t", "x"}, false, "", ""},
		{[]string{"spec", "-f", "a.yaml", "--progress", "plain"}, false, "", ""},
		{[]string{"spec", "-f", "-"}, false, "", ""},
		{[]string{"build", "-f", "a.yaml", "--json"}, false, "", ""},
		{[]string{"build", "--file=dir/a.yml", "--progress", "json"}, true, "dir/a.yml", "json"},
		{[]string{"build", "-f", "a.JSON", "--tag=x", "--progress=plain"}, true, "a.JSON", "plain"},
		{[]string{"build", "-f", "Dockerfile"}, false, "", ""},              // a Dockerfile's context is not in the memo
		{[]string{"build", "-f", "-", "-t", "x"}, false, "", ""},            // standard input
		{[]string{"build", "-f", "a.yaml", "--force-build"}, false, "", ""}, // any other flag
		{[]string{"build", "-f", "a.yaml", "ctx"}, false, "", ""},           // an argument
		{[]string{"build", "-f"}, false, "", ""},
		{[]string{"run", "-f", "a.yaml"}, false, "", ""},
		{[]string{"--engine", "buildkit", "build", "-f", "a.yaml"}, false, "", ""},
		{nil, false, "", ""},
	} {
		got, ok := Parse(c.args)
		if ok != c.ok || (ok && (got.Name != c.args[0] || got.File != c.file || got.Progress != c.progress)) {
			t.Errorf("%q: got %+v %v", c.args, got, ok)
		}
	}
}

func TestKey(t *testing.T) {
	args := []string{"build", "-f", "a.yaml", "-t", "x"}
	t.Setenv("STRATA_HOME", "/srv/a")
	k := Key(args)
	if Key(args) != k {
		t.Fatal("the key of the same line differs")
	}
	if Key([]string{"build", "-f", "a.yaml", "-t", "y"}) == k {
		t.Error("another tag gives the same key")
	}
	if Key([]string{"build", "-f", "a.yaml -t", "x"}) == k {
		t.Error("arguments are not kept apart")
	}
	for _, env := range []string{"STRATA_FORCE_BUILD", "STRATA_HOME", "SOURCE_DATE_EPOCH", "STRATA_PYTHON_MIRROR", "PATH", "HOME", "XDG_DATA_HOME"} {
		old, had := os.LookupEnv(env)
		t.Setenv(env, old+"-changed")
		if Key(args) == k {
			t.Errorf("%s does not change the key", env)
		}
		if had {
			os.Setenv(env, old)
		} else {
			os.Unsetenv(env)
		}
	}
	t.Setenv("TERM", "dumb-changed") // read by nothing in a build
	if Key(args) != k {
		t.Error("TERM changes the key")
	}
	wd, _ := os.Getwd()
	t.Chdir(t.TempDir())
	if Key(args) == k {
		t.Error("another working folder gives the same key")
	}
	t.Chdir(wd)
}

// memoFixture writes a spec file and two store files, and a memo of them.
func memoFixture(t *testing.T) (dir, spec string, m *Memo) {
	dir = t.TempDir()
	spec = filepath.Join(dir, "image.yaml")
	os.WriteFile(spec, []byte("image:\n  - debian_slim: {}\n"), 0o644)
	m = &Memo{Command: "build", Name: "x", Manifest: "sha256:aa", Layers: []Layer{{Method: "debian_slim", Key: "sha256:0123456789abcdef", Size: 10}}}
	var err error
	if m.Spec, err = FileDigest(spec); err != nil {
		t.Fatal(err)
	}
	if m.Exe, err = ExeIdent(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "record.json"), []byte(`{"key": "sha256:0123456789abcdef"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "blob"), []byte("blob"), 0o644)
	var rec struct{ Key string }
	if err := m.AddRead(filepath.Join(dir, "record.json"), &rec); err != nil || rec.Key != "sha256:0123456789abcdef" {
		t.Fatalf("AddRead: %v %+v", err, rec)
	}
	if err := m.AddIdent(filepath.Join(dir, "blob")); err != nil {
		t.Fatal(err)
	}
	if err := m.AddBytes(filepath.Join(dir, "absent")); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, "k", m); err != nil {
		t.Fatal(err)
	}
	return dir, spec, m
}

func TestCheck(t *testing.T) {
	dir, spec, _ := memoFixture(t)
	if _, ok := Check(dir, "k", self, Command{Name: "build", File: spec}); !ok {
		t.Fatal("an unchanged memo does not hold")
	}
	if _, ok := Check(dir, "other", self, Command{Name: "build", File: spec}); ok {
		t.Error("a key with no memo holds")
	}

	// A record written again by rename with the same bytes is the same record; with other
	// bytes, another.
	p := filepath.Join(dir, "record.json")
	same, _ := os.ReadFile(p)
	os.WriteFile(p+".new", same, 0o644)
	os.Rename(p+".new", p)
	if _, ok := Check(dir, "k", self, Command{Name: "build", File: spec}); !ok {
		t.Error("the memo fails with a record written again, unchanged")
	}
	os.WriteFile(p+".new", []byte(`{"key": "sha256:other"}`), 0o644)
	os.Rename(p+".new", p)
	if _, ok := Check(dir, "k", self, Command{Name: "build", File: spec}); ok {
		t.Error("the memo holds with a record changed")
	}

	// A blob replaced is another file.
	dir, spec, _ = memoFixture(t)
	p = filepath.Join(dir, "blob")
	os.WriteFile(p+".new", []byte("blob"), 0o644)
	os.Rename(p+".new", p)
	if _, ok := Check(dir, "k", self, Command{Name: "build", File: spec}); ok {
		t.Error("the memo holds with a blob replaced")
	}

	// A file that was absent and is there now.
	dir, spec, _ = memoFixture(t)
	os.WriteFile(filepath.Join(dir, "absent"), nil, 0o644)
	if _, ok := Check(dir, "k", self, Command{Name: "build", File: spec}); ok {
		t.Error("the memo holds with a file that was absent there")
	}

	dir, spec, _ = memoFixture(t)
	os.Remove(filepath.Join(dir, "blob"))
	if _, ok := Check(dir, "k", self, Command{Name: "build", File: spec}); ok {
		t.Error("the memo holds with a store file gone")
	}

	dir, spec, _ = memoFixture(t)
	os.WriteFile(spec, []byte("image:\n  - debian_slim: {python_version: '3.12'}\n"), 0o644)
	if _, ok := Check(dir, "k", self, Command{Name: "build", File: spec}); ok {
		t.Error("the memo holds with the spec changed")
	}

	dir, spec, m := memoFixture(t)
	m.Exe.Ino++ // another strata-core wrote it
	Write(dir, "k", m)
	if _, ok := Check(dir, "k", self, Command{Name: "build", File: spec}); ok {
		t.Error("the memo holds for another executable")
	}
	dir, spec, _ = memoFixture(t)
	if _, ok := Check(dir, "k", "/bin/sh", Command{Name: "build", File: spec}); ok {
		t.Error("the memo holds for another strata-core than the one that wrote it")
	}
	if _, ok := Check(dir, "k", filepath.Join(dir, "none"), Command{Name: "build", File: spec}); ok {
		t.Error("the memo holds with no strata-core")
	}

	dir, spec, _ = memoFixture(t)
	os.WriteFile(Path(dir, "k"), []byte(`{"spec":`), 0o644) // cut short by a crash
	if _, ok := Check(dir, "k", self, Command{Name: "build", File: spec}); ok {
		t.Error("a cut memo holds")
	}

	dir, spec, _ = memoFixture(t)
	if _, ok := Check(dir, "k", self, Command{Name: "spec", File: spec}); ok {
		t.Error("a build's memo answers a resolve")
	}
}

// TestCheckLocal: a memo with local files and folders holds while each is the same file
// with the same times, and not when one is changed, replaced, removed or added to.
func TestCheckLocal(t *testing.T) {
	fixture := func(t *testing.T) (dir, tree, spec string) {
		dir, spec, m := memoFixture(t)
		tree = filepath.Join(dir, "tree")
		os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
		os.WriteFile(filepath.Join(tree, "a"), []byte("a"), 0o644)
		os.WriteFile(filepath.Join(tree, "sub", "b"), []byte("b"), 0o644)
		os.Symlink("a", filepath.Join(tree, "link"))
		for _, p := range []string{tree, filepath.Join(tree, "a"), filepath.Join(tree, "link"), filepath.Join(tree, "sub"), filepath.Join(tree, "sub", "b")} {
			id, err := IdentOf(p)
			if err != nil {
				t.Fatal(err)
			}
			m.Local = append(m.Local, Entry{Path: p, Ident: id})
		}
		if err := Write(dir, "k", m); err != nil {
			t.Fatal(err)
		}
		// Times are the kernel's coarse clock: let a change below be seen as one.
		time.Sleep(20 * time.Millisecond)
		return dir, tree, spec
	}
	build := func(spec string) Command { return Command{Name: "build", File: spec} }
	dir, _, spec := fixture(t)
	m, ok := Check(dir, "k", self, build(spec))
	if !ok {
		t.Fatal("an unchanged memo with local files does not hold")
	}
	if len(m.Local) != 5 || m.Local[4].Path != filepath.Join(dir, "tree", "sub", "b") {
		t.Errorf("local entries read back: %+v", m.Local)
	}
	for name, change := range map[string]func(tree string){
		"file changed in place": func(tree string) { os.WriteFile(filepath.Join(tree, "a"), []byte("A"), 0o644) },
		"file replaced": func(tree string) {
			os.WriteFile(filepath.Join(tree, "a.new"), []byte("a"), 0o644)
			os.Rename(filepath.Join(tree, "a.new"), filepath.Join(tree, "a"))
		},
		"file removed":          func(tree string) { os.Remove(filepath.Join(tree, "sub", "b")) },
		"file made in a folder": func(tree string) { os.WriteFile(filepath.Join(tree, "sub", "c"), nil, 0o644) },
		"file made at the root": func(tree string) { os.WriteFile(filepath.Join(tree, "c"), nil, 0o644) },
		"mode changed":          func(tree string) { os.Chmod(filepath.Join(tree, "a"), 0o600) },
		"link pointed elsewhere": func(tree string) {
			os.Remove(filepath.Join(tree, "link"))
			os.Symlink("sub", filepath.Join(tree, "link"))
		},
		"folder renamed and back": func(tree string) {
			os.Rename(filepath.Join(tree, "sub"), filepath.Join(tree, "s"))
			os.Rename(filepath.Join(tree, "s"), filepath.Join(tree, "sub"))
		},
	} {
		dir, tree, spec := fixture(t)
		change(tree)
		if _, ok := Check(dir, "k", self, build(spec)); ok {
			t.Errorf("the memo holds with a %s", name)
		}
	}

	// The local part cut short, at an entry's end or within one.
	dir, _, spec = fixture(t)
	b, _ := os.ReadFile(Path(dir, "k"))
	j, local, _ := bytes.Cut(b, []byte("\n"))
	entries, _ := decodeLocal(local, 5)
	whole := len(appendLocal(nil, entries[:4]))
	for _, n := range []int{whole, whole + 3, 0} {
		os.WriteFile(Path(dir, "k"), append(append(j, '\n'), local[:n]...), 0o644)
		if _, ok := Check(dir, "k", self, build(spec)); ok {
			t.Errorf("a memo whose local part is cut to %d of %d bytes holds", n, len(local))
		}
	}
}

func TestWriteKeepsAnEqualMemo(t *testing.T) {
	dir, _, m := memoFixture(t)
	before, _ := IdentOf(Path(dir, "k"))
	if err := Write(dir, "k", m); err != nil {
		t.Fatal(err)
	}
	if after, _ := IdentOf(Path(dir, "k")); after != before {
		t.Error("writing an equal memo wrote it again")
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(Path(dir, "k")); !os.IsNotExist(err) {
		t.Errorf("after Remove: %v", err)
	}
}

func TestTryOffAndMisses(t *testing.T) {
	dir, spec, _ := memoFixture(t)
	t.Setenv("STRATA_HOME", dir)
	t.Setenv(KeyEnv, "")
	args := []string{"build", "-f", spec, "--progress", "plain"}
	// The fixture's memo is under "k"; put it under this line's key.
	b, _ := os.ReadFile(Path(dir, "k"))
	os.WriteFile(Path(dir, Key(args)), b, 0o644)
	out, errOut := tempFiles(t)
	if ok, err := Try(args, self, out, errOut); !ok || err != nil {
		t.Fatal("Try misses a memo that holds")
	}
	if got := read(t, out); got != "x sha256:aa\n" {
		t.Errorf("stdout: %q", got)
	}
	t.Setenv(DisableEnv, "1")
	if ok, _ := Try(args, self, out, errOut); ok || os.Getenv(KeyEnv) != "" {
		t.Errorf("Try answers, or leaves a key for strata-core (%q), with %s set", os.Getenv(KeyEnv), DisableEnv)
	}
	os.Unsetenv(DisableEnv)
	// A miss leaves strata-core (which the front executes: the same pid) the key to write
	// the memo under, also for a line that the live display keeps from the cache-hit path;
	// another line leaves none, whatever the environment held.
	tty := []string{"build", "-f", spec, "--progress", "tty"}
	if ok, _ := Try(tty, self, out, errOut); ok || TakeKey(false) != Key(tty) {
		t.Errorf("Try answers for the live display, or leaves the key %q", os.Getenv(KeyEnv))
	}
	if ok, _ := Try([]string{"version"}, self, out, errOut); ok || os.Getenv(KeyEnv) != "" {
		t.Errorf("Try answers another command, or leaves a key: %q", os.Getenv(KeyEnv))
	}

	// An answer that cannot be written is an error.
	closed, _ := tempFiles(t)
	closed.Close()
	if ok, err := Try(args, self, closed, errOut); !ok || err == nil {
		t.Errorf("Try writing to a closed file: %v %v", ok, err)
	}

	// A resolve's memo prints what the resolve printed.
	m := &Memo{Command: "spec", Spec: mustDigest(t, spec), Layers: []Layer{{Method: "debian_slim", Key: "sha256:00"}}, Output: "0   debian_slim   sha256:00\n"}
	m.Exe, _ = ExeIdent()
	specArgs := []string{"spec", "-f", spec}
	if err := Write(dir, Key(specArgs), m); err != nil {
		t.Fatal(err)
	}
	out, errOut = tempFiles(t)
	if ok, err := Try(specArgs, self, out, errOut); !ok || err != nil {
		t.Fatal("Try misses a resolve's memo that holds")
	}
	if got := read(t, out); got != m.Output || read(t, errOut) != "" {
		t.Errorf("stdout %q, stderr %q", got, read(t, errOut))
	}
}

// TestTakeKey: strata-core takes only a key left for its own pid (the front's, which exec
// keeps), or, in a rootless strata-core's second run, for its parent's: not one inherited
// from the environment of some other strata.
func TestTakeKey(t *testing.T) {
	for _, c := range []struct {
		env    string
		parent bool
		want   string
	}{
		{strconv.Itoa(os.Getpid()) + ":k1", false, "k1"},
		{strconv.Itoa(os.Getppid()) + ":k2", true, "k2"},
		{strconv.Itoa(os.Getppid()) + ":k3", false, ""},
		{strconv.Itoa(os.Getpid()+1) + ":k4", true, ""},
		{"k5", false, ""},
		{strconv.Itoa(os.Getpid()) + ":", false, ""},
		{"", false, ""},
	} {
		t.Setenv(KeyEnv, c.env)
		if got := TakeKey(c.parent); got != c.want {
			t.Errorf("%s=%q (parent %v): %q, want %q", KeyEnv, c.env, c.parent, got, c.want)
		}
	}
}

// TestCheckFormat: a memo of another layout (a strata-core of another version) does not hold.
func TestCheckFormat(t *testing.T) {
	dir, spec, _ := memoFixture(t)
	p := Path(dir, "k")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte(`"format":1,`), []byte(`"format":2,`), 1), 0o644)
	if _, ok := Check(dir, "k", self, Command{Name: "build", File: spec}); ok {
		t.Error("a memo of another format holds")
	}
}

func mustDigest(t *testing.T, p string) string {
	d, err := FileDigest(p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func tempFiles(t *testing.T) (*os.File, *os.File) {
	a, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.CreateTemp(t.TempDir(), "err")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func read(t *testing.T, f *os.File) string {
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPrint(t *testing.T) {
	m := &Memo{Name: "app", Manifest: "sha256:ff", Warnings: []string{"w1"}, Layers: []Layer{
		{Method: "debian_slim", Key: "sha256:0123456789abcdef0000", Size: 5},
		{Method: "dockerfile_commands", Title: "RUN make", Key: "sha256:fedcba9876543210ffff"},
	}}
	var out, errOut bytes.Buffer
	Print(m, "plain", time.Unix(0, 0), &out, &errOut)
	if want := "#0 debian_slim cached 0123456789ab\n#1 RUN make cached fedcba987654\nwarning: w1\n"; errOut.String() != want {
		t.Errorf("plain: %q", errOut.String())
	}
	if out.String() != "app sha256:ff\n" {
		t.Errorf("stdout: %q", out.String())
	}
}

// TestEnvCovered holds every environment variable the strata command reads to the key's
// list (affects) or to a reason why it cannot change what a fully cached build gives.
func TestEnvCovered(t *testing.T) {
	cannot := map[string]string{
		"XDG_RUNTIME_DIR": "where containers' runtime state goes: runs, not a cached build",
		"SSH_AUTH_SOCK":   "--ssh, which no memo is written for",
		"http_proxy":      "downloads: a cached build makes none",
	}
	root := "../.."
	var names []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			switch rel {
			case "integration", "bench", "examples", "python", "testdata", ".git", "internal/faultproxy", "internal/fuzzing", "internal/pyindex", "internal/sbomtest":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv") {
				if lit, ok := call.Args[0].(*ast.BasicLit); ok {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						names = append(names, s+" ("+rel+")")
					}
				}
			}
			return true
		})
		return nil
	})
	if len(names) < 10 {
		t.Fatalf("found only %d variables read: %v", len(names), names)
	}
	for _, n := range names {
		name, _, _ := strings.Cut(n, " ")
		if !affects(name) && cannot[name] == "" {
			t.Errorf("%s is read but neither in the fast-hit key nor said not to change a cached build", n)
		}
	}
}
