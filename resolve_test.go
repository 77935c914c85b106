package strata_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/specfile"
)

func resolve(t *testing.T, img strata.Image, dir string) *strata.Plan {
	t.Helper()
	plan, err := img.Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(filepath.Join(t.TempDir(), "hash.json")))
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func keys(p *strata.Plan) []string {
	var k []string
	for _, l := range p.Layers {
		k = append(k, l.Key)
	}
	return k
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fixture makes a project folder with every kind of local input the methods read.
func fixture(t *testing.T) string {
	dir := t.TempDir()
	write(t, dir, "src/app.py", "print('app')\n")
	write(t, dir, "src/util/helpers.py", "X = 1\n")
	write(t, dir, "src/cache.pyc", "junk")
	write(t, dir, "requirements.txt", "requests==2.32.0\n")
	write(t, dir, "pyproject.toml", "[project]\nname = \"p\"\ndependencies = [\"rich==13.0\"]\n[project.optional-dependencies]\ndev = [\"pytest\"]\n")
	write(t, dir, "uvproj/pyproject.toml", "[project]\nname = \"u\"\ndependencies = []\n")
	write(t, dir, "uvproj/uv.lock", "version = 1\n")
	write(t, dir, "poetry/pyproject.toml", "[tool.poetry]\nname = \"x\"\n")
	write(t, dir, "poetry/poetry.lock", "# lock\n")
	write(t, dir, "env.yml", "dependencies: [numpy]\n")
	write(t, dir, "config.json", "{}\n")
	write(t, dir, "mymod/__init__.py", "")
	write(t, dir, "Dockerfile", "ARG PY=3.13\nFROM python:${PY}-slim\nCOPY src /src\nENV A=1\n")
	return dir
}

const fullSpec = `
image:
  - debian_slim: {python_version: "3.11", force_build: false}
  - apt_install: {packages: [git, curl], env: {DEBUG: "1"}}
  - pip_install: {packages: ["pandas==2.2.0", numpy], index_url: "http://127.0.0.1:8080/simple", pre: true, gpu: "a10g:2"}
  - uv_pip_install: {packages: ["torch<3"], requirements: [requirements.txt], uv_version: "0.9.5"}
  - uv_sync: {uv_project_dir: uvproj, groups: [dev], frozen: false}
  - pip_install_from_requirements: {requirements_txt: requirements.txt, find_links: /wheels}
  - pip_install_from_pyproject: {pyproject_toml: pyproject.toml, optional_dependencies: [dev]}
  - pip_install_private_repos: {repositories: [github.com/org/repo@v1], git_user: bot, secrets: [gh]}
  - poetry_install_from_file: {poetry_pyproject_toml: poetry/pyproject.toml, with_: [dev], poetry_version: "1.8.3"}
  - micromamba_install: {packages: [numpy], spec_file: env.yml, channels: [conda-forge]}
  - run_commands: {commands: ["echo hi > /hi", "ls"], secrets: [my-secret], volumes: {/root/.cache/pip: pip-cache}}
  - env: {vars: {PORT: "6443", GREETING: "hello world"}}
  - workdir: {path: /app}
  - entrypoint: {entrypoint_commands: [/bin/sh, -c]}
  - cmd: {cmd: [python, app.py]}
  - shell: {shell_commands: [/bin/bash, -c]}
  - dockerfile_commands: {commands: ["COPY config.json /etc/app.json", "RUN cat /etc/app.json"], build_args: {V: "1"}}
  - add_local_file: {local_path: config.json, remote_path: /etc/, copy: true}
  - add_local_dir: {local_path: ./src, remote_path: /app, copy: true, ignore: ["*.pyc"]}
  - add_local_python_source: {modules: [mymod], copy: true}
  - add_local_dir: {local_path: ./src, remote_path: /mnt/src}
`

func fullGo() strata.Image {
	no := false
	return strata.DebianSlim("3.11").
		AptInstallWith(strata.AptInstallOptions{Packages: []string{"git", "curl"}, LayerOptions: strata.LayerOptions{Env: map[string]string{"DEBUG": "1"}}}).
		PipInstallWith(strata.PipInstallOptions{
			Packages:     []string{"pandas==2.2.0", "numpy"},
			PipOptions:   strata.PipOptions{IndexURL: "http://127.0.0.1:8080/simple", Pre: true},
			LayerOptions: strata.LayerOptions{GPU: "A10G:2"},
		}).
		UvPipInstallWith(strata.UvPipInstallOptions{Packages: []string{"torch<3"}, Requirements: []string{"requirements.txt"}, UvVersion: "0.9.5"}).
		UvSyncWith(strata.UvSyncOptions{UvProjectDir: "uvproj", Groups: []string{"dev"}, Frozen: &no}).
		PipInstallFromRequirementsWith(strata.PipInstallFromRequirementsOptions{RequirementsTxt: "requirements.txt", PipOptions: strata.PipOptions{FindLinks: "/wheels"}}).
		PipInstallFromPyprojectWith(strata.PipInstallFromPyprojectOptions{PyprojectToml: "pyproject.toml", OptionalDependencies: []string{"dev"}}).
		PipInstallPrivateRepos("bot", []string{"gh"}, "github.com/org/repo@v1").
		PoetryInstallFromFileWith(strata.PoetryInstallFromFileOptions{PoetryPyprojectToml: "poetry/pyproject.toml", With: []string{"dev"}, PoetryVersion: "1.8.3"}).
		MicromambaInstallWith(strata.MicromambaInstallOptions{Packages: []string{"numpy"}, SpecFile: "env.yml", Channels: []string{"conda-forge"}}).
		RunCommandsWith(strata.RunCommandsOptions{
			Commands:     []string{"echo hi > /hi", "ls"},
			Volumes:      map[string]string{"/root/.cache/pip": "pip-cache"},
			LayerOptions: strata.LayerOptions{Secrets: []string{"my-secret"}},
		}).
		Env(map[string]string{"GREETING": "hello world", "PORT": "6443"}).
		Workdir("/app").
		Entrypoint("/bin/sh", "-c").
		Cmd("python", "app.py").
		Shell("/bin/bash", "-c").
		DockerfileCommandsWith(strata.DockerfileCommandsOptions{Commands: []string{"COPY config.json /etc/app.json", "RUN cat /etc/app.json"}, BuildArgs: map[string]string{"V": "1"}}).
		AddLocalFileWith(strata.AddLocalFileOptions{LocalPath: "config.json", RemotePath: "/etc/", Copy: true}).
		AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: "./src", RemotePath: "/app", Copy: true, Ignore: []string{"*.pyc"}}).
		AddLocalPythonSourceWith(strata.AddLocalPythonSourceOptions{Modules: []string{"mymod"}, Copy: true}).
		AddLocalDir("./src", "/mnt/src")
}

func TestGoAndSpecFileResolveToIdenticalKeys(t *testing.T) {
	dir := fixture(t)
	write(t, dir, "image.yaml", fullSpec)
	f, err := specfile.Load(filepath.Join(dir, "image.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fromSpec, err := f.Resolve(context.Background(), strata.WithHashCache(""))
	if err != nil {
		t.Fatal(err)
	}
	fromGo := resolve(t, fullGo(), dir)
	if len(fromSpec.Layers) != 20 || len(fromGo.Layers) != 20 {
		t.Fatalf("got %d and %d layers, want 20", len(fromSpec.Layers), len(fromGo.Layers))
	}
	for i := range fromGo.Layers {
		if g, s := fromGo.Layers[i], fromSpec.Layers[i]; g.Key != s.Key {
			t.Errorf("layer %d (%s): Go key %s, spec key %s", i, g.Method, g.Key, s.Key)
		}
	}
	if len(fromSpec.Mounts) != 1 || len(fromGo.Mounts) != 1 {
		t.Errorf("mounts: spec %d, Go %d, want 1", len(fromSpec.Mounts), len(fromGo.Mounts))
	}
	// JSON is YAML: the same spec as JSON resolves to the same keys.
	write(t, dir, "image.json", `{"image": [{"debian_slim": {"python_version": "3.11"}}, {"apt_install": {"packages": ["git", "curl"], "env": {"DEBUG": "1"}}}]}`)
	fj, err := specfile.Load(filepath.Join(dir, "image.json"))
	if err != nil {
		t.Fatal(err)
	}
	pj, err := fj.Resolve(context.Background(), strata.WithHashCache(""))
	if err != nil {
		t.Fatal(err)
	}
	if pj.Key() != fromGo.Layers[1].Key {
		t.Errorf("JSON spec key %s, want %s", pj.Key(), fromGo.Layers[1].Key)
	}
}

func TestChangingLayerNChangesNAndLaterOnly(t *testing.T) {
	chain := func(cmds ...string) strata.Image {
		img := strata.DebianSlim("3.13")
		for _, c := range cmds {
			img = img.RunCommands(c)
		}
		return img
	}
	base := keys(resolve(t, chain("a", "b", "c", "d"), t.TempDir()))
	for n := 1; n <= 4; n++ {
		cmds := []string{"a", "b", "c", "d"}
		cmds[n-1] = "changed"
		got := keys(resolve(t, chain(cmds...), t.TempDir()))
		for i := range got {
			if same := got[i] == base[i]; same != (i < n) {
				t.Errorf("changing layer %d: layer %d key changed=%v, want %v", n, i, !same, i >= n)
			}
		}
	}
	// The constructor is layer 0: a different Python changes every key.
	other := keys(resolve(t, strata.DebianSlim("3.11").RunCommands("a", "b"), t.TempDir()))
	if other[0] == base[0] {
		t.Error("a different python_version kept the root key")
	}
}

func TestCopiedFileKeysFollowContentOnly(t *testing.T) {
	dir := fixture(t)
	hashCache := filepath.Join(t.TempDir(), "hash.json")
	img := strata.DebianSlim("").
		AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: "src", RemotePath: "/app", Copy: true, Ignore: []string{"*.pyc", "tmp/"}}).
		RunCommands("python /app/app.py")
	key := func() []string {
		t.Helper()
		p, err := img.Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(hashCache))
		if err != nil {
			t.Fatal(err)
		}
		return keys(p)
	}
	before := key()

	// Touching the mtime changes nothing.
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "src/app.py"), future, future); err != nil {
		t.Fatal(err)
	}
	if got := key(); got[1] != before[1] {
		t.Error("touching a copied file's mtime changed its layer key")
	}
	// Adding ignored files changes nothing.
	write(t, dir, "src/other.pyc", "x")
	write(t, dir, "src/tmp/scratch.txt", "x")
	if got := key(); got[1] != before[1] {
		t.Error("adding ignored files changed the layer key")
	}
	// Changing content changes the copy layer and the next, not the root.
	write(t, dir, "src/app.py", "print('changed')\n")
	got := key()
	if got[0] != before[0] || got[1] == before[1] || got[2] == before[2] {
		t.Errorf("after a content change: keys %v, before %v", got, before)
	}
	// Same-size content change with the mtime restored is still seen. (These files are too new
	// for the digest cache to remember: localfiles' TestHasherSeesSameSizeChangeWithOldMtime
	// holds a remembered digest to the ctime.)
	write(t, dir, "src/app.py", "print('chang3d')\n")
	past := time.Now().Add(-time.Hour)
	_ = os.Chtimes(filepath.Join(dir, "src/app.py"), past, past)
	if again := key(); again[1] == got[1] {
		t.Error("a same-size content change with an old mtime was not seen")
	}
	// A mode change (executable bit) changes the key.
	modeBefore := key()
	if err := os.Chmod(filepath.Join(dir, "src/app.py"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := key(); got[1] == modeBefore[1] {
		t.Error("making a copied file executable kept its layer key")
	}
}

func TestRuntimeMountsNeverChangeLayerKeys(t *testing.T) {
	dir := fixture(t)
	base := strata.DebianSlim("").PipInstall("numpy")
	want := keys(resolve(t, base, dir))
	mounted := base.AddLocalDir("src", "/app").AddLocalFile("config.json", "/etc/config.json").AddLocalPythonSource("mymod")
	p := resolve(t, mounted, dir)
	if strings.Join(keys(p), ",") != strings.Join(want, ",") {
		t.Errorf("runtime mounts changed keys: %v, want %v", keys(p), want)
	}
	if len(p.Mounts) != 3 {
		t.Fatalf("got %d mounts, want 3", len(p.Mounts))
	}
	write(t, dir, "src/app.py", "print('other')\n")
	if got := keys(resolve(t, mounted, dir)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Error("changing a mounted file changed the image's keys")
	}
	// A build step after a runtime mount is an error that explains copy.
	_, err := mounted.RunCommands("ls").Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""))
	if !errors.Is(err, strata.ErrInvalid) || !strings.Contains(err.Error(), "Copy: true") || !strings.Contains(err.Error(), "layer 5 (run_commands)") {
		t.Errorf("build step after a mount: %v", err)
	}
}

func TestSecretValuesNeverEnterKeys(t *testing.T) {
	img := func(secret string) strata.Image {
		return strata.DebianSlim("").RunCommandsWith(strata.RunCommandsOptions{
			Commands: []string{"echo $TOKEN"}, LayerOptions: strata.LayerOptions{Secrets: []string{secret}},
		})
	}
	t.Setenv("TOKEN", "value-one")
	first := resolve(t, img("tok"), t.TempDir()).Key()
	t.Setenv("TOKEN", "value-two")
	if second := resolve(t, img("tok"), t.TempDir()).Key(); second != first {
		t.Error("the environment's secret value changed the key")
	}
	// The secret's name is part of the key: another secret may hold other credentials.
	if other := resolve(t, img("other"), t.TempDir()).Key(); other == first {
		t.Error("the secret's name is not in the key")
	}
}

func TestForceBuildPropagatesAndStaysOutOfKeys(t *testing.T) {
	plain := strata.DebianSlim("").RunCommands("a").PipInstall("x").RunCommands("b")
	forced := strata.DebianSlim("").RunCommands("a").
		PipInstallWith(strata.PipInstallOptions{Packages: []string{"x"}, LayerOptions: strata.LayerOptions{ForceBuild: true}}).
		RunCommands("b")
	p, f := resolve(t, plain, t.TempDir()), resolve(t, forced, t.TempDir())
	for i := range p.Layers {
		if p.Layers[i].Key != f.Layers[i].Key {
			t.Errorf("force_build changed layer %d's key", i)
		}
		if want := i >= 2; f.Layers[i].ForceBuild != want {
			t.Errorf("layer %d ForceBuild = %v, want %v", i, f.Layers[i].ForceBuild, want)
		}
	}
}

func TestEmptyArgumentsAddNoLayer(t *testing.T) {
	img := strata.DebianSlim("").AptInstall().PipInstall().UvPipInstall().RunCommands().
		DockerfileCommands().MicromambaInstall().Env(nil)
	if n := len(resolve(t, img, t.TempDir()).Layers); n != 1 {
		t.Errorf("got %d layers, want 1", n)
	}
}

func TestDefinitionErrors(t *testing.T) {
	dir := fixture(t)
	cases := []struct {
		name string
		img  strata.Image
		want string
	}{
		{"empty image", strata.Image{}, "start the chain with a constructor"},
		{"no constructor", strata.Image{}.AptInstall("git"), "the chain has no constructor"},
		{"apt flag", strata.DebianSlim("").AptInstall("-y", "git"), `layer 1 (apt_install): packages: package name "-y" looks like a flag`},
		{"pip flag", strata.DebianSlim("").PipInstall("--upgrade"), "pass pip options in extra_options"},
		{"uv flag", strata.DebianSlim("").UvPipInstall("-r"), "looks like a flag"},
		{"empty package", strata.DebianSlim("").AptInstall(""), "an empty package name"},
		{"python float-ish", strata.DebianSlim("3"), `invalid Python version "3"`},
		{"python garbage", strata.DebianSlim("three"), `invalid Python version "three"`},
		{"python unsupported", strata.DebianSlim("3.9"), "Debian ships 3.11 (bookworm), 3.13 (trixie), 3.14 (sid), and python-build-standalone builds are pinned for 3.10, 3.11, 3.12, 3.14 "},
		{"python micro", strata.DebianSlim("3.13.1"), `takes a series such as "3.13"`},
		{"free threaded", strata.DebianSlim("3.14t"), "free-threaded Python is not supported"},
		{"micromamba python", strata.Micromamba("3.9"), "not supported by micromamba"},
		{"relative remote", strata.DebianSlim("").AddLocalDir("src", "app"), `remote_path "app" must be absolute`},
		{"missing local", strata.DebianSlim("").AddLocalDir("nope", "/app"), `local_path "nope"`},
		{"file as dir", strata.DebianSlim("").AddLocalDir("config.json", "/app"), "use add_local_file"},
		{"dir as file", strata.DebianSlim("").AddLocalFile("src", "/app"), "use add_local_dir"},
		{"missing module", strata.DebianSlim("").AddLocalPythonSource("nomod"), `module "nomod"`},
		{"bad module", strata.DebianSlim("").AddLocalPythonSource("../x"), "not an importable name"},
		{"bad gpu", strata.DebianSlim("").PipInstallWith(strata.PipInstallOptions{Packages: []string{"x"}, LayerOptions: strata.LayerOptions{GPU: "H1000"}}), `unknown GPU type "H1000"`},
		{"bad gpu count", strata.DebianSlim("").PipInstallWith(strata.PipInstallOptions{Packages: []string{"x"}, LayerOptions: strata.LayerOptions{GPU: "H100:abc"}}), "must be an integer"},
		{"bad secret", strata.DebianSlim("").PipInstallWith(strata.PipInstallOptions{Packages: []string{"x"}, LayerOptions: strata.LayerOptions{Secrets: []string{"a b"}}}), "not a secret name"},
		{"bad env key", strata.DebianSlim("").Env(map[string]string{"A=B": "x"}), "not a valid environment variable name"},
		{"volume root", strata.DebianSlim("").RunCommandsWith(strata.RunCommandsOptions{Commands: []string{"x"}, Volumes: map[string]string{"/tmp": "v"}}), "cannot be mounted at /tmp"},
		{"volume relative", strata.DebianSlim("").RunCommandsWith(strata.RunCommandsOptions{Commands: []string{"x"}, Volumes: map[string]string{"cache": "v"}}), "must be absolute"},
		{"volume twice", strata.DebianSlim("").RunCommandsWith(strata.RunCommandsOptions{Commands: []string{"x"}, Volumes: map[string]string{"/a": "v", "/b": "v"}}), "one path only"},
		{"bad tag", strata.FromRegistry("UPPER/Case"), "not an image reference"},
		{"empty tag", strata.FromRegistry(""), "tag is empty"},
		{"ecr without secret", strata.FromAWSECR("000000000000.dkr.ecr.us-east-1.amazonaws.com/app:1", ""), "from_aws_ecr needs a secret with AWS_ACCESS_KEY_ID"},
		{"gcp without secret", strata.FromGCPArtifactRegistry("us-docker.pkg.dev/p/r/app:1", ""), "from_gcp_artifact_registry needs a secret with SERVICE_ACCOUNT_JSON"},
		{"add_python micro", strata.FromRegistryWith(strata.FromRegistryOptions{Tag: "debian:12", AddPython: "3.12.1"}), "major.minor"},
		{"add_python unknown", strata.FromRegistryWith(strata.FromRegistryOptions{Tag: "debian:12", AddPython: "3.9"}), "add_python \"3.9\" is not supported"},
		{"private repos host", strata.DebianSlim("").PipInstallPrivateRepos("bot", []string{"gh"}, "bitbucket.org/x/y"), "1 out of 1 given repository refs are invalid"},
		{"private repos secret", strata.DebianSlim("").PipInstallPrivateRepos("bot", nil, "github.com/x/y"), "no secrets given"},
		{"pyproject missing", strata.DebianSlim("").PipInstallFromPyproject("uvproj/nothere.toml"), "pyproject_toml"},
		{"pyproject group", strata.DebianSlim("").PipInstallFromPyprojectWith(strata.PipInstallFromPyprojectOptions{PyprojectToml: "pyproject.toml", OptionalDependencies: []string{"nope"}}), `no group "nope"`},
		{"poetry lock", strata.DebianSlim("").PoetryInstallFromFile("pyproject.toml"), "poetry.lock not found"},
		{"uv sync dir", strata.DebianSlim("").UvSync("src"), "expected"},
		{"dockerfile FROM", strata.DebianSlim("").DockerfileCommands("FROM debian"), "FROM is not allowed here"},
		{"dockerfile copy var", strata.DebianSlim("").DockerfileCommands("COPY $X /x"), "uses a variable"},
		{"dockerfile copy missing", strata.DebianSlim("").DockerfileCommands("COPY nothere /x"), `COPY source "nothere" matches no file`},
		{"dockerfile unsupported", strata.DebianSlim("").DockerfileCommands("BOGUS true"), "BOGUS"},
		{"dockerfile missing", strata.FromDockerfile("nope/Dockerfile"), `path "nope/Dockerfile"`},
		{"dockerfile bad flag", strata.DebianSlim("").DockerfileCommands("COPY --form=x a b"), "line 1: unknown flag: --form"},
		{"run bad flag", strata.DebianSlim("").DockerfileCommands("RUN --nework=none true"), "line 1: unknown flag: --nework"},
		{"shell empty", strata.DebianSlim("").Shell(), "shell wants at least one argument"},
		{"empty command", strata.DebianSlim("").RunCommands(" "), "an empty command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.img.Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""))
			if err == nil {
				t.Fatalf("no error, want one containing %q", c.want)
			}
			if !errors.Is(err, strata.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestFromDockerfile(t *testing.T) {
	dir := fixture(t)
	write(t, dir, ".dockerignore", "src/util\n")
	p := resolve(t, strata.FromDockerfileWith(strata.FromDockerfileOptions{Path: "Dockerfile", BuildArgs: map[string]string{"PY": "3.12"}}), dir)
	// One layer per instruction after FROM.
	if len(p.Layers) != 3 || p.Layers[0].Base.Ref != "python:3.12-slim" {
		t.Fatalf("layers %d, base %+v", len(p.Layers), p.Layers[0].Base)
	}
	var paths []string
	for _, f := range p.Layers[1].Context {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, ","); got != "src,src/app.py,src/cache.pyc" {
		t.Errorf("context %s: want src without the ignored src/util", got)
	}
	// Without build args the ARG default applies.
	if p := resolve(t, strata.FromDockerfile("Dockerfile"), dir); p.Layers[0].Base.Ref != "python:3.13-slim" {
		t.Errorf("FROM with the ARG default: %s", p.Layers[0].Base.Ref)
	}
}

// TestMultiStageDockerfiles: stages the target reads from are in the plan, keyed into the
// layers that read them; stages it does not need are not; a stage FROM another shares its
// layers; --target picks the stage.
func TestMultiStageDockerfiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "main.go", "package main\n")
	write(t, dir, "Dockerfile", `ARG GO=1.22
FROM golang:${GO} AS build
COPY main.go /src/
RUN go build -o /out/app /src/main.go

FROM build AS test
RUN go vet /src/main.go

FROM debian:12 AS unused
RUN echo never

FROM debian:12 AS assets
RUN echo assets > /assets.txt

FROM debian:12
COPY --from=build /out/app /usr/local/bin/app
COPY --from=3 /assets.txt /assets.txt
RUN --mount=type=bind,from=test,source=/src,target=/mnt ls /mnt
`)
	p := resolve(t, strata.FromDockerfile("Dockerfile"), dir)
	var names []string
	for _, s := range p.Stages {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "0,3,1" {
		t.Fatalf("stages %s, want build (0), assets (3) and test (1), not unused (2)", got)
	}
	build, test := p.Stages[0], p.Stages[2]
	if len(test.Layers) != len(build.Layers)+1 || test.Layers[len(build.Layers)-1].Key != build.Layers[len(build.Layers)-1].Key {
		t.Error("the test stage does not go on from the build stage's layers")
	}
	copyBuild := p.Layers[1]
	if len(copyBuild.Images) != 1 || copyBuild.Images[0].Stage != "0" || copyBuild.Images[0].Digest != build.Layers[len(build.Layers)-1].Key {
		t.Errorf("COPY --from=build reads %+v", copyBuild.Images)
	}
	if im := p.Layers[3].Images; len(im) != 1 || im[0].Stage != "1" {
		t.Errorf("RUN --mount from=test reads %+v", im)
	}
	// Changing the build stage changes the keys of what copies from it, and only those.
	write(t, dir, "main.go", "package main\n// changed\n")
	q := resolve(t, strata.FromDockerfile("Dockerfile"), dir)
	if q.Layers[0].Key != p.Layers[0].Key || q.Layers[1].Key == p.Layers[1].Key || q.Stages[1].Layers[1].Key != p.Stages[1].Layers[1].Key {
		t.Error("a change in the build stage did not rekey (only) the COPY --from=build and what follows it")
	}
	// --target: the test stage, whose plan does not hold the final stage.
	tp := resolve(t, strata.FromDockerfileWith(strata.FromDockerfileOptions{Path: "Dockerfile", Target: "test"}), dir)
	if len(tp.Stages) != 0 || tp.Layers[len(tp.Layers)-1].Instructions[0].String() != "RUN go vet /src/main.go" {
		t.Errorf("target test: %d stages, last %v", len(tp.Stages), tp.Layers[len(tp.Layers)-1].Instructions)
	}
	if _, err := strata.FromDockerfileWith(strata.FromDockerfileOptions{Path: "Dockerfile", Target: "nope"}).Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache("")); err == nil || !strings.Contains(err.Error(), `target "nope" is not a stage`) {
		t.Errorf("unknown target: %v", err)
	}
}

// TestDockerfileArgsReachOnlyTheLayersThatDeclareThem: a build arg is in the key of the
// layers after its ARG, not before; the proxy args are in no key.
func TestDockerfileArgsReachOnlyTheLayersThatDeclareThem(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "FROM debian:12\nRUN echo one\nARG V\nRUN echo $V\n")
	keys := func(args map[string]string) []string {
		return keys(resolve(t, strata.FromDockerfileWith(strata.FromDockerfileOptions{Path: "Dockerfile", BuildArgs: args}), dir))
	}
	a, b := keys(map[string]string{"V": "1"}), keys(map[string]string{"V": "2"})
	if a[1] != b[1] || a[2] == b[2] || a[3] == b[3] {
		t.Errorf("keys with V=1 %v and V=2 %v", a, b)
	}
	if c := keys(map[string]string{"V": "1", "HTTP_PROXY": "http://proxy:3128", "UNUSED": "x"}); c[3] != a[3] {
		t.Error("a proxy arg or an undeclared build arg changed a key")
	}
}

func TestAddLocalFileTrailingSlashKeepsName(t *testing.T) {
	dir := fixture(t)
	p := resolve(t, strata.FromScratch().AddLocalFileWith(strata.AddLocalFileOptions{LocalPath: "config.json", RemotePath: "/etc/app/", Copy: true}), dir)
	if got := p.Layers[1].Context[0].Path; got != "etc/app/config.json" {
		t.Errorf("context path %s", got)
	}
}

func TestCopyContextCountsEverySourceThatNamesAFile(t *testing.T) {
	dir := fixture(t)
	p := resolve(t, strata.FromScratch().DockerfileCommandsWith(strata.DockerfileCommandsOptions{
		Commands: []string{"COPY config.json /a.json", "ADD config.json /b.json"},
	}), dir)
	if n := len(p.Layers[1].Context); n != 1 {
		t.Errorf("got %d context files, want config.json once", n)
	}
}

// TestCopyFollowsASymlinkNamedAsSource: as Docker, a symlink that a COPY source names is
// copied as what it points to (a file, or a folder's contents), under its own name; links
// inside a copied folder stay links, and a link out of the context is refused.
func TestCopyFollowsASymlinkNamedAsSource(t *testing.T) {
	dir := fixture(t)
	write(t, dir, "files/a.txt", "a")
	write(t, dir, "files/sub/b.txt", "b")
	for link, target := range map[string]string{"to-a": "files/a.txt", "files/to-sub": "sub", "out": "../../etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := func(cmd string) map[string]spec.ContextFile {
		t.Helper()
		p := resolve(t, strata.FromScratch().DockerfileCommands(cmd), dir)
		m := map[string]spec.ContextFile{}
		for _, f := range p.Layers[len(p.Layers)-1].Context {
			m[f.Path] = f
		}
		return m
	}
	if f := ctx("COPY to-a /x")["to-a"]; f.Link != "" || f.Size != 1 || !strings.HasSuffix(f.Source, "files/a.txt") {
		t.Errorf("COPY to-a: %+v, want the content of files/a.txt", f)
	}
	if m := ctx("COPY files/to-* /x/"); m["files/to-sub/b.txt"].Size != 1 || m["files/to-sub"].Link != "" {
		t.Errorf("COPY files/to-*: %v, want the folder sub under to-sub", m)
	}
	if f := ctx("COPY files /x/")["files/to-sub"]; f.Link != "sub" {
		t.Errorf("COPY files: to-sub %+v, want a symlink kept", f)
	}
	_, err := strata.FromScratch().DockerfileCommands("COPY out /x").Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""))
	if err == nil || !strings.Contains(err.Error(), "not in the context") {
		t.Errorf("COPY of a link out of the context: %v", err)
	}
}

// TestCopyThroughALinkKeepsIgnoredFilesOut: a symlink named as a COPY source is followed
// into the context's listing, so a file .dockerignore leaves out stays out through it.
func TestCopyThroughALinkKeepsIgnoredFilesOut(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".dockerignore", "secret.env\n")
	write(t, dir, "secret.env", "TOKEN=x")
	write(t, dir, "a.txt", "a")
	for link, target := range map[string]string{"cfg": "secret.env", "all": "."} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	resolveDockerfile := func(text string) (*strata.Plan, error) {
		write(t, dir, "Dockerfile", text)
		return strata.FromDockerfile("Dockerfile").Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""))
	}
	if _, err := resolveDockerfile("FROM scratch\nCOPY cfg /cfg\n"); err == nil || !strings.Contains(err.Error(), "or is ignored") {
		t.Errorf("COPY of a link to an ignored file: %v", err)
	}
	p, err := resolveDockerfile("FROM scratch\nCOPY all /all\n")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range p.Layers[len(p.Layers)-1].Context {
		paths = append(paths, f.Path)
	}
	if !slices.Contains(paths, "all/a.txt") || slices.Contains(paths, "all/secret.env") || slices.Contains(paths, "secret.env") {
		t.Errorf("COPY of a link to the context: %v", paths)
	}
}

// TestOnbuildTriggersInputsAreKeyed: the ONBUILD triggers a stage runs first are read before
// the build, so the URLs they ADD and the images they COPY --from are inputs of the layer
// that runs them, as its own instructions' are.
func TestOnbuildTriggersInputsAreKeyed(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "FROM scratch AS parent\nONBUILD ADD https://example.com/x.txt /x.txt\nONBUILD COPY --from=busybox:1 /bin/sh /sh\nFROM parent\nRUN true\n")
	p, err := strata.FromDockerfile("Dockerfile").Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""))
	if err != nil {
		t.Fatal(err)
	}
	first := p.Layers[len(p.Layers)-1]
	if len(first.Remote) != 1 || first.Remote[0].Ref != "https://example.com/x.txt" {
		t.Errorf("remote inputs of the layer running the triggers: %+v", first.Remote)
	}
	if len(first.Images) != 1 || first.Images[0].Ref != "busybox:1" || first.Images[0].Stage != "" {
		t.Errorf("images of the layer running the triggers: %+v", first.Images)
	}
}

// TestSyntaxDirectiveWarnings: a syntax directive naming BuildKit's stable 1.x frontend is
// what strata reads and says nothing; any other frontend image gets a warning.
func TestSyntaxDirectiveWarnings(t *testing.T) {
	dir := t.TempDir()
	for syntax, warn := range map[string]bool{
		"docker/dockerfile:1":               false,
		"docker.io/docker/dockerfile:1.7.1": false,
		"docker/dockerfile:1-labs":          true,
		"example.com/my/frontend:2":         true,
		"docker/dockerfile:1.4":             false,
	} {
		write(t, dir, "Dockerfile", "# syntax="+syntax+"\nFROM scratch\nENV A=1\n")
		p := resolve(t, strata.FromDockerfile("Dockerfile"), dir)
		if got := len(p.Warnings) > 0; got != warn {
			t.Errorf("# syntax=%s: warnings %q, want a warning: %v", syntax, p.Warnings, warn)
		}
	}
}

// TestFromDockerfileArgsAndPlatform: ARGs declared before FROM feed FROM and are what a bare
// ARG in the stage takes (Docker's rule); FROM --platform is honoured when it names the
// platform built for and refused otherwise.
func TestFromDockerfileArgsAndPlatform(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "ARG V=1.0\nARG BASE=debian:${V}\nARG EMPTY\nFROM --platform=$BUILDPLATFORM $BASE\nARG V\nRUN echo $V\n")
	resolveAt := func(platform string, args map[string]string) (*strata.Plan, error) {
		return strata.FromDockerfileWith(strata.FromDockerfileOptions{Path: "Dockerfile", BuildArgs: args}).
			Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""), strata.WithPlatform(platform))
	}
	p, err := resolveAt("linux/amd64", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Layers[0].Base.Ref != "debian:1.0" || p.Layers[0].Base.Platform != "linux/amd64" {
		t.Errorf("base %+v", p.Layers[0].Base)
	}
	// The bare "ARG V" takes the global value: the step sees it as a build arg.
	if got := p.Layers[1].BuildArgs; len(got) != 1 || got[0] != (spec.KV{Key: "V", Value: "1.0"}) {
		t.Errorf("args of the ARG V layer %v", got)
	}
	p2, err := resolveAt("linux/amd64", map[string]string{"V": "2.0"})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Layers[0].Base.Ref != "debian:2.0" || p2.Layers[2].BuildArgs[0].Value != "2.0" || p2.Layers[2].Key == p.Layers[2].Key {
		t.Errorf("a build arg did not reach the global ARG: %+v %v", p2.Layers[0].Base, p2.Layers[2].BuildArgs)
	}
	write(t, dir, "Dockerfile", "FROM --platform=linux/arm64 debian:12\nRUN true\n")
	if _, err := resolveAt("linux/amd64", nil); err == nil || !strings.Contains(err.Error(), "strata builds for this machine's platform, linux/amd64") {
		t.Errorf("another platform: %v", err)
	}
	if _, err := resolveAt("linux/arm64/v8", nil); err != nil {
		t.Errorf("the host's own platform: %v", err)
	}
}

// TestImagesAreKeyedByDigest: with a resolver (Client.Build passes the engine's), a base
// image and a COPY --from image are keyed by their digests, not their names, so that a
// rebuilt or re-pushed image rebuilds what uses it.
func TestImagesAreKeyedByDigest(t *testing.T) {
	digests := map[string]string{"reg.example/app:v1": "sha256:aaaa", "reg.example/app:v1-alias": "sha256:aaaa", "tools": "sha256:cccc"}
	resolver := func(ctx context.Context, ref string, auth *spec.RegistryAuth, platform string) (string, error) {
		return digests[ref], nil
	}
	plan := func(base string) *strata.Plan {
		p, err := strata.FromRegistry(base).DockerfileCommands("COPY --from=tools /bin/tool /tool").
			Resolve(context.Background(), strata.WithHashCache(""), strata.WithImageResolver(resolver))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := plan("reg.example/app:v1")
	if first.Layers[0].Base.Digest != "sha256:aaaa" || len(first.Layers[1].Images) != 1 || first.Layers[1].Images[0] != (spec.ImageRef{Ref: "tools", Digest: "sha256:cccc"}) {
		t.Fatalf("resolved %+v %+v", first.Layers[0].Base, first.Layers[1].Images)
	}
	if alias := plan("reg.example/app:v1-alias"); alias.Layers[0].Key != first.Layers[0].Key {
		t.Error("the same digest under another name gave another key")
	}
	digests["tools"] = "sha256:dddd"
	if again := plan("reg.example/app:v1"); again.Layers[0].Key != first.Layers[0].Key || again.Layers[1].Key == first.Layers[1].Key {
		t.Error("rebuilding the --from image did not change (only) the key of the layer that copies from it")
	}
	digests["reg.example/app:v1"] = "sha256:bbbb"
	if moved := plan("reg.example/app:v1"); moved.Layers[0].Key == first.Layers[0].Key {
		t.Error("a tag that moved kept its key")
	}
	if _, err := strata.FromScratch().DockerfileCommands("COPY --from=$IMG /a /a").Resolve(context.Background(), strata.WithImageResolver(resolver)); err == nil || !strings.Contains(err.Error(), "write its reference literally") {
		t.Errorf("COPY --from=$VAR: %v", err)
	}
}

// TestSourceDateEpochIsInTheKey: a reproducible build must not reuse layers built without
// it, whose file times differ.
func TestSourceDateEpochIsInTheKey(t *testing.T) {
	img := strata.DebianSlim("3.13").RunCommands("echo hi > /f")
	t.Setenv("SOURCE_DATE_EPOCH", "")
	plain := resolve(t, img, t.TempDir())
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	epoch := resolve(t, img, t.TempDir())
	if plain.Layers[1].Key == epoch.Layers[1].Key || *epoch.Layers[1].SourceDateEpoch != 1700000000 {
		t.Error("SOURCE_DATE_EPOCH is not in the key")
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := img.Resolve(context.Background(), strata.WithHashCache("")); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Errorf("a bad SOURCE_DATE_EPOCH: %v", err)
	}
}

// TestBooleanEnvironment: STRATA_FORCE_BUILD and STRATA_IGNORE_CACHE take Go's booleans, and
// anything else is an error before anything is built.
func TestBooleanEnvironment(t *testing.T) {
	for _, v := range []string{"yes", "2", "on"} {
		t.Setenv("STRATA_FORCE_BUILD", v)
		_, err := strata.FromScratch().Build(context.Background(), strata.WithHome(t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), "STRATA_FORCE_BUILD") {
			t.Errorf("STRATA_FORCE_BUILD=%s: %v", v, err)
		}
	}
}

// TestPythonStandalone: the series Debian does not ship come from a pinned
// python-build-standalone build, fetched from STRATA_PYTHON_MIRROR and keyed by the archive's
// checksum, not by where it is fetched from; STRATA_PYTHON_STANDALONE names other builds,
// always with their checksums.
func TestPythonStandalone(t *testing.T) {
	if strata.HostPlatform() != "linux/amd64" {
		t.Skip("the pinned builds are for linux/amd64 images, which this machine's are not")
	}
	dir := fixture(t)
	plan := resolve(t, strata.DebianSlim("3.12"), dir)
	if len(plan.Layers) != 2 || plan.Layers[0].Base == nil || plan.Layers[0].Base.Python != "" || slices.Contains(plan.Layers[0].Base.Packages, "python3") {
		t.Fatalf("debian_slim 3.12: want a Debian base without Python and an add_python layer, got %+v", plan.Layers)
	}
	a := plan.Layers[1].Artifacts
	if len(a) != 1 || a[0].Version != "20240107/3.12.1" || !strings.HasPrefix(a[0].Digest, "sha256:") || len(a[0].Digest) != 71 ||
		a[0].URL != strata.DefaultPythonMirror+"/20240107/cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz" {
		t.Fatalf("add_python artifact: %+v", a)
	}
	key := plan.Layers[1].Key

	t.Setenv("STRATA_PYTHON_MIRROR", "http://127.0.0.1:1/pbs/")
	plan = resolve(t, strata.DebianSlim("3.12"), dir)
	if got := plan.Layers[1].Artifacts[0].URL; got != "http://127.0.0.1:1/pbs/20240107/cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz" {
		t.Errorf("mirror URL: %s", got)
	}
	if plan.Layers[1].Key != key {
		t.Errorf("the mirror changed the key")
	}

	_, err := strata.DebianSlim("3.12").Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""), strata.WithPlatform("linux/arm64"))
	if err == nil || !strings.Contains(err.Error(), "are for linux/amd64, and this image is for linux/arm64") {
		t.Errorf("debian_slim 3.12 for arm64: %v", err)
	}

	sum := strings.Repeat("ab", 32)
	t.Setenv("STRATA_PYTHON_STANDALONE", "3.12=20990101/3.12.9@sha256:"+sum)
	plan = resolve(t, strata.FromRegistryWith(strata.FromRegistryOptions{Tag: "debian:12", AddPython: "3.12"}), dir)
	if a := plan.Layers[0].Artifacts[0]; a.Digest != "sha256:"+sum || a.Version != "20990101/3.12.9" {
		t.Errorf("STRATA_PYTHON_STANDALONE: %+v", a)
	}
	t.Setenv("STRATA_PYTHON_MIRROR", "https://user:hunter22@mirror.example/pbs")
	_, err = strata.DebianSlim("3.12").Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""))
	if err == nil || !strings.Contains(err.Error(), "without credentials") || strings.Contains(err.Error(), "hunter22") {
		t.Errorf("a mirror with credentials: %v", err)
	}
	t.Setenv("STRATA_PYTHON_MIRROR", "")
	for _, bad := range []string{"3.12=20990101/3.12.9", "3.12=20990101/3.11.9@sha256:" + sum, "3.12t=20990101/3.12.9@sha256:" + sum} {
		t.Setenv("STRATA_PYTHON_STANDALONE", bad)
		_, err = strata.FromRegistryWith(strata.FromRegistryOptions{Tag: "debian:12", AddPython: "3.12"}).Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""))
		if err == nil || !strings.Contains(err.Error(), "STRATA_PYTHON_STANDALONE") {
			t.Errorf("STRATA_PYTHON_STANDALONE=%s: %v", bad, err)
		}
	}
}

// TestUvImage: uv's binary comes from UvImage tagged with the uv release, or from the
// repository STRATA_UV_IMAGE names; a value that is not a repository is an error naming it.
func TestUvImage(t *testing.T) {
	dir := fixture(t)
	copyFrom := func() string {
		p := resolve(t, strata.DebianSlim("").UvPipInstallWith(strata.UvPipInstallOptions{Packages: []string{"greet"}, UvVersion: "0.8.1"}), dir)
		return p.Layers[1].Instructions[0].String()
	}
	if got := copyFrom(); got != "COPY --from="+strata.UvImage+":0.8.1 /uv /.uv/uv" {
		t.Errorf("default: %s", got)
	}
	t.Setenv("STRATA_UV_IMAGE", "127.0.0.1:5000/mirror/uv")
	if got := copyFrom(); got != "COPY --from=127.0.0.1:5000/mirror/uv:0.8.1 /uv /.uv/uv" {
		t.Errorf("STRATA_UV_IMAGE: %s", got)
	}
	t.Setenv("STRATA_UV_IMAGE", "Not A Repo")
	_, err := strata.DebianSlim("").UvPipInstall("greet").Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""))
	if err == nil || !strings.Contains(err.Error(), `STRATA_UV_IMAGE "Not A Repo"`) {
		t.Errorf("a bad STRATA_UV_IMAGE: %v", err)
	}
}

// TestMicromambaImage: micromamba starts from MicromambaImage, or the image
// STRATA_MICROMAMBA_IMAGE names; a value that is not an image reference is an error naming it.
func TestMicromambaImage(t *testing.T) {
	dir := fixture(t)
	if p := resolve(t, strata.Micromamba("3.12"), dir); p.Layers[0].Base.Ref != strata.MicromambaImage {
		t.Errorf("default: %s", p.Layers[0].Base.Ref)
	}
	t.Setenv("STRATA_MICROMAMBA_IMAGE", "127.0.0.1:5000/mirror/micromamba:2.1.1")
	if p := resolve(t, strata.Micromamba("3.12"), dir); p.Layers[0].Base.Ref != "127.0.0.1:5000/mirror/micromamba:2.1.1" {
		t.Errorf("STRATA_MICROMAMBA_IMAGE: %s", p.Layers[0].Base.Ref)
	}
	t.Setenv("STRATA_MICROMAMBA_IMAGE", "Not A Ref")
	_, err := strata.Micromamba("3.12").Resolve(context.Background(), strata.WithDir(dir), strata.WithHashCache(""))
	if err == nil || !strings.Contains(err.Error(), `STRATA_MICROMAMBA_IMAGE: tag "Not A Ref"`) {
		t.Errorf("a bad STRATA_MICROMAMBA_IMAGE: %v", err)
	}
}

// TestPackageCachesGoToLayersThatRunCommands: apt's cache is lent to the steps of the user's
// own shell commands (run_commands, dockerfile_commands, a Dockerfile's RUN), which run
// apt-get more than anything else; a layer that runs nothing names no cache.
func TestPackageCachesGoToLayersThatRunCommands(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a", "x")
	write(t, dir, "Dockerfile", "FROM scratch\nCOPY a /a\nRUN apt-get install -y git\n")
	img := strata.FromScratch().
		RunCommands("apt-get update").
		DockerfileCommands("COPY a /b").
		DockerfileCommands("RUN true").
		Env(map[string]string{"A": "1"}).
		PipInstall("x")
	p := resolve(t, img, dir)
	want := [][]string{nil, {"apt"}, nil, {"apt"}, nil, {"pip"}}
	if len(p.Layers) != len(want) {
		t.Fatalf("%d layers, want %d", len(p.Layers), len(want))
	}
	for i, l := range p.Layers {
		if !slices.Equal(l.Caches, want[i]) {
			t.Errorf("layer %d (%s %s): caches %q, want %q", i, l.Method, l.Title, l.Caches, want[i])
		}
	}
	p = resolve(t, strata.FromDockerfile("Dockerfile"), dir)
	for i, want := range [][]string{nil, nil, {"apt"}} {
		if l := p.Layers[i]; !slices.Equal(l.Caches, want) {
			t.Errorf("Dockerfile layer %d (%s): caches %q, want %q", i, l.Title, l.Caches, want)
		}
	}
}
