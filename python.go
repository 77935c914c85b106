package strata

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/strata-build/strata/spec"
)

// DefaultPython is the Python series of DebianSlim("") and Micromamba(""). Modal defaults to
// the local interpreter's version, which makes an image depend on the machine that defines
// it; strata's default is fixed.
const DefaultPython = "3.13"

// debianSuites maps a Python series to the Debian suite whose python3 it is.
var debianSuites = map[string]string{
	"3.11": "bookworm",
	"3.13": "trixie",
	"3.14": "sid",
}

// debianSlimPackages is what debian_slim holds beyond a minimal Debian, as Modal's does:
// Python with pip, wheel and venv, a C and Fortran toolchain, and CA certificates.
var debianSlimPackages = []string{
	"build-essential", "ca-certificates", "gcc", "gfortran",
	"python-is-python3", "python3", "python3-dev", "python3-pip", "python3-venv", "python3-wheel",
}

// standaloneSuite is the Debian suite under the python-build-standalone series of
// debian_slim: the stable release.
const standaloneSuite = "trixie"

// debianSlimToolchain is debian_slim's packages without Debian's Python, for the series that
// come from python-build-standalone (which has its own pip, venv and headers).
var debianSlimToolchain = []string{"build-essential", "ca-certificates", "gcc", "gfortran"}

// standalone is one python-build-standalone build: its release (a date), its full Python
// version, and the sha256 of its x86_64 install_only archive.
type standalone struct {
	Release, Version, SHA256 string
}

// pythonStandalone pins the python-build-standalone build that add_python (and debian_slim,
// for the series Debian does not ship) installs, per series, with the checksum of its
// archive. Modal pins the same releases for 3.10, 3.11 and 3.12, but its x86_64_v3 builds,
// which need a CPU with AVX2; these are the baseline x86_64 builds, which run on any amd64
// machine. 3.14 is 20251209's 3.14.2, not Modal's 20251205. 3.13 and 3.14t are not pinned:
// no checksum of their archives could be confirmed from here (3.13 comes from Debian for
// debian_slim). STRATA_PYTHON_STANDALONE names builds for them, or replaces these.
var pythonStandalone = map[string]standalone{
	"3.10": {"20230826", "3.10.13", "ba512bcca3ac6cb6d834f496cd0a66416f0a53ff20b05c4794fa82ece185b85a"},
	"3.11": {"20230826", "3.11.5", "fbed6f7694b2faae5d7c401a856219c945397f772eea5ca50c6eb825cbc9d1e1"},
	"3.12": {"20240107", "3.12.1", "74e330b8212ca22fd4d9a2003b9eec14892155566738febc8e5e572f267b9472"},
	"3.14": {"20251209", "3.14.2", "121c3249bef497adf601df76a4d89aed6053fc5ec2f8c0ec656b86f0142e8ddd"},
}

// DefaultPythonMirror is where python-build-standalone archives are fetched from:
// {mirror}/{release}/{file}. STRATA_PYTHON_MIRROR names another (a copy of the release
// files, for machines that cannot reach GitHub); the pinned checksums hold for it too.
const DefaultPythonMirror = "https://github.com/astral-sh/python-build-standalone/releases/download"

// micromambaPython lists the series Micromamba accepts.
var micromambaPython = []string{"3.10", "3.11", "3.12", "3.13", "3.14"}

var pythonRE = regexp.MustCompile(`^3(?:\.\d{1,2}){1,2}(rc\d*)?t?$`)

// checkPython validates a Python version string's form and returns its series ("3.13").
func checkPython(v string) (series string, err error) {
	if !pythonRE.MatchString(v) {
		return "", fmt.Errorf("invalid Python version %q: write it as \"3.13\"", v)
	}
	parts := strings.Split(strings.TrimSuffix(v, "t"), ".")
	series = parts[0] + "." + parts[1]
	if strings.HasSuffix(v, "t") {
		series += "t"
	}
	return series, nil
}

// debianSlim is debian_slim's layers: Debian bootstrapped from the suite that ships the
// series, or, for a series no suite ships (3.10, 3.12), Debian trixie without Python and a
// python-build-standalone build in /usr/local (as Modal's python:X.Y-slim bases have theirs).
func debianSlim(version, platform string) ([]*spec.Layer, error) {
	if version == "" {
		version = DefaultPython
	}
	series, err := checkPython(version)
	if err != nil {
		return nil, fmt.Errorf("python_version: %w", err)
	}
	if strings.HasSuffix(series, "t") {
		return nil, fmt.Errorf("python_version %q: free-threaded Python is not supported with debian_slim", version)
	}
	if strings.Count(version, ".") == 2 {
		return nil, fmt.Errorf("python_version %q: debian_slim takes a series such as %q", version, series)
	}
	suite, fromDebian := debianSuites[series]
	builds, err := standaloneBuilds()
	if err != nil {
		return nil, err
	}
	if _, ok := builds[series]; !fromDebian && !ok {
		var pinned []string
		for _, k := range slices.Sorted(maps.Keys(builds)) {
			if !strings.HasSuffix(k, "t") {
				pinned = append(pinned, k)
			}
		}
		return nil, fmt.Errorf("python_version %q is not supported by debian_slim: Debian ships %s, and python-build-standalone builds are pinned for %s (STRATA_PYTHON_STANDALONE names others)", version, supportedDebian(), strings.Join(pinned, ", "))
	}
	// Base.Python makes the bootstrap check that Debian's python3 is of the series.
	packages, python := debianSlimPackages, series
	if !fromDebian {
		suite, packages, python = standaloneSuite, debianSlimToolchain, ""
	}
	root := &spec.Layer{
		Base: &spec.Base{
			Kind:     spec.BaseDebian,
			Ref:      "debian:" + suite + "-slim",
			Suite:    suite,
			Packages: packages,
			Python:   python,
		},
		Instructions: []spec.Instruction{
			// Modal's images allow system-wide pip installs; Debian marks its Python as
			// externally managed (PEP 668), so lift that.
			run("rm -f /usr/lib/python3*/EXTERNALLY-MANAGED"),
			run("echo 'debconf debconf/frontend select Noninteractive' | debconf-set-selections"),
			// As Debian's official images: apt keeps no downloaded packages, so install steps do
			// not carry them into their layers.
			run(`printf 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' > /etc/apt/apt.conf.d/docker-clean && rm -f /var/cache/apt/*.bin`),
			// Nor does pip keep a cache in the image: a pip install in run_commands or at run
			// time writes none. The pip methods' steps use strata's pip cache on the host
			// instead, which is lent to them without this variable (an environment variable,
			// not pip.conf, because pip lets nothing re-enable a cache that pip.conf disables).
			{Op: spec.OpEnv, Pairs: []spec.KV{{Key: "PIP_NO_CACHE_DIR", Value: "1"}}},
		},
	}
	cmd := spec.Instruction{Op: spec.OpCmd, JSON: true, Args: []string{"python3"}}
	if fromDebian {
		root.Instructions = append(root.Instructions, cmd)
		return []*spec.Layer{root}, nil
	}
	ins, art, err := addPython(series, platform)
	if err != nil {
		return nil, err
	}
	py := &spec.Layer{Title: "add_python " + series, Instructions: append(ins, cmd), Artifacts: []spec.Artifact{*art}}
	return []*spec.Layer{root, py}, nil
}

func supportedDebian() string {
	var s []string
	for v, suite := range debianSuites {
		s = append(s, fmt.Sprintf("%s (%s)", v, suite))
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// addPython returns the instructions and artifact that install a python-build-standalone
// Python into /usr/local, as Modal's add_python does, for an image of the platform.
func addPython(version, platform string) ([]spec.Instruction, *spec.Artifact, error) {
	v := strings.TrimSuffix(version, "-gnu")
	if strings.Contains(v, "-") {
		return nil, nil, fmt.Errorf("add_python %q: unsupported libc identifier: only \"-gnu\" is available", version)
	}
	if _, err := checkPython(v); err != nil {
		return nil, nil, fmt.Errorf("add_python: %w", err)
	}
	if strings.Count(strings.TrimSuffix(v, "t"), ".") != 1 {
		return nil, nil, fmt.Errorf("add_python %q: Python version must be specified as 'major.minor' for this interface; micro-level specification is not valid", version)
	}
	if platform != "linux/amd64" {
		return nil, nil, fmt.Errorf("add_python %q: the python-build-standalone builds strata installs are for linux/amd64, and this image is for %s", version, platform)
	}
	builds, err := standaloneBuilds()
	if err != nil {
		return nil, nil, err
	}
	b, ok := builds[v]
	if !ok {
		var known []string
		for k := range builds {
			known = append(known, k)
		}
		sort.Strings(known)
		return nil, nil, fmt.Errorf("add_python %q is not supported: use one of %s (or name a python-build-standalone build for it in STRATA_PYTHON_STANDALONE)", version, strings.Join(known, ", "))
	}
	ins := []spec.Instruction{copyIn(nil, "/python/.", "/usr/local")}
	var minor int
	fmt.Sscanf(strings.TrimPrefix(strings.TrimSuffix(v, "t"), "3."), "%d", &minor)
	if minor < 13 {
		ins = append(ins, run("ln -s /usr/local/bin/python3 /usr/local/bin/python"))
	}
	ins = append(ins, spec.Instruction{Op: spec.OpEnv, Pairs: []spec.KV{{Key: "TERMINFO_DIRS", Value: "/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo"}}})
	mirror := strings.TrimSuffix(os.Getenv("STRATA_PYTHON_MIRROR"), "/")
	if mirror == "" {
		mirror = DefaultPythonMirror
	}
	// The URL goes into plans and logs: it may not carry credentials.
	if u, err := url.Parse(mirror); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
		return nil, nil, fmt.Errorf("STRATA_PYTHON_MIRROR %q: give an http(s) URL without credentials, under which RELEASE/FILE are served", redactURL(mirror))
	}
	return ins, &spec.Artifact{
		Name:    "python-build-standalone",
		Version: b.Release + "/" + b.Version,
		Path:    "python",
		Digest:  "sha256:" + b.SHA256,
		URL:     mirror + "/" + b.Release + "/" + b.file(),
	}, nil
}

// file is the name of the build's archive in its release.
func (b standalone) file() string {
	if v, ok := strings.CutSuffix(b.Version, "t"); ok {
		return "cpython-" + v + "+" + b.Release + "-x86_64-unknown-linux-gnu-freethreaded-install_only.tar.gz"
	}
	return "cpython-" + b.Version + "+" + b.Release + "-x86_64-unknown-linux-gnu-install_only.tar.gz"
}

var standaloneRE = regexp.MustCompile(`^(3\.\d{1,2}t?)=(\d{8})/(3\.\d{1,2}\.\d{1,2}t?)@sha256:([0-9a-f]{64})$`)

// standaloneBuilds are the pinned builds, with those STRATA_PYTHON_STANDALONE names:
// comma-separated SERIES=RELEASE/VERSION@sha256:HEX, such as
// "3.12=20240107/3.12.1@sha256:<64 hex digits>". A build is always named with its checksum.
func standaloneBuilds() (map[string]standalone, error) {
	env := os.Getenv("STRATA_PYTHON_STANDALONE")
	if env == "" {
		return pythonStandalone, nil
	}
	out := maps.Clone(pythonStandalone)
	for _, e := range strings.Split(env, ",") {
		m := standaloneRE.FindStringSubmatch(strings.TrimSpace(e))
		if m == nil {
			return nil, fmt.Errorf("STRATA_PYTHON_STANDALONE: %q is not SERIES=RELEASE/VERSION@sha256:HEX (such as 3.12=20240107/3.12.1@sha256:<the archive's 64 hex digits>)", e)
		}
		series, threaded := strings.CutSuffix(m[1], "t")
		if !strings.HasPrefix(m[3], series+".") || strings.HasSuffix(m[3], "t") != threaded {
			return nil, fmt.Errorf("STRATA_PYTHON_STANDALONE: %q: version %s is not of the series %s", e, m[3], m[1])
		}
		out[m[1]] = standalone{Release: m[2], Version: m[3], SHA256: m[4]}
	}
	return out, nil
}

// redactURL hides the password of a URL that has one.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(not a URL)"
}
