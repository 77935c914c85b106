package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/strata-build/strata"
)

// standaloneArchive makes a python-build-standalone install_only archive with the real
// layout (python/bin/python3.X, python/lib/python3.X) from this machine's own Python, which
// is what these machines have instead of the real releases. It returns the archive's path,
// its sha256 and the Python's version.
func standaloneArchive(t *testing.T) (string, string, string) {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", `import sys; print("%d.%d %d.%d.%d" % (sys.version_info[:2] + sys.version_info[:3]))`).Output()
	if err != nil {
		t.Skipf("no /usr/bin/python3 to make a python-build-standalone archive from: %v", err)
	}
	series, version, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	dir := t.TempDir()
	py := filepath.Join(dir, "python")
	for _, d := range []string{"bin", "lib"} {
		if err := os.MkdirAll(filepath.Join(py, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range [][]string{
		{"cp", "/usr/bin/python" + series, filepath.Join(py, "bin")},
		{"ln", "-s", "python" + series, filepath.Join(py, "bin", "python3")},
		{"cp", "-a", "/usr/lib/python" + series, filepath.Join(py, "lib")},
		{"tar", "-C", dir, "--exclude=__pycache__", "--exclude=dist-packages", "--owner=0", "--group=0", "-czf", filepath.Join(dir, "python.tar.gz"), "python"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	archive := filepath.Join(dir, "python.tar.gz")
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return archive, hex.EncodeToString(sum[:]), version
}

// TestAddPython: add_python on a registry image fetches the python-build-standalone build
// that the plan pins from STRATA_PYTHON_MIRROR, checks its checksum, and installs it into
// /usr/local, where it runs; a second build of the layer takes the archive from the store;
// an archive whose checksum is not the pinned one fails the build, naming both, and is not
// kept; add_python on a Dockerfile's image works the same. The archive is made from this
// machine's Python (the real releases cannot be reached here), in the real layout.
func TestAddPython(t *testing.T) {
	need(t, "runc", "mmdebstrap", "tar")
	archive, sum, version := standaloneArchive(t)
	series := version[:strings.LastIndex(version, ".")]
	const release = "20990101"
	file := "cpython-" + version + "+" + release + "-x86_64-unknown-linux-gnu-install_only.tar.gz"
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pbs/"+release+"/"+file {
			http.NotFound(w, r)
			return
		}
		gets.Add(1)
		http.ServeFile(w, r, archive)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("STRATA_PYTHON_MIRROR", srv.URL+"/pbs")

	reg := registry(t)
	pushImage(t, build(t, base(), "it-addpy-base"), reg+"/py/base:v1")
	img := strata.FromRegistryWith(strata.FromRegistryOptions{Tag: reg + "/py/base:v1", AddPython: series}).
		RunCommands("python --version > /python-version")

	// A checksum that is not the archive's: the build fails and keeps nothing.
	wrong := strings.Repeat("0", 64)
	t.Setenv("STRATA_PYTHON_STANDALONE", series+"="+release+"/"+version+"@sha256:"+wrong)
	_, err := img.Build(ctx(t), strata.WithHome(home), strata.WithName("it-addpy"), strata.WithResolveOptions(strata.WithHashCache("")))
	if err == nil || !strings.Contains(err.Error(), "is not the pinned build") || !strings.Contains(err.Error(), "sha256:"+sum) || !strings.Contains(err.Error(), "sha256:"+wrong) {
		t.Fatalf("a wrong checksum: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, "blobs", "sha256", sum)); err == nil {
		t.Errorf("the archive with the wrong checksum was kept in the store")
	}

	t.Setenv("STRATA_PYTHON_STANDALONE", series+"="+release+"/"+version+"@sha256:"+sum)
	b := build(t, img, "it-addpy")
	if got := run(t, b, "python", "-c", "import sys, ssl, json; print('%d.%d.%d' % sys.version_info[:3], sys.prefix, sys.executable)"); got != version+" /usr/local /usr/local/bin/python\n" {
		t.Errorf("the added Python: %q", got)
	}
	if got := run(t, b, "cat", "/python-version"); got != "Python "+version+"\n" {
		t.Errorf("python on PATH at build time: %q", got)
	}
	if got := run(t, b, "sh", "-c", "echo $TERMINFO_DIRS"); !strings.HasPrefix(got, "/etc/terminfo:") {
		t.Errorf("TERMINFO_DIRS: %q", got)
	}
	// One download for the failed build, one for this one; the forced rebuild takes the
	// archive from the store.
	if n := gets.Load(); n != 2 {
		t.Errorf("the archive was downloaded %d times, want 2", n)
	}
	build(t, img, "it-addpy", strata.WithForceBuild())
	if n := gets.Load(); n != 2 {
		t.Errorf("the forced rebuild downloaded the archive again (%d downloads in all)", n)
	}

	// add_python on a Dockerfile's image: a layer after the Dockerfile's.
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "FROM "+reg+"/py/base:v1\nRUN echo from-the-dockerfile > /df\n")
	df := build(t, strata.FromDockerfileWith(strata.FromDockerfileOptions{Path: filepath.Join(dir, "Dockerfile"), ContextDir: dir, AddPython: series}), "it-addpy-df")
	if got := run(t, df, "sh", "-c", "cat /df; python --version"); got != "from-the-dockerfile\nPython "+version+"\n" {
		t.Errorf("add_python on from_dockerfile: %q", got)
	}
}

// uvDouble is a test double of uv's binary, not uv: a script that records how it was called
// (its arguments, the python on PATH, and the files under /.uv with their digests) into
// /uv-invocations.txt, and fails as a resolver would for the package "fail-please".
const uvDouble = `#!/bin/sh
{
  echo "argv: $*"
  echo "python: $(command -v python)"
  find /.uv -type f ! -path /.uv/uv | sort | while read -r f; do echo "file: $f $(sha256sum < "$f" | cut -c1-64)"; done
} >> /uv-invocations.txt
case " $* " in *" fail-please "*) echo "uv-double: no solution found when resolving dependencies: fail-please was not found in the package registry" >&2; exit 1;; esac
`

// TestUvWithATestDouble: uv's image cannot be reached here, so the uv methods run against a
// test double of its binary (uvDouble), served as the real image would be, from a registry
// named by STRATA_UV_IMAGE and tagged with the uv release. uv_pip_install and uv_sync copy
// it from there and call it with exactly the arguments and files Modal's methods give it;
// its failure fails the layer with its message. Nothing here has run the real uv.
func TestUvWithATestDouble(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	reg := registry(t)
	dir := t.TempDir()
	write(t, dir, "uv", uvDouble)
	double := build(t, strata.FromScratch().DockerfileCommands("COPY --chmod=755 uv /uv"), "it-uv-double", strata.WithResolveOptions(strata.WithDir(dir)))
	pushImage(t, double, reg+"/double/uv:"+strata.DefaultUvVersion)
	t.Setenv("STRATA_UV_IMAGE", reg+"/double/uv")

	write(t, dir, "reqs.txt", "greet==1.0\n")
	write(t, dir, "proj/pyproject.toml", "[project]\nname = \"proj\"\nversion = \"0.1\"\ndependencies = [\"greet\"]\n")
	write(t, dir, "proj/uv.lock", "version = 1\n")
	sum := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	img := base().
		UvPipInstallWith(strata.UvPipInstallOptions{Packages: []string{"b-pkg", "a-pkg"}, Requirements: []string{"reqs.txt"}, PipOptions: strata.PipOptions{IndexURL: "http://127.0.0.1:9/simple"}}).
		UvSyncWith(strata.UvSyncOptions{UvProjectDir: "proj", Groups: []string{"dev"}, Extras: []string{"gpu"}})
	b := build(t, img, "it-uv", strata.WithResolveOptions(strata.WithDir(dir)))
	want := "argv: pip install --python /usr/bin/python --compile-bytecode --index-url http://127.0.0.1:9/simple --requirements /.uv/0/reqs.txt a-pkg b-pkg\n" +
		"python: /usr/bin/python\n" +
		"file: /.uv/0/reqs.txt " + sum("reqs.txt") + "\n" +
		"argv: sync --project=/.uv --no-install-workspace --compile-bytecode --group=dev --extra=gpu --frozen\n" +
		"python: /usr/bin/python\n" +
		"file: /.uv/0/reqs.txt " + sum("reqs.txt") + "\n" +
		"file: /.uv/pyproject.toml " + sum("proj/pyproject.toml") + "\n" +
		"file: /.uv/uv.lock " + sum("proj/uv.lock") + "\n"
	if got := run(t, b, "cat", "/uv-invocations.txt"); got != want {
		t.Errorf("the double's invocations:\n%s\nwant:\n%s", got, want)
	}
	if got := run(t, b, "sh", "-c", "echo $PATH"); !strings.HasPrefix(got, "/.uv/.venv/bin:") {
		t.Errorf("PATH after uv_sync: %q", got)
	}

	_, err := base().UvPipInstall("fail-please").Build(ctx(t), strata.WithHome(home), strata.WithName("it-uv-fail"), strata.WithResolveOptions(strata.WithHashCache("")))
	var be *strata.BuildError
	if !errors.As(err, &be) || be.Method != "uv_pip_install" || !strings.Contains(err.Error(), "uv-double: no solution found") || !strings.Contains(err.Error(), "exit code 1") {
		t.Errorf("a failing uv: %v", err)
	}
}

// micromambaShellDouble and micromambaDouble stand in for what mambaorg/micromamba's image
// gives a Dockerfile: the SHELL script that runs each RUN in the activated environment, and
// the micromamba binary. They are test doubles, not micromamba: they record the command each
// RUN gave the shell, micromamba's arguments and the spec files it was given, into
// /micromamba-invocations.txt; micromamba fails as a solver would for "fail-please".
const (
	micromambaShellDouble = `#!/bin/sh
echo "shell: $*" >> /micromamba-invocations.txt
exec /bin/sh -c "$*"
`
	micromambaDouble = `#!/bin/sh
echo "argv: $*" >> /micromamba-invocations.txt
prev=
for a in "$@"; do
  [ "$prev" = -f ] && echo "file: $a $(sha256sum < "$a" | cut -c1-64)" >> /micromamba-invocations.txt
  prev=$a
done
case " $* " in *" fail-please "*) echo "micromamba-double: error: libmamba Could not solve for environment specs: nothing provides fail-please" >&2; exit 1;; esac
`
)

// TestMicromambaWithATestDouble: the micromamba image cannot be reached here, so micromamba
// and micromamba_install build on a test double of it (a Debian image with the doubles
// above), pushed to a local registry and named by STRATA_MICROMAMBA_IMAGE. The RUN steps go
// through the image's shell script with exactly Modal's commands; the spec file reaches
// micromamba; its failure fails the layer with its message. Nothing here has run the real
// micromamba.
func TestMicromambaWithATestDouble(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	reg := registry(t)
	dir := t.TempDir()
	write(t, dir, "shell.sh", micromambaShellDouble)
	write(t, dir, "micromamba", micromambaDouble)
	write(t, dir, "env.yml", "name: base\ndependencies:\n  - numpy\n")
	double := build(t, base().DockerfileCommands(
		"COPY --chmod=755 shell.sh /usr/local/bin/_dockerfile_shell.sh",
		"COPY --chmod=755 micromamba /usr/local/bin/micromamba",
	), "it-micromamba-double", strata.WithResolveOptions(strata.WithDir(dir)))
	pushImage(t, double, reg+"/double/micromamba:test")
	t.Setenv("STRATA_MICROMAMBA_IMAGE", reg+"/double/micromamba:test")

	img := strata.Micromamba("3.12").MicromambaInstallWith(strata.MicromambaInstallOptions{
		Packages: []string{"scipy", "numpy"}, SpecFile: "env.yml", Channels: []string{"conda-forge", "bioconda"},
	})
	b := build(t, img, "it-micromamba", strata.WithResolveOptions(strata.WithDir(dir)))
	envSum := sha256.Sum256([]byte("name: base\ndependencies:\n  - numpy\n"))
	want := "shell: micromamba install -n base -y python=3.12 pip -c conda-forge\n" +
		"argv: install -n base -y python=3.12 pip -c conda-forge\n" +
		"shell: micromamba install scipy numpy -f /env.yml -n base -c conda-forge -c bioconda --yes\n" +
		"argv: install scipy numpy -f /env.yml -n base -c conda-forge -c bioconda --yes\n" +
		"file: /env.yml " + hex.EncodeToString(envSum[:]) + "\n"
	if got := run(t, b, "cat", "/micromamba-invocations.txt"); got != want {
		t.Errorf("the doubles' invocations:\n%s\nwant:\n%s", got, want)
	}
	if got := run(t, b, "sh", "-c", "echo $MAMBA_DOCKERFILE_ACTIVATE"); got != "1\n" {
		t.Errorf("MAMBA_DOCKERFILE_ACTIVATE: %q", got)
	}

	_, err := strata.Micromamba("3.12").MicromambaInstall("fail-please").Build(ctx(t), strata.WithHome(home), strata.WithName("it-micromamba-fail"), strata.WithResolveOptions(strata.WithHashCache("")))
	var be *strata.BuildError
	if !errors.As(err, &be) || be.Method != "micromamba_install" || !strings.Contains(err.Error(), "nothing provides fail-please") {
		t.Errorf("a failing micromamba: %v", err)
	}
}
