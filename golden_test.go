package strata_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/specfile"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden pins the instructions and cache keys that every method generates. A diff here
// means existing caches would miss: if it is deliberate, bump strata.BuilderVersion and
// regenerate with go test -run TestGolden -update.
func TestGolden(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "") // the keys are those of builds without it
	dir := fixture(t)
	write(t, dir, "image.yaml", fullSpec)
	f, err := specfile.Load(filepath.Join(dir, "image.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]func() (*strata.Plan, error){
		"full": func() (*strata.Plan, error) {
			return f.Resolve(context.Background(), strata.WithHashCache(""), strata.WithPlatform("linux/amd64"))
		},
		"seed": func() (*strata.Plan, error) {
			return strata.DebianSlim("3.13").AptInstall("git").UvPipInstall("torch<3").
				Env(map[string]string{"HALT_AND_CATCH_FIRE": "0"}).
				RunCommands("git clone https://github.com/modal-labs/agi").
				Resolve(context.Background(), strata.WithHashCache(""), strata.WithPlatform("linux/amd64"))
		},
		"registry": func() (*strata.Plan, error) {
			return strata.FromRegistryWith(strata.FromRegistryOptions{Tag: "127.0.0.1:5000/base:1", Secret: "reg", AddPython: "3.11", SetupDockerfileCommands: []string{"RUN apt-get update"}}).
				Resolve(context.Background(), strata.WithHashCache(""), strata.WithPlatform("linux/amd64"))
		},
		"dockerfile": func() (*strata.Plan, error) {
			return strata.FromDockerfile("Dockerfile").Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""), strata.WithPlatform("linux/amd64"))
		},
		"micromamba": func() (*strata.Plan, error) {
			return strata.Micromamba("3.12").MicromambaInstall("numpy").Resolve(context.Background(), strata.WithHashCache(""), strata.WithPlatform("linux/amd64"))
		},
	}
	for name, resolve := range images {
		t.Run(name, func(t *testing.T) {
			plan, err := resolve()
			if err != nil {
				t.Fatal(err)
			}
			type layer struct {
				Method       string   `json:"method"`
				Key          string   `json:"key"`
				Instructions []string `json:"instructions"`
				Context      []string `json:"context,omitempty"`
			}
			var out []layer
			for _, l := range plan.Layers {
				gl := layer{Method: l.Method, Key: l.Key}
				for _, in := range l.Instructions {
					gl.Instructions = append(gl.Instructions, in.String())
				}
				for _, c := range l.Context {
					gl.Context = append(gl.Context, c.Path+" "+c.Digest)
				}
				out = append(out, gl)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			if err := enc.Encode(out); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (generate with go test -run TestGolden -update)", err)
			}
			if !bytes.Equal(want, buf.Bytes()) {
				t.Errorf("%s differs from the generated plan: if the change is deliberate, bump strata.BuilderVersion and run go test -run TestGolden -update\n--- got:\n%s", file, buf.String())
			}
		})
	}
}
