package specfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata"
)

func TestParseErrorsNameTheEntryAndTheFix(t *testing.T) {
	cases := []struct{ spec, want string }{
		{"", "not valid YAML"},
		{"- a", `a spec is a map with an "image" list`},
		{"images: []", `unknown top-level key "images"`},
		{"image: []", `"image" must be a non-empty list`},
		{"image:\n  - apt_install: {packages: [git]}", `2: image[0]: the first step must be a constructor`},
		{"image:\n  - debian_slim: {}\n  - debian_slim: {}", "image[1]: debian_slim is a constructor and can only be the first step"},
		{"image:\n  - debian_slim: {}\n  - apt_instal: {packages: [git]}", `3: image[1]: unknown method "apt_instal"; known methods: add_local_dir`},
		{"image:\n  - debian_slim: {}\n  - pip_install: {packages: [x], indx_url: y}", `image[1].pip_install: unknown parameter "indx_url"; known parameters: env, extra_index_url, extra_options, find_links, force_build, gpu, index_url, packages, pre, secrets`},
		{"image:\n  - debian_slim: {}\n  - pip_install: {packages: [x], pre: maybe}", `image[1].pip_install.pre: want true or false, got str "maybe"`},
		{"image:\n  - debian_slim: {}\n  - apt_install: {packages: {a: b}}", "image[1].apt_install.packages: want a list of strings, such as [a, b], got a map"},
		{"image:\n  - debian_slim: {}\n  - env: {vars: [a]}", "image[1].env.vars: want a map of strings"},
		{"image:\n  - debian_slim: {python_version: true}", `image[0].debian_slim.python_version: want a string, got bool "true"`},
		{"image:\n  - debian_slim: {}\n  - env: {vars: {A: null}}", `3: image[1].env.vars.A: want a string (write "" for an empty one, or leave the entry out), got null`},
		{"image:\n  - debian_slim: {}\n  - run_commands: {commands: [ls], env: {B: ~}}", `image[1].run_commands.env.B: want a string`},
		{"image:\n  - debian_slim: {}\n  - apt_install: {packages: [git, null]}", `image[1].apt_install.packages[1]: want a string`},
		{"image:\n  - debian_slim: {}\n  - apt_install: [git]", "image[1].apt_install: parameters must be a map, such as {packages: ...}"},
		{"image:\n  - debian_slim: {}\n  - {apt_install: {packages: [git]}, env: {vars: {}}}", "image[1]: each step is a map with one key"},
		{"image:\n  - debian_slim: {}\n  - pip_install: {packages: [x], packages: [y]}", ""},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.spec))
		if c.want == "" {
			continue // yaml.v3 itself rejects duplicate keys; any error is fine
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.spec, err, c.want)
		}
	}
}

func TestScalarIsAOneItemList(t *testing.T) {
	a, err := Parse([]byte("image:\n  - debian_slim: {}\n  - apt_install: {packages: git}"))
	if err != nil {
		t.Fatal(err)
	}
	b := strata.DebianSlim("").AptInstall("git")
	pa, err := a.Resolve(context.Background(), strata.WithHashCache(""))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := b.Resolve(context.Background(), strata.WithHashCache(""))
	if pa.Key() != pb.Key() {
		t.Error("packages: git and packages: [git] differ")
	}
}

func TestRelativePathsResolveAgainstTheSpecFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf", "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "conf", "src", "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "conf", "image.yaml")
	if err := os.WriteFile(spec, []byte("image:\n  - from_scratch: {}\n  - add_local_dir: {local_path: ./src, remote_path: /app, copy: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // somewhere else entirely
	f, err := Load(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Resolve(context.Background(), strata.WithHashCache(""))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Layers[1].Context); got != 2 {
		t.Errorf("got %d context files, want the folder and a.txt", got)
	}
	// Errors from a file carry its name and the line.
	if err := os.WriteFile(spec, []byte("image:\n  - from_scratch: {}\n  - nope: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(spec); err == nil || !strings.HasPrefix(err.Error(), spec+":3: image[1]") {
		t.Errorf("error %v does not start with %s:3: image[1]", err, spec)
	}
}

// TestEveryMethodIsReachable guards the method table against SDK methods that the spec
// format forgot.
func TestEveryMethodIsReachable(t *testing.T) {
	for _, name := range []string{
		"debian_slim", "micromamba", "from_registry", "from_aws_ecr", "from_gcp_artifact_registry",
		"from_dockerfile", "from_scratch", "apt_install", "pip_install", "uv_pip_install", "uv_sync",
		"pip_install_from_requirements", "pip_install_from_pyproject", "pip_install_private_repos",
		"poetry_install_from_file", "micromamba_install", "run_commands", "env", "workdir",
		"entrypoint", "cmd", "shell", "dockerfile_commands", "add_local_file", "add_local_dir",
		"add_local_python_source",
	} {
		if _, ok := methods[name]; !ok {
			t.Errorf("method %s has no spec entry", name)
		}
	}
}

// TestLoadReadsStandardInput: "-" reads the spec from standard input, its relative paths
// resolving against the working folder.
func TestLoadReadsStandardInput(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("image:\n  - debian_slim: {python_version: \"3.13\"}\n")
	w.Close()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	f, err := Load("-")
	if err != nil || f.Dir != dir {
		t.Errorf("Load(-): %+v %v, want the folder %s", f, err, dir)
	}
}
