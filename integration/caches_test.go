package integration

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/pyindex"
)

// TestPackageCaches: the steps of pip and apt layers download through strata's caches on
// the host: a forced rebuild downloads no wheel again, apt's packages are kept by the
// proxy (for apt_install and for apt-get in run_commands), nothing of the caches enters a
// layer, two builds share the pip cache at once, and
// strata prune --caches shows and empties them.
func TestPackageCaches(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	wheels := map[string][]byte{}
	for _, name := range []string{"cached-a", "cached-b", "cached-c"} {
		mod := strings.ReplaceAll(name, "-", "_")
		wheels[pyindex.WheelName(name, "1.0")] = pyindex.Wheel(name, "1.0", map[string]string{mod + "/__init__.py": "NAME = '" + name + "'\n"})
	}
	index, downloads := countingIndex(t, wheels)
	// pip caches what it downloads over https, and over http from hosts it is told to trust.
	// Only the layer under test is forced: force_build on the whole build would bootstrap
	// the base again too.
	pip := func(force bool, pkgs ...string) strata.Image {
		return base().PipInstallWith(strata.PipInstallOptions{Packages: pkgs, LayerOptions: strata.LayerOptions{ForceBuild: force},
			PipOptions: strata.PipOptions{IndexURL: index, ExtraOptions: "--trusted-host 127.0.0.1"}})
	}
	img := pip(false, "cached-a")
	b := build(t, img, "it-caches-a")
	first := downloads.Load()
	if first == 0 {
		t.Fatal("the first build downloaded no wheel")
	}
	if n := treeFiles(t, filepath.Join(home, "caches", "pip")); n == 0 {
		t.Error("the pip cache on the host is empty after a pip build")
	}
	// Nothing of the cache is in the image: not the mount point, not pip's own cache.
	if got := run(t, b, "sh", "-c", "ls -A / | grep -c strata-cache; ls -A /root/.cache 2>/dev/null | grep -c pip; python3 -c 'import cached_a; print(cached_a.NAME)'"); got != "0\n0\ncached-a\n" {
		t.Errorf("the image holds the cache, or misses the package:\n%s", got)
	}
	b2 := build(t, pip(true, "cached-a"), "it-caches-a")
	if n := downloads.Load(); n != first {
		t.Errorf("a forced rebuild with a warm cache downloaded %d wheels again", n-first)
	}
	if got := run(t, b2, "python3", "-c", "import cached_a; print(cached_a.NAME)"); got != "cached-a\n" {
		t.Errorf("after the forced rebuild: %q", got)
	}

	// Two builds at once, each installing two packages, share the cache.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, pkgs := range [][]string{{"cached-b", "cached-c"}, {"cached-c", "cached-b"}} {
		wg.Add(1)
		go func(i int, img strata.Image) {
			defer wg.Done()
			_, errs[i] = img.Build(ctx(t), strata.WithHome(home), strata.WithName("it-caches-concurrent-"+string(rune('a'+i))))
		}(i, pip(true, pkgs...))
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent build %d: %v", i, err)
		}
	}

	// apt fetches through the proxy, which keeps the packages: an apt_install, and apt-get in
	// the user's own commands. The cache is emptied before each (as prune --caches does; the
	// tests run one at a time), so that what it holds after is that step's; a forced rebuild
	// fetches nothing again.
	apt := filepath.Join(home, "caches", "apt")
	fetchesOnce := func(img strata.Image, name string) *strata.Built {
		t.Helper()
		ents, _ := os.ReadDir(apt)
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(apt, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		build(t, img, name)
		kept := treeFiles(t, apt)
		if kept == 0 {
			t.Fatalf("%s: the apt cache holds nothing after the build", name)
		}
		b := build(t, img, name)
		if n := treeFiles(t, apt); n != kept {
			t.Errorf("%s: a forced rebuild added %d files to the apt cache: it fetched again", name, n-kept)
		}
		return b
	}
	force := strata.LayerOptions{ForceBuild: true}
	b3 := fetchesOnce(base().AptInstallWith(strata.AptInstallOptions{Packages: []string{"hello"}, LayerOptions: force}), "it-caches-apt")
	if got := run(t, b3, "hello"); got != "Hello, world!\n" {
		t.Errorf("hello: %q", got)
	}
	b4 := fetchesOnce(base().RunCommandsWith(strata.RunCommandsOptions{Commands: []string{"apt-get update && apt-get install -y --no-install-recommends sl"}, LayerOptions: force}), "it-caches-apt-run")
	if got := run(t, b4, "sh", "-c", "ls -A / | grep -c strata-cache; printenv APT_CONFIG; test -x /usr/games/sl && echo sl"); got != "0\nsl\n" {
		t.Errorf("the image holds the cache or its variable, or misses sl:\n%s", got)
	}

	// prune --caches, on a store of its own so that other tests keep their layers.
	other := t.TempDir()
	for _, f := range []string{"caches/pip/http-v2/x", "caches/apt/y", "cachemounts/abc/z"} {
		write(t, other, f, strings.Repeat("x", 4096))
	}
	out, err := cliEnv(t, []string{"STRATA_HOME=" + other}, "", "prune", "--caches")
	if err != nil {
		t.Fatalf("prune --caches: %v\n%s", err, out)
	}
	for _, want := range []string{"emptied the pip cache: 4.0 kB", "emptied the apt cache: 4.0 kB", "emptied the RUN --mount=type=cache folders: 4.0 kB", "emptied the uv cache: 0 B"} {
		if !strings.Contains(out, want) {
			t.Errorf("prune --caches does not say %q:\n%s", want, out)
		}
	}
	if n := treeFiles(t, filepath.Join(other, "caches")) + treeFiles(t, filepath.Join(other, "cachemounts")); n != 0 {
		t.Errorf("%d files left in the caches after prune --caches", n)
	}
}

// treeFiles counts the regular files below dir, at any depth.
func treeFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}
