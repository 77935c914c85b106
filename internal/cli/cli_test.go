package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata/localfiles"
)

func run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := New()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// thirtyLayers writes a 30-layer spec with a copied folder.
func thirtyLayers(t testing.TB) string {
	dir := t.TempDir()
	t.Setenv("STRATA_HOME", filepath.Join(dir, "home"))
	var b strings.Builder
	b.WriteString("image:\n  - debian_slim: {python_version: \"3.13\"}\n  - add_local_dir: {local_path: src, remote_path: /app, copy: true}\n")
	for i := 2; i < 30; i++ {
		fmt.Fprintf(&b, "  - run_commands: {commands: [\"echo %d\"]}\n", i)
	}
	for i := 0; i < 200; i++ {
		p := filepath.Join(dir, "src", fmt.Sprintf("f%d.py", i))
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.Repeat("x", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "image.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestSpecPrintsOneLinePerLayer(t *testing.T) {
	file := thirtyLayers(t)
	out, err := run(t, "spec", "-f", file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 30 || !strings.Contains(lines[1], "add_local_dir") || !strings.Contains(lines[29], "sha256:") {
		t.Errorf("output:\n%s", out)
	}
	out, err = run(t, "spec", "-f", file, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var plan struct {
		Layers []struct {
			Method       string   `json:"method"`
			Key          string   `json:"key"`
			Instructions []string `json:"instructions"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Layers) != 30 || plan.Layers[29].Instructions[0] != "RUN echo 29" || !strings.HasPrefix(plan.Layers[0].Key, "sha256:") {
		t.Errorf("json plan: %+v", plan.Layers[29])
	}
}

// TestSpecSavesTheDigestCacheInHome: the digests of copied files are remembered in
// STRATA_HOME, once the files are older than the racily clean window (a file changed less
// than that before its read is read again next time).
func TestSpecSavesTheDigestCacheInHome(t *testing.T) {
	file := thirtyLayers(t)
	cache := filepath.Join(os.Getenv("STRATA_HOME"), "filehash")
	if _, err := run(t, "spec", "-f", file); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cache); err == nil {
		t.Error("digests of files written a moment ago were remembered")
	}
	time.Sleep(localfiles.RacyWindow + 100*time.Millisecond)
	if _, err := run(t, "spec", "-f", file); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cache); err != nil {
		t.Errorf("digest cache not saved in STRATA_HOME: %v", err)
	}
}

func TestDockerfileAndErrors(t *testing.T) {
	file := thirtyLayers(t)
	out, err := run(t, "dockerfile", "-f", file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "FROM debian:trixie-slim") || !strings.Contains(out, "RUN echo 29") {
		t.Errorf("dockerfile:\n%s", out)
	}
	if _, err := run(t, "spec"); err == nil || !strings.Contains(err.Error(), `"file" not set`) {
		t.Errorf("spec without -f: %v", err)
	}
	if _, err := run(t, "spec", "-f", filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing spec: %v", err)
	}
	for _, c := range []string{"spec", "dockerfile", "version"} {
		out, err := run(t, c, "--help")
		if err != nil || !strings.Contains(out, "Examples:") {
			t.Errorf("%s --help has no examples: %v\n%s", c, err, out)
		}
	}
}

// BenchmarkSpec30Layers measures `strata spec` on a 30-layer spec with a 200-file copied folder.
func BenchmarkSpec30Layers(b *testing.B) {
	file := thirtyLayers(b)
	for i := 0; i < b.N; i++ {
		if _, err := run(b, "spec", "-f", file); err != nil {
			b.Fatal(err)
		}
	}
}
