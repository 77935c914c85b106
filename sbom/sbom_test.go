package sbom

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/sbomtest"
)

func write(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const statusBefore = `Package: base-files
Status: install ok installed
Architecture: amd64
Version: 13.8

Package: oldpkg
Status: install ok installed
Architecture: amd64
Version: 1.0

Package: gone-config
Status: deinstall ok config-files
Architecture: amd64
Version: 2.0
`

const statusAfter = `Package: base-files
Status: install ok installed
Architecture: amd64
Version: 13.8

Package: hello
Status: install ok installed
Architecture: amd64
Version: 2.10-5
Description: example
 Package: not-a-field

Package: oldpkg
Status: install ok installed
Architecture: amd64
Version: 1:1.1+dfsg-2
`

func TestScanLayer(t *testing.T) {
	dir := t.TempDir()
	sp := "usr/local/lib/python3.13/site-packages"
	write(t, dir, sp+"/greet-2.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: greet\nVersion: 2.0\n\nName: not-this\n")
	write(t, dir, sp+"/greet/__init__.py", "")
	write(t, dir, sp+"/Old_Style-0.5.egg-info", "Metadata-Version: 1.0\nName: Old_Style\nVersion: 0.5\n")
	write(t, dir, "usr/lib/python3/dist-packages/poetry-1.8.dist-info/METADATA", "Name: poetry\nVersion: 1.8\n")
	write(t, dir, "opt/conda/conda-meta/numpy-1.26.4-py311h1.json", `{"name": "numpy", "version": "1.26.4", "channel": "https://conda.anaconda.org/conda-forge/linux-64", "subdir": "linux-64", "build": "py311h1"}`)
	write(t, dir, "opt/conda/conda-meta/history", "")
	write(t, dir, DpkgStatus, statusAfter)
	whiteouts := os.Geteuid() == 0
	if whiteouts {
		if err := unix.Mknod(filepath.Join(dir, sp, "greet-1.0.dist-info"), unix.S_IFCHR, 0); err != nil {
			t.Fatal(err)
		}
		// A venv deleted whole, and one replaced (an opaque folder with a new package).
		os.MkdirAll(filepath.Join(dir, "opt"), 0o755)
		if err := unix.Mknod(filepath.Join(dir, "opt/oldvenv"), unix.S_IFCHR, 0); err != nil {
			t.Fatal(err)
		}
		write(t, dir, "opt/venv/lib/python3.13/site-packages/fresh-1.0.dist-info/METADATA", "Name: fresh\nVersion: 1.0\n")
		if err := unix.Lsetxattr(filepath.Join(dir, "opt/venv"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			t.Fatal(err)
		}
	}
	c, err := ScanLayer(dir, []byte(statusBefore))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Type: Conda, Name: "numpy", Version: "1.26.4", Path: "/opt/conda", Channel: "conda-forge", Subdir: "linux-64", Build: "py311h1"},
		{Type: Deb, Name: "hello", Version: "2.10-5", Arch: "amd64"},
		{Type: Deb, Name: "oldpkg", Version: "1:1.1+dfsg-2", Arch: "amd64"},
		{Type: PyPI, Name: "greet", Version: "2.0", Path: "/" + sp},
		{Type: PyPI, Name: "Old_Style", Version: "0.5", Path: "/" + sp},
		{Type: PyPI, Name: "poetry", Version: "1.8", Path: "/usr/lib/python3/dist-packages"},
	}
	if whiteouts {
		want = append(want, Package{Type: PyPI, Name: "fresh", Version: "1.0", Path: "/opt/venv/lib/python3.13/site-packages"})
		sortPackages(want)
	}
	if !reflect.DeepEqual(c.Added, want) {
		t.Errorf("added:\n got %+v\nwant %+v", c.Added, want)
	}
	if whiteouts {
		if want := []Package{{Type: PyPI, Name: "greet", Version: "1.0", Path: "/" + sp}}; !reflect.DeepEqual(c.Removed, want) {
			t.Errorf("removed: %+v", c.Removed)
		}
	}
	if whiteouts && !reflect.DeepEqual(c.Cleared, []string{"/opt/oldvenv", "/opt/venv"}) {
		t.Errorf("cleared: %v", c.Cleared)
	}
	// Folded over a layer that had greet 1.0, a Debian package that the second removes, and
	// packages in the venvs it deletes and replaces.
	first := Changes{Added: []Package{{Type: PyPI, Name: "greet", Version: "1.0", Path: "/" + sp}, {Type: Deb, Name: "gone", Version: "1", Arch: "amd64"},
		{Type: PyPI, Name: "old", Version: "1", Path: "/opt/oldvenv/lib/python3.13/site-packages"}, {Type: PyPI, Name: "stale", Version: "1", Path: "/opt/venv/lib/python3.13/site-packages"}}}
	if !whiteouts {
		first.Added = first.Added[:2]
	}
	second := c
	second.Removed = append(second.Removed, Package{Type: Deb, Name: "gone", Arch: "amd64"})
	got := Fold([]Changes{first, second})
	if len(got) != len(want) || !reflect.DeepEqual(got, want) {
		t.Errorf("fold:\n got %+v\nwant %+v", got, want)
	}
}

func TestPURL(t *testing.T) {
	for p, want := range map[Package]string{
		{Type: Deb, Name: "oldpkg", Version: "1:1.1+dfsg-2", Arch: "amd64"}:                                           "pkg:deb/debian/oldpkg@1%3A1.1%2Bdfsg-2?arch=amd64",
		{Type: PyPI, Name: "Old_Style", Version: "0.5"}:                                                               "pkg:pypi/old-style@0.5",
		{Type: Conda, Name: "numpy", Version: "1.26.4", Channel: "conda-forge"}:                                       "pkg:conda/numpy@1.26.4?channel=conda-forge",
		{Type: PyPI, Name: "Zope.Interface", Version: "7.0"}:                                                          "pkg:pypi/zope.interface@7.0",
		{Type: Conda, Name: "numpy", Version: "1.26.4", Channel: "conda-forge", Subdir: "linux-64", Build: "py311h1"}: "pkg:conda/numpy@1.26.4?build=py311h1&channel=conda-forge&subdir=linux-64",
	} {
		if got := PURL(p); got != want {
			t.Errorf("PURL(%+v) = %s, want %s", p, got, want)
		}
	}
}

func testImage() Image {
	return Image{
		Name: "myapp", Digest: "sha256:" + strings.Repeat("ab", 32), Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Tool: "strata 1.0",
		Packages: []Package{
			{Type: Deb, Name: "oldpkg", Version: "1:1.1+dfsg-2", Arch: "amd64"},
			{Type: PyPI, Name: "greet", Version: "2.0", Path: "/usr/local/lib/python3.13/site-packages"},
			{Type: PyPI, Name: "greet", Version: "2.0", Path: "/.venv/lib/python3.13/site-packages"},
			{Type: Conda, Name: "numpy", Version: "1.26.4", Path: "/opt/conda", Channel: "conda-forge"},
		},
	}
}

func validate(t *testing.T, format string, b []byte) {
	t.Helper()
	if err := sbomtest.Validate(format, b); err != nil {
		t.Errorf("the document does not validate: %v\n%s", err, b)
	}
}

func TestCycloneDXValidates(t *testing.T) {
	b, err := Document("cyclonedx", testImage())
	if err != nil {
		t.Fatal(err)
	}
	validate(t, "cyclonedx", b)
	// A document the schema refuses is refused: the check can fail.
	bad := bytes.Replace(b, []byte(`"type": "library"`), []byte(`"type": "not-a-type"`), 1)
	if sbomtest.Validate("cyclonedx", bad) == nil {
		t.Error("a component of an unknown type validated")
	}
	again, _ := Document("cyclonedx", testImage())
	if !bytes.Equal(b, again) {
		t.Error("the same image gave two documents")
	}
}

func TestSPDXValidates(t *testing.T) {
	b, err := Document("spdx", testImage())
	if err != nil {
		t.Fatal(err)
	}
	validate(t, "spdx", b)
	bad := bytes.Replace(b, []byte(`"spdxVersion": "SPDX-2.3",`), nil, 1)
	if sbomtest.Validate("spdx", bad) == nil {
		t.Error("a document without spdxVersion validated")
	}
}
