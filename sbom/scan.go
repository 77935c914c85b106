// Package sbom finds the software packages a layer installed (Debian packages, Python
// distributions, conda packages) by reading the metadata the package managers leave in the
// file system, and writes an image's packages as an SPDX 2.3 or CycloneDX 1.6 document.
package sbom

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/strata-build/strata/layer"
)

// The package types, as in package URLs.
const (
	Deb   = "deb"
	PyPI  = "pypi"
	Conda = "conda"
)

// Package is one installed package.
type Package struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Version string `json:"version"`
	// Arch is a Debian package's architecture.
	Arch string `json:"arch,omitempty"`
	// Path is where a Python distribution or conda package is installed: the site-packages
	// folder, or the conda prefix.
	Path string `json:"path,omitempty"`
	// Channel, Subdir and Build are a conda package's channel name ("conda-forge"),
	// platform folder ("linux-64") and build string.
	Channel string `json:"channel,omitempty"`
	Subdir  string `json:"subdir,omitempty"`
	Build   string `json:"build,omitempty"`
}

// id identifies a package slot: a later layer's package with the same id replaces it.
func (p Package) id() string {
	return p.Type + "\x00" + p.Path + "\x00" + normalize(p.Type, p.Name) + "\x00" + p.Arch
}

// normalize is the name by which two spellings are the same package (PEP 503 for Python).
func normalize(typ, name string) string {
	if typ != PyPI {
		return name
	}
	return pep503.ReplaceAllString(strings.ToLower(name), "-")
}

var pep503 = regexp.MustCompile(`[-_.]+`)

// Changes is what a layer did to its image's packages.
type Changes struct {
	// Added are the packages the layer installed or changed the version of.
	Added []Package `json:"added,omitempty"`
	// Removed are the packages it uninstalled (with the version they had, when known).
	Removed []Package `json:"removed,omitempty"`
	// Cleared are folders the layer deleted or replaced whole (a whiteout, an opaque
	// folder): the Python and conda packages installed below them before are gone.
	Cleared []string `json:"cleared,omitempty"`
}

// Empty says whether the layer changed no package.
func (c Changes) Empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Cleared) == 0
}

// DpkgStatus is where dpkg keeps the installed packages.
const DpkgStatus = "var/lib/dpkg/status"

// ScanLayer reads a layer's file system (a snapshot folder in which a whiteout is a 0/0
// character device, as overlayfs has them) for the packages it changed. parentStatus is
// the dpkg status file of the layers below it (nil if none has one): Debian packages are
// what changed between it and the layer's own status file, when the layer has one.
func ScanLayer(dir string, parentStatus []byte) (Changes, error) {
	var c Changes
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if whiteout(d) {
			c.Cleared = append(c.Cleared, inImage(dir, p))
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if layer.IsOpaque(p) {
			c.Cleared = append(c.Cleared, inImage(dir, p))
		}
		switch d.Name() {
		case "site-packages", "dist-packages":
			if err := scanSitePackages(dir, p, &c); err != nil {
				return err
			}
			return filepath.SkipDir
		case "conda-meta":
			if err := scanCondaMeta(dir, p, &c); err != nil {
				return err
			}
			return filepath.SkipDir
		case "proc", "sys", "dev":
			if filepath.Dir(p) == dir {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, DpkgStatus)); err == nil {
		added, removed := diffDpkg(ParseDpkgStatus(parentStatus), ParseDpkgStatus(b))
		c.Added, c.Removed = append(c.Added, added...), append(c.Removed, removed...)
	}
	sortPackages(c.Added)
	sortPackages(c.Removed)
	return c, nil
}

// inImage is a snapshot path as a path of the image.
func inImage(root, p string) string {
	return "/" + strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(p, root)), "/")
}

// whiteout says whether an entry is an overlay whiteout.
func whiteout(d fs.DirEntry) bool {
	if d.Type()&fs.ModeCharDevice == 0 {
		return false // spares the stat of every other entry
	}
	info, err := d.Info()
	return err == nil && layer.IsWhiteout(info)
}

// scanSitePackages reads the distributions in one site-packages folder: *.dist-info
// folders (and the older *.egg-info), added or whited out.
func scanSitePackages(root, dir string, c *Changes) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	where := inImage(root, dir)
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if ext != ".dist-info" && ext != ".egg-info" {
			continue
		}
		p := filepath.Join(dir, name)
		if whiteout(e) {
			n, v, _ := strings.Cut(strings.TrimSuffix(name, ext), "-")
			c.Removed = append(c.Removed, Package{Type: PyPI, Name: n, Version: strings.SplitN(v, "-", 2)[0], Path: where})
			continue
		}
		meta := filepath.Join(p, "METADATA")
		switch {
		case ext == ".egg-info" && !e.IsDir():
			meta = p
		case ext == ".egg-info":
			meta = filepath.Join(p, "PKG-INFO")
		}
		b, err := os.ReadFile(meta)
		if err != nil {
			continue // a folder the layer only touched: its metadata is below
		}
		n, v := coreMetadata(b)
		if n != "" {
			c.Added = append(c.Added, Package{Type: PyPI, Name: n, Version: v, Path: where})
		}
	}
	return nil
}

// coreMetadata reads Name and Version from a distribution's core metadata (RFC 822 style
// headers, ending at the first blank line).
func coreMetadata(b []byte) (name, version string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			switch k {
			case "Name":
				name = strings.TrimSpace(v)
			case "Version":
				version = strings.TrimSpace(v)
			}
		}
	}
	return name, version
}

// scanCondaMeta reads a conda prefix's package records (conda-meta/*.json).
func scanCondaMeta(root, dir string, c *Changes) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	prefix := inImage(root, filepath.Dir(dir))
	for _, e := range entries {
		name := e.Name()
		if filepath.Ext(name) != ".json" {
			continue
		}
		p := filepath.Join(dir, name)
		if whiteout(e) {
			// name-version-build.json
			parts := strings.Split(strings.TrimSuffix(name, ".json"), "-")
			if len(parts) >= 3 {
				c.Removed = append(c.Removed, Package{Type: Conda, Name: strings.Join(parts[:len(parts)-2], "-"), Version: parts[len(parts)-2], Path: prefix})
			}
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var rec struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Channel string `json:"channel"`
			Subdir  string `json:"subdir"`
			Build   string `json:"build"`
		}
		if json.Unmarshal(b, &rec) != nil || rec.Name == "" {
			continue // history and other files
		}
		c.Added = append(c.Added, Package{Type: Conda, Name: rec.Name, Version: rec.Version, Path: prefix,
			Channel: channelName(rec.Channel, rec.Subdir), Subdir: rec.Subdir, Build: rec.Build})
	}
	return nil
}

// channelName is the name of a conda channel that conda-meta may give as its URL
// ("https://conda.anaconda.org/conda-forge/linux-64" is "conda-forge").
func channelName(channel, subdir string) string {
	u, err := url.Parse(channel)
	if err != nil || u.Host == "" {
		return channel
	}
	p := strings.Trim(u.Path, "/")
	p = strings.TrimSuffix(strings.TrimSuffix(p, subdir), "/")
	if i := strings.LastIndex(p, "/"); i >= 0 {
		p = p[i+1:]
	}
	return p
}

// ParseDpkgStatus lists the installed packages of a dpkg status file.
func ParseDpkgStatus(b []byte) []Package {
	var out []Package
	for _, para := range strings.Split(string(b), "\n\n") {
		var p Package
		installed := false
		for _, line := range strings.Split(para, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(line, " ") {
				continue
			}
			v = strings.TrimSpace(v)
			switch k {
			case "Package":
				p.Name = v
			case "Version":
				p.Version = v
			case "Architecture":
				p.Arch = v
			case "Status":
				installed = strings.HasSuffix(v, " installed")
			}
		}
		if p.Name != "" && installed {
			p.Type = Deb
			out = append(out, p)
		}
	}
	return out
}

func diffDpkg(before, after []Package) (added, removed []Package) {
	old := map[string]Package{}
	for _, p := range before {
		old[p.id()] = p
	}
	for _, p := range after {
		if o, ok := old[p.id()]; !ok || o.Version != p.Version {
			added = append(added, p)
		}
		delete(old, p.id())
	}
	for _, p := range old {
		removed = append(removed, p)
	}
	return added, removed
}

// Fold applies the layers' changes in order: the packages of the image they make.
func Fold(layers []Changes) []Package {
	m := map[string]Package{}
	for _, c := range layers {
		for _, dir := range c.Cleared {
			for id, p := range m {
				if p.Path != "" && (p.Path == dir || strings.HasPrefix(p.Path, strings.TrimSuffix(dir, "/")+"/")) {
					delete(m, id)
				}
			}
		}
		for _, p := range c.Removed {
			delete(m, p.id())
		}
		for _, p := range c.Added {
			m[p.id()] = p
		}
	}
	out := make([]Package, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sortPackages(out)
	return out
}

func sortPackages(ps []Package) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if na, nb := normalize(a.Type, a.Name), normalize(b.Type, b.Name); na != nb {
			return na < nb
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Arch < b.Arch
	})
}
