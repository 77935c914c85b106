package integration

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/pyindex"
	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/secrets"
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

// standaloneMirror serves a python-build-standalone archive (standaloneArchive) as
// STRATA_PYTHON_MIRROR, which it sets, and counts its downloads.
type standaloneMirror struct {
	series, version, sum, release string
	gets                          atomic.Int32
}

func pythonMirror(t *testing.T) *standaloneMirror {
	t.Helper()
	archive, sum, version := standaloneArchive(t)
	m := &standaloneMirror{series: version[:strings.LastIndex(version, ".")], version: version, sum: sum, release: "20990101"}
	file := "cpython-" + version + "+" + m.release + "-x86_64-unknown-linux-gnu-install_only.tar.gz"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pbs/"+m.release+"/"+file {
			http.NotFound(w, r)
			return
		}
		m.gets.Add(1)
		http.ServeFile(w, r, archive)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("STRATA_PYTHON_MIRROR", srv.URL+"/pbs")
	return m
}

// pin sets STRATA_PYTHON_STANDALONE to the mirror's archive.
func (m *standaloneMirror) pin(t *testing.T) {
	t.Setenv("STRATA_PYTHON_STANDALONE", m.series+"="+m.release+"/"+m.version+"@sha256:"+m.sum)
}

// TestAddPython: add_python on a registry image fetches the python-build-standalone build
// that the plan pins from STRATA_PYTHON_MIRROR, checks its checksum, and installs it into
// /usr/local, where it runs; a second build of the layer takes the archive from the store;
// an archive whose checksum is not the pinned one fails the build, naming both, and is not
// kept; add_python on a Dockerfile's image works the same. The archive is made from this
// machine's Python (the real releases cannot be reached here), in the real layout.
func TestAddPython(t *testing.T) {
	need(t, "runc", "mmdebstrap", "tar")
	m := pythonMirror(t)
	series, version, sum, release, gets := m.series, m.version, m.sum, m.release, &m.gets

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

	m.pin(t)
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
  echo "cache: $UV_CACHE_DIR $UV_LINK_MODE $(test -d "$UV_CACHE_DIR" && test -w "$UV_CACHE_DIR" && echo writable)"
  find /.uv -type f ! -path /.uv/uv | sort | while read -r f; do echo "file: $f $(sha256sum < "$f" | cut -c1-64)"; done
} >> /uv-invocations.txt
case " $* " in *" fail-please "*) echo "uv-double: no solution found when resolving dependencies: fail-please was not found in the package registry" >&2; exit 1;; esac
`

// pushUvDouble pushes an image of uvDouble to reg as strata looks for uv's (tagged with the
// uv release) and returns what STRATA_UV_IMAGE names.
func pushUvDouble(t *testing.T, reg string) string {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "uv", uvDouble)
	double := build(t, strata.FromScratch().DockerfileCommands("COPY --chmod=755 uv /uv"), "it-uv-double", strata.WithResolveOptions(strata.WithDir(dir)))
	pushImage(t, double, reg+"/double/uv:"+strata.DefaultUvVersion)
	return reg + "/double/uv"
}

// TestUvWithATestDouble: uv's image cannot be reached here, so the uv methods run against a
// test double of its binary (uvDouble), served as the real image would be, from a registry
// named by STRATA_UV_IMAGE and tagged with the uv release. uv_pip_install and uv_sync copy
// it from there and call it with exactly the arguments and files Modal's methods give it;
// its failure fails the layer with its message. Nothing here has run the real uv.
func TestUvWithATestDouble(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	t.Setenv("STRATA_UV_IMAGE", pushUvDouble(t, registry(t)))
	dir := t.TempDir()
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
		"cache: /.strata-cache/uv copy writable\n" +
		"file: /.uv/0/reqs.txt " + sum("reqs.txt") + "\n" +
		"argv: sync --project=/.uv --no-install-workspace --compile-bytecode --group=dev --extra=gpu --frozen\n" +
		"python: /usr/bin/python\n" +
		"cache: /.strata-cache/uv copy writable\n" +
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
echo "pkgs: $CONDA_PKGS_DIRS $CONDA_ALWAYS_COPY $(test -d "$CONDA_PKGS_DIRS" && test -w "$CONDA_PKGS_DIRS" && echo writable)" >> /micromamba-invocations.txt
prev=
for a in "$@"; do
  [ "$prev" = -f ] && echo "file: $a $(sha256sum < "$a" | cut -c1-64)" >> /micromamba-invocations.txt
  prev=$a
done
case " $* " in *" fail-please "*) echo "micromamba-double: error: libmamba Could not solve for environment specs: nothing provides fail-please" >&2; exit 1;; esac
`
)

// pushMicromambaDouble pushes a Debian image with micromambaShellDouble and micromambaDouble
// to reg and returns what STRATA_MICROMAMBA_IMAGE names.
func pushMicromambaDouble(t *testing.T, reg string) string {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "shell.sh", micromambaShellDouble)
	write(t, dir, "micromamba", micromambaDouble)
	double := build(t, base().DockerfileCommands(
		"COPY --chmod=755 shell.sh /usr/local/bin/_dockerfile_shell.sh",
		"COPY --chmod=755 micromamba /usr/local/bin/micromamba",
	), "it-micromamba-double", strata.WithResolveOptions(strata.WithDir(dir)))
	pushImage(t, double, reg+"/double/micromamba:test")
	return reg + "/double/micromamba:test"
}

// TestMicromambaWithATestDouble: the micromamba image cannot be reached here, so micromamba
// and micromamba_install build on a test double of it (a Debian image with the doubles
// above), pushed to a local registry and named by STRATA_MICROMAMBA_IMAGE. The RUN steps go
// through the image's shell script with exactly Modal's commands; the spec file reaches
// micromamba; its failure fails the layer with its message. Nothing here has run the real
// micromamba.
func TestMicromambaWithATestDouble(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	t.Setenv("STRATA_MICROMAMBA_IMAGE", pushMicromambaDouble(t, registry(t)))
	dir := t.TempDir()
	write(t, dir, "env.yml", "name: base\ndependencies:\n  - numpy\n")

	img := strata.Micromamba("3.12").MicromambaInstallWith(strata.MicromambaInstallOptions{
		Packages: []string{"scipy", "numpy"}, SpecFile: "env.yml", Channels: []string{"conda-forge", "bioconda"},
	})
	b := build(t, img, "it-micromamba", strata.WithResolveOptions(strata.WithDir(dir)))
	envSum := sha256.Sum256([]byte("name: base\ndependencies:\n  - numpy\n"))
	want := "shell: micromamba install -n base -y python=3.12 pip -c conda-forge\n" +
		"argv: install -n base -y python=3.12 pip -c conda-forge\n" +
		"pkgs: /.strata-cache/micromamba true writable\n" +
		"shell: micromamba install scipy numpy -f /env.yml -n base -c conda-forge -c bioconda --yes\n" +
		"argv: install scipy numpy -f /env.yml -n base -c conda-forge -c bioconda --yes\n" +
		"pkgs: /.strata-cache/micromamba true writable\n" +
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

// privateBackend is an in-tree PEP 517 build backend (pip builds with it without fetching
// anything: the machines have no PyPI) that builds greet-private 1.0 as a wheel.
const privateBackend = `import base64, hashlib, os, zipfile

DIST = "greet_private-1.0"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = [
        ("greet_private/__init__.py", open("greet_private/__init__.py", "rb").read()),
        (DIST + ".dist-info/METADATA", b"Metadata-Version: 2.1\nName: greet-private\nVersion: 1.0\n"),
        (DIST + ".dist-info/WHEEL", b"Wheel-Version: 1.0\nGenerator: strata-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    name = DIST + "-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, data in files:
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
        record.append(DIST + ".dist-info/RECORD,,")
        z.writestr(DIST + ".dist-info/RECORD", "\n".join(record) + "\n")
    return name
`

// privateGitHub serves a bare git repository, github.com/acme/greet-private, over https on
// 127.0.0.1:443 with git's dumb http protocol, to the user gituser with the password token
// only, and makes github.com this machine for the test (in /etc/hosts, which build steps
// get a copy of; restored after the test). It returns the CA that signed its certificate.
func privateGitHub(t *testing.T, token string) (caPEM string) {
	t.Helper()
	src := t.TempDir()
	write(t, src, "pyproject.toml", "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n")
	write(t, src, "backend.py", privateBackend)
	write(t, src, "greet_private/__init__.py", "def hello():\n    return 'hello from a private repository'\n")
	served := t.TempDir()
	bare := filepath.Join(served, "acme", "greet-private")
	for _, c := range [][]string{
		{"git", "-C", src, "init", "-q", "-b", "main"},
		{"git", "-C", src, "add", "."},
		{"git", "-C", src, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "greet-private 1.0"},
		{"git", "clone", "-q", "--bare", src, bare},
		{"git", "-C", bare, "update-server-info"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	ca, cert, key := selfSignedCA(t, "github.com")
	pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	if rootless.Active() {
		t.Skip("serves github.com on port 443, which an ordinary user may not bind, and edits /etc/hosts: it runs in the root run of the suite")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:443")
	if err != nil {
		t.Skipf("port 443 is taken, and github.com must be served there: %v", err)
	}
	files := http.FileServer(http.Dir(served))
	srv := &http.Server{TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "gituser" || p != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="github.com"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		files.ServeHTTP(w, r)
	})}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/etc/hosts", append(append([]byte(nil), hosts...), "127.0.0.1 github.com\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile("/etc/hosts", hosts, 0o644) })
	return ca
}

// TestPipInstallPrivateRepos: pip_install_private_repos installs a package from a private
// "GitHub" repository (served here, see privateGitHub) over https with the token of a
// named secret; the token is in no layer, config, history or log. A wrong token fails the
// layer, and its log shows git's message (and not the token).
func TestPipInstallPrivateRepos(t *testing.T) {
	need(t, "runc", "mmdebstrap", "git")
	token := "ghp-" + strings.ReplaceAll(unique(t), "/", "-")
	ca := privateGitHub(t, token)
	st := secrets.Open(filepath.Join(home, "secrets"))
	for name, v := range map[string]string{"it-gh": token, "it-gh-wrong": "ghp-not-the-token"} {
		if err := st.Create(name, map[string]string{"GITHUB_TOKEN": v}); err != nil {
			t.Fatal(err)
		}
	}
	// This machine trusts the test's CA, as a company's machines trust its own; build steps
	// get the host's CA bundle.
	bundle, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Skipf("no host CA bundle to add the test's CA to: %v", err)
	}
	if err := os.WriteFile("/etc/ssl/certs/ca-certificates.crt", append(append([]byte(nil), bundle...), ca...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile("/etc/ssl/certs/ca-certificates.crt", bundle, 0o644) })
	repos := func(secret string) strata.Image {
		return base().PipInstallPrivateReposWith(strata.PipInstallPrivateReposOptions{
			Repositories: []string{"github.com/acme/greet-private"}, GitUser: "gituser", LayerOptions: strata.LayerOptions{Secrets: []string{secret}},
		})
	}
	b := build(t, repos("it-gh"), "it-private")
	if got := run(t, b, "python3", "-c", "import greet_private; print(greet_private.hello())"); got != "hello from a private repository\n" {
		t.Errorf("the private package: %q", got)
	}
	if scanned, layers := notInExport(t, "it-private", token); scanned < 6 || layers != 2 {
		t.Errorf("scanned %d files, %d of them layers: the export is not what the scan expects", scanned, layers)
	}
	notInLogs(t, token, "")

	_, err = repos("it-gh-wrong").Build(ctx(t), strata.WithHome(home), strata.WithName("it-private-wrong"), strata.WithResolveOptions(strata.WithHashCache("")))
	var be *strata.BuildError
	if !errors.As(err, &be) || be.Method != "pip_install_private_repos" || be.ExitCode != 1 {
		t.Fatalf("a wrong token: %v", err)
	}
	if log, err := os.ReadFile(be.Log); err != nil || !strings.Contains(string(log), "Authentication failed for 'https://github.com/acme/greet-private/'") {
		t.Errorf("the log of a wrong token does not show git's message: %v\n%s", err, log)
	}
	notInLogs(t, "ghp-not-the-token", "")
}

// TestPipOptionsAndFiles: every pip method and option, against local indexes of real wheels:
// pip_install with index_url and pre (a release candidate wins), extra_index_url, find_links
// (with --no-index in extra_options); pip_install_from_requirements; pip_install_from_pyproject
// with an optional dependency group. A missing package and an index that does not answer fail
// the layer with pip's own message.
func TestPipOptionsAndFiles(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	wheel := func(name, version string) (string, []byte) {
		mod := strings.ReplaceAll(name, "-", "_")
		return pyindex.WheelName(name, version), pyindex.Wheel(name, version, map[string]string{mod + "/__init__.py": "VERSION = '" + version + "'\n"})
	}
	index := func(pkgs ...[2]string) string {
		m := map[string][]byte{}
		for _, p := range pkgs {
			n, w := wheel(p[0], p[1])
			m[n] = w
		}
		return packageIndex(t, m)
	}
	main := index([2]string{"greet", "1.0"}, [2]string{"greet", "2.0rc1"}, [2]string{"req-pkg", "1.0"}, [2]string{"dep-pkg", "1.0"}, [2]string{"dev-pkg", "1.0"})
	extra := index([2]string{"extra-pkg", "1.0"})
	links := index([2]string{"linked-pkg", "1.0"})
	dir := t.TempDir()
	write(t, dir, "reqs.txt", "req-pkg==1.0\n")
	write(t, dir, "pyproject.toml", "[project]\nname = \"app\"\nversion = \"0.1\"\ndependencies = [\"dep-pkg\"]\n\n[project.optional-dependencies]\ndev = [\"dev-pkg\"]\nother = [\"not-installed\"]\n")
	img := base().
		PipInstallWith(strata.PipInstallOptions{Packages: []string{"greet"}, PipOptions: strata.PipOptions{IndexURL: main, Pre: true}}).
		PipInstallWith(strata.PipInstallOptions{Packages: []string{"extra-pkg"}, PipOptions: strata.PipOptions{IndexURL: main, ExtraIndexURL: extra}}).
		PipInstallWith(strata.PipInstallOptions{Packages: []string{"linked-pkg"}, PipOptions: strata.PipOptions{FindLinks: strings.TrimSuffix(links, "/simple") + "/simple/linked-pkg/", ExtraOptions: "--no-index"}}).
		PipInstallFromRequirementsWith(strata.PipInstallFromRequirementsOptions{RequirementsTxt: "reqs.txt", PipOptions: strata.PipOptions{IndexURL: main}}).
		PipInstallFromPyprojectWith(strata.PipInstallFromPyprojectOptions{PyprojectToml: "pyproject.toml", OptionalDependencies: []string{"dev"}, PipOptions: strata.PipOptions{IndexURL: main}})
	b := build(t, img, "it-pip-options", strata.WithResolveOptions(strata.WithDir(dir)))
	const show = `import importlib.metadata as m
for d in ["greet", "extra-pkg", "linked-pkg", "req-pkg", "dep-pkg", "dev-pkg"]:
    print(d, m.version(d))
try:
    m.version("not-installed")
    print("not-installed is installed")
except m.PackageNotFoundError:
    pass`
	if got := run(t, b, "python3", "-c", show); got != "greet 2.0rc1\nextra-pkg 1.0\nlinked-pkg 1.0\nreq-pkg 1.0\ndep-pkg 1.0\ndev-pkg 1.0\n" {
		t.Errorf("installed:\n%s", got)
	}

	for _, c := range []struct {
		name string
		o    strata.PipOptions
		want string
	}{
		{"missing package", strata.PipOptions{IndexURL: main}, "No matching distribution found for no-such-pkg"},
		{"index that does not answer", strata.PipOptions{IndexURL: "http://127.0.0.1:9/simple", ExtraOptions: "--retries 1"}, "Connection refused"},
	} {
		_, err := base().PipInstallWith(strata.PipInstallOptions{Packages: []string{"no-such-pkg"}, PipOptions: c.o}).
			Build(ctx(t), strata.WithHome(home), strata.WithName("it-pip-fail"), strata.WithResolveOptions(strata.WithHashCache("")))
		var be *strata.BuildError
		if !errors.As(err, &be) || be.Method != "pip_install" || be.Index != 1 {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		log, err := os.ReadFile(be.Log)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), c.want) {
			t.Errorf("%s: the log does not show pip's %q:\n%s", c.name, c.want, log)
		}
	}
}

// TestPoetry: poetry_install_from_file installs a project's locked dependencies from a local
// index, with a group added and one left out, with the poetry Debian ships (python3-poetry;
// poetry_version "none" uses the image's) and with a pinned poetry_version installed by pip
// from the same index. The lock file is made by Debian's poetry, in a container. PyPI cannot
// be reached here, so the index serves poetry and its dependencies as wheels that
// testdata/poetry-wheels.py makes from the files Debian installed: the same poetry, as pip
// installs it from wheels.
func TestPoetry(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	withPoetry := base().AptInstall("python3-poetry")
	pb := build(t, withPoetry, "it-poetry-base")
	wheelDir := t.TempDir()
	script, err := filepath.Abs("testdata/poetry-wheels.py")
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := pb.Run(ctx(t), strata.RunOptions{Args: []string{"python3", "/fixture/poetry-wheels.py", "/wheels"},
		Binds: []strata.Bind{{Source: filepath.Dir(script), Target: "/fixture"}, {Source: wheelDir, Target: "/wheels"}}, Stdout: &out, Stderr: &errb}); err != nil {
		t.Fatalf("making poetry's wheels: %v\n%s%s", err, out.String(), errb.String())
	}
	wheels := map[string][]byte{}
	poetryVersion := ""
	for _, f := range strings.Fields(out.String()) {
		b, err := os.ReadFile(filepath.Join(wheelDir, f))
		if err != nil {
			t.Fatal(err)
		}
		wheels[f] = b
		if v, ok := strings.CutPrefix(f, "poetry-"); ok {
			poetryVersion = strings.SplitN(v, "-", 2)[0]
		}
	}
	if poetryVersion == "" {
		t.Fatalf("no poetry wheel was made: %s", out.String())
	}
	for _, p := range [][2]string{{"dep-pkg", "1.0"}, {"dep-pkg", "1.1"}, {"dev-pkg", "1.0"}, {"docs-pkg", "1.0"}} {
		wheels[pyindex.WheelName(p[0], p[1])] = pyindex.Wheel(p[0], p[1], map[string]string{strings.ReplaceAll(p[0], "-", "_") + "/__init__.py": ""})
	}
	idx := packageIndex(t, wheels)
	dir := t.TempDir()
	write(t, dir, "pyproject.toml", `[tool.poetry]
name = "app"
version = "0.1.0"
description = ""
authors = ["strata tests"]
package-mode = false

[tool.poetry.dependencies]
python = "^3.11"
dep-pkg = "1.0"

[tool.poetry.group.dev.dependencies]
dev-pkg = "*"

[tool.poetry.group.docs.dependencies]
docs-pkg = "*"

[[tool.poetry.source]]
name = "local"
url = "`+idx+`/"
priority = "primary"
`)
	out.Reset()
	errb.Reset()
	if err := pb.Run(ctx(t), strata.RunOptions{Args: []string{"poetry", "lock"}, Binds: []strata.Bind{{Source: dir, Target: "/project"}}, Workdir: "/project", Stdout: &out, Stderr: &errb}); err != nil {
		t.Fatalf("poetry lock: %v\n%s%s", err, out.String(), errb.String())
	}
	const show = `import importlib.metadata as m
for d in ["dep-pkg", "dev-pkg", "docs-pkg"]:
    try:
        print(d, m.version(d))
    except m.PackageNotFoundError:
        print(d, "absent")`
	const want = "dep-pkg 1.0\ndev-pkg 1.0\ndocs-pkg absent\n"
	groups := strata.PoetryInstallFromFileOptions{PoetryPyprojectToml: filepath.Join(dir, "pyproject.toml"), With: []string{"dev"}, Without: []string{"docs"}}

	t.Run("debian's poetry", func(t *testing.T) {
		o := groups
		o.PoetryVersion = "none"
		b := build(t, withPoetry.PoetryInstallFromFileWith(o), "it-poetry")
		if got := run(t, b, "python3", "-c", show); got != want {
			t.Errorf("installed:\n%s", got)
		}
	})
	t.Run("poetry installed with pip", func(t *testing.T) {
		o := groups
		o.PoetryVersion = poetryVersion
		o.Env = map[string]string{"PIP_INDEX_URL": idx, "PIP_TRUSTED_HOST": "127.0.0.1"}
		b := build(t, base().PoetryInstallFromFileWith(o), "it-poetry-pip")
		if got := run(t, b, "python3", "-c", show); got != want {
			t.Errorf("installed:\n%s", got)
		}
		if got := run(t, b, "sh", "-c", "command -v poetry; poetry --version"); got != "/usr/local/bin/poetry\nPoetry (version "+poetryVersion+")\n" {
			t.Errorf("the poetry pip installed: %q", got)
		}
		if _, err := os.Stat(filepath.Join(home, "caches", "poetry")); err != nil {
			t.Errorf("poetry's cache on the host: %v", err)
		}
	})
}
