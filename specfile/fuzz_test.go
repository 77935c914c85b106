package specfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-build/strata/internal/fuzzing"
)

// FuzzParse: any spec text, YAML or JSON, parses or fails with an error; it never panics or
// hangs. Seeds: the golden specs and the forms the tests use.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"image:\n  - debian_slim: {python_version: \"3.13\"}\n  - apt_install: {packages: [git]}\n  - pip_install: {packages: [\"torch<3\"], index_url: \"http://127.0.0.1/simple\"}\n  - env: {vars: {A: \"1\"}}\n  - run_commands: {commands: [\"echo hi\"], secrets: [s], gpu: \"A10G:2\"}\n",
		"image:\n  - from_registry: {tag: \"127.0.0.1:5000/a/b:1\", add_python: \"3.12\"}\n  - add_local_dir: {local_path: ., remote_path: /app, copy: true, ignore: [\"*.pyc\", \"!keep.pyc\"]}\n  - workdir: /app\n  - entrypoint: [python]\n",
		"image:\n  - micromamba: {python_version: \"3.11\"}\n  - micromamba_install: {packages: [numpy], channels: [conda-forge]}\n",
		"image:\n  - from_dockerfile: {path: Dockerfile, context_dir: ., build_args: {A: b}}\n  - dockerfile_commands: {commands: [\"RUN echo 1\", \"ENV A=b\"]}\n",
		`{"image": [{"debian_slim": {}}, {"run_commands": {"commands": ["true"], "force_build": true}}]}`,
		"image: &a\n  - *a\n",
		"image:\n  - {}\n",
	} {
		f.Add([]byte(s))
	}
	golden, _ := filepath.Glob("../testdata/golden/*.json")
	for _, g := range golden {
		if b, err := os.ReadFile(g); err == nil && len(b) < 1<<16 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzing.Within(t, data, func() { _, _ = Parse(data) })
	})
}
