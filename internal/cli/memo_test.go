package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/fasthit"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
)

// TestFastHitPrintsAsTheBuild: what the cache-hit path prints for a memo is what the full
// build's progress prints for the same cached layers, in both modes it answers in.
func TestFastHitPrintsAsTheBuild(t *testing.T) {
	m := &fasthit.Memo{Name: "app", Manifest: "sha256:ff", Layers: []fasthit.Layer{
		{Method: "debian_slim", Key: "sha256:0123456789abcdef0000", Size: 5},
		{Method: "dockerfile_commands", Title: "RUN make", Key: "sha256:fedcba9876543210ffff"},
	}}
	now := time.Date(2026, 11, 29, 1, 2, 3, 4, time.UTC)
	for _, mode := range []string{"plain", "json"} {
		var want, got, out bytes.Buffer
		p := newProgress(&want, mode, nil)
		for i, l := range m.Layers {
			p.event(strata.Event{Time: now, Index: i, Total: len(m.Layers), Method: l.Method, Title: l.Title, Key: l.Key, Status: strata.StatusCached, Size: l.Size})
		}
		fasthit.Print(m, mode, now, &out, &got)
		if got.String() != want.String() {
			t.Errorf("%s: the cache-hit path prints\n%s\nthe build\n%s", mode, got.String(), want.String())
		}
	}
}

func TestMemoizable(t *testing.T) {
	plain := func() *strata.Plan {
		return &strata.Plan{Layers: []*spec.Layer{
			{Method: "debian_slim", Base: &spec.Base{Kind: spec.BaseDebian}},
			{Method: "run_commands"},
		}}
	}
	if !memoizable(plain()) {
		t.Fatal("a plan of a Debian base and commands is not memoizable")
	}
	copied := plain()
	copied.Layers[1].Method, copied.Layers[1].Context = "add_local_dir", []spec.ContextFile{{}}
	if !memoizable(copied) {
		t.Error("a plan that copies a local folder is not memoizable")
	}
	for name, change := range map[string]func(p *strata.Plan){
		"local files":   func(p *strata.Plan) { p.Layers[1].Context = []spec.ContextFile{{}} },
		"python source": func(p *strata.Plan) { p.Layers[1].Method = "add_local_python_source" },
		"registry base": func(p *strata.Plan) { p.Layers[0].Base.Kind = spec.BaseRegistry },
		"image read":    func(p *strata.Plan) { p.Layers[1].Images = []spec.ImageRef{{Ref: "x"}} },
		"remote source": func(p *strata.Plan) { p.Layers[1].Remote = []spec.RemoteRef{{}} },
		"function":      func(p *strata.Plan) { p.Layers[1].Function = &spec.FunctionRef{} },
		"secret":        func(p *strata.Plan) { p.Layers[1].Secrets = []string{"s"} },
		"volume":        func(p *strata.Plan) { p.Layers[1].Volumes = []spec.VolumeMount{{}} },
		"forced layer":  func(p *strata.Plan) { p.Layers[1].ForceBuild = true },
		"runtime mount": func(p *strata.Plan) { p.Mounts = []spec.Mount{{}} },
		"another stage": func(p *strata.Plan) { p.Stages = []spec.Stage{{}} },
		// Methods whose resolve reads files that show nowhere in the plan.
		"from_dockerfile":            func(p *strata.Plan) { p.Layers[0].Method = "from_dockerfile" },
		"pip_install_from_pyproject": func(p *strata.Plan) { p.Layers[1].Method = "pip_install_from_pyproject" },
	} {
		p := plain()
		change(p)
		if memoizable(p) {
			t.Errorf("a plan with a %s is memoizable", name)
		}
	}
}

// TestLocalEntries: a memo lists every file and folder a copied local folder's listing
// has, by the walk's own stat, and refuses a listing it cannot vouch for.
func TestLocalEntries(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"tree/a", "tree/sub/b", "tree/skip/c", "tree/keep/d", "file"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	resolve := func(img strata.Image) *strata.Plan {
		t.Helper()
		p, err := img.Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	later := time.Now().Add(localfiles.RacyWindow + time.Second) // the files are older than the window
	tree := func(o strata.AddLocalDirOptions) strata.Image {
		o.LocalPath, o.Copy = "tree", true
		if o.RemotePath == "" {
			o.RemotePath = "/srv/tree"
		}
		return strata.FromScratch().AddLocalDirWith(o).AddLocalFileWith(strata.AddLocalFileOptions{LocalPath: "file", RemotePath: "/file", Copy: true})
	}
	p := resolve(tree(strata.AddLocalDirOptions{Ignore: []string{"skip"}}))
	entries, err := localEntries(p, later)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		rel, _ := filepath.Rel(dir, e.Path)
		got = append(got, rel)
		if id, err := fasthit.IdentOf(e.Path); err != nil || id != e.Ident {
			t.Errorf("%s: identity %+v, lstat %+v %v", rel, e.Ident, id, err)
		}
	}
	if want := "tree tree/a tree/keep tree/keep/d tree/sub tree/sub/b file"; strings.Join(got, " ") != want {
		t.Errorf("entries %q, want %q", got, want)
	}
	if _, err := localEntries(p, time.Now()); err == nil {
		t.Error("files changed within the racy window are vouched for")
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("tree", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(dir, "empty"), time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))
	for name, img := range map[string]strata.Image{
		"folder copied to /":             tree(strata.AddLocalDirOptions{RemotePath: "/"}),
		"empty folder copied to /":       strata.FromScratch().AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: "empty", RemotePath: "/", Copy: true}),
		"file re-included below a skip":  tree(strata.AddLocalDirOptions{Ignore: []string{"skip", "!skip/c"}}),
		"folder excluded, file included": tree(strata.AddLocalDirOptions{Ignore: []string{"keep", "!keep/d"}}),
		// The walk goes through skip/ for a file that is not there yet, and lists nothing.
		"re-include of an absent file": tree(strata.AddLocalDirOptions{Ignore: []string{"skip", "!skip/none"}}),
		"link as the folder":           strata.FromScratch().AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: "link", RemotePath: "/srv", Copy: true}),
	} {
		if _, err := localEntries(resolve(img), later); err == nil {
			t.Errorf("a listing with a %s is vouched for", name)
		}
	}
}
