package strata

import (
	"fmt"
	"regexp"
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

// pythonStandalone pins the python-build-standalone release used by add_python, per series.
var pythonStandalone = map[string][2]string{
	"3.10":  {"20230826", "3.10.13"},
	"3.11":  {"20230826", "3.11.5"},
	"3.12":  {"20240107", "3.12.1"},
	"3.13":  {"20241008", "3.13.0"},
	"3.14":  {"20251205", "3.14.2"},
	"3.14t": {"20251209", "3.14.2t"},
}

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

func debianSlimBase(version string) (*spec.Layer, error) {
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
	suite, ok := debianSuites[series]
	if !ok {
		return nil, fmt.Errorf("python_version %q is not supported by debian_slim: strata bootstraps it from Debian, which ships %s; use one of those, or start from an image that has Python %s, such as from_registry(\"python:%s-slim\")", version, supportedDebian(), series, series)
	}
	if strings.Count(strings.TrimSuffix(version, "t"), ".") == 2 {
		return nil, fmt.Errorf("python_version %q: debian_slim takes a series such as %q; the micro version is the one Debian %s ships", version, series, suite)
	}
	return &spec.Layer{
		Base: &spec.Base{
			Kind:     spec.BaseDebian,
			Ref:      "debian:" + suite + "-slim",
			Suite:    suite,
			Packages: debianSlimPackages,
			Python:   series,
		},
		Instructions: []spec.Instruction{
			// Modal's images allow system-wide pip installs; Debian marks its Python as
			// externally managed (PEP 668), so lift that.
			run("rm -f /usr/lib/python3*/EXTERNALLY-MANAGED"),
			run("echo 'debconf debconf/frontend select Noninteractive' | debconf-set-selections"),
			// As Debian's official images: apt keeps no downloaded packages, pip no cache, so
			// install steps do not carry them into their layers.
			run(`printf 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' > /etc/apt/apt.conf.d/docker-clean && rm -f /var/cache/apt/*.bin && printf '[global]\nno-cache-dir = true\n' > /etc/pip.conf`),
			{Op: spec.OpCmd, JSON: true, Args: []string{"python3"}},
		},
	}, nil
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
// Python into /usr/local.
func addPython(version string) ([]spec.Instruction, *spec.Artifact, error) {
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
	rel, ok := pythonStandalone[v]
	if !ok {
		var known []string
		for k := range pythonStandalone {
			known = append(known, k)
		}
		sort.Strings(known)
		return nil, nil, fmt.Errorf("add_python %q is not supported: use one of %s", version, strings.Join(known, ", "))
	}
	ins := []spec.Instruction{copyIn(nil, "/python/.", "/usr/local")}
	var minor int
	fmt.Sscanf(strings.TrimPrefix(strings.TrimSuffix(v, "t"), "3."), "%d", &minor)
	if minor < 13 {
		ins = append(ins, run("ln -s /usr/local/bin/python3 /usr/local/bin/python"))
	}
	ins = append(ins, spec.Instruction{Op: spec.OpEnv, Pairs: []spec.KV{{Key: "TERMINFO_DIRS", Value: "/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo"}}})
	return ins, &spec.Artifact{Name: "python-build-standalone", Version: rel[0] + "/" + rel[1], Path: "python"}, nil
}
