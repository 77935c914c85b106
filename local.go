package strata

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
)

// AddLocalFileOptions are the parameters of add_local_file.
type AddLocalFileOptions struct {
	LocalPath string `yaml:"local_path"`
	// RemotePath is absolute; a trailing "/" places the file in that folder under its own name.
	RemotePath string `yaml:"remote_path"`
	// Copy bakes the file into a layer. Without it the file is mounted when a container
	// starts: changing it never rebuilds the image, but no build step may follow.
	Copy bool `yaml:"copy"`
}

// AddLocalFile mounts a local file into containers of the image at remotePath.
func (img Image) AddLocalFile(localPath, remotePath string) Image {
	return img.AddLocalFileWith(AddLocalFileOptions{LocalPath: localPath, RemotePath: remotePath})
}

// AddLocalFileWith is AddLocalFile with all options.
func (img Image) AddLocalFileWith(o AddLocalFileOptions) Image {
	return img.addLocal("add_local_file", o.Copy, func(r *resolver) ([]spec.LocalSource, string, func(string) bool, error) {
		remote, err := remotePath(o.RemotePath)
		if err != nil {
			return nil, "", nil, err
		}
		if strings.HasSuffix(o.RemotePath, "/") {
			remote = path.Join(remote, filepath.Base(o.LocalPath))
		}
		local, err := localPath(r, o.LocalPath)
		if err != nil {
			return nil, "", nil, err
		}
		if st, err := os.Stat(local); err == nil && st.IsDir() {
			return nil, "", nil, fmt.Errorf("local_path %q is a directory: use add_local_dir", o.LocalPath)
		}
		return []spec.LocalSource{{Local: local, Prefix: remote}}, remote, nil, nil
	})
}

// AddLocalDirOptions are the parameters of add_local_dir.
type AddLocalDirOptions struct {
	LocalPath  string `yaml:"local_path"`
	RemotePath string `yaml:"remote_path"`
	Copy       bool   `yaml:"copy"`
	// Ignore are dockerignore-style patterns, relative to LocalPath.
	Ignore []string `yaml:"ignore"`
	// IgnoreFunc, if set, also leaves out the paths (relative to LocalPath, slash-separated)
	// for which it returns true. Its code is not part of the cache key: the files are.
	IgnoreFunc func(rel string) bool `yaml:"-"`
}

// AddLocalDir mounts a local folder into containers of the image at remotePath.
func (img Image) AddLocalDir(localPath, remotePath string) Image {
	return img.AddLocalDirWith(AddLocalDirOptions{LocalPath: localPath, RemotePath: remotePath})
}

// AddLocalDirWith is AddLocalDir with all options.
func (img Image) AddLocalDirWith(o AddLocalDirOptions) Image {
	return img.addLocal("add_local_dir", o.Copy, func(r *resolver) ([]spec.LocalSource, string, func(string) bool, error) {
		remote, err := remotePath(o.RemotePath)
		if err != nil {
			return nil, "", nil, err
		}
		local, err := localPath(r, o.LocalPath)
		if err != nil {
			return nil, "", nil, err
		}
		if st, err := os.Stat(local); err == nil && !st.IsDir() {
			return nil, "", nil, fmt.Errorf("local_path %q is not a directory: use add_local_file", o.LocalPath)
		}
		return []spec.LocalSource{{Local: local, Prefix: remote, Ignore: o.Ignore}}, remote, o.IgnoreFunc, nil
	})
}

// AddLocalPythonSourceOptions are the parameters of add_local_python_source.
type AddLocalPythonSourceOptions struct {
	// Modules are importable names ("mypkg", "mypkg.sub"), found under the resolve folder.
	Modules []string `yaml:"modules"`
	Copy    bool     `yaml:"copy"`
	// Ignore are dockerignore-style patterns; when nil, everything but *.py files (and
	// __pycache__) is left out.
	Ignore     []string              `yaml:"ignore"`
	IgnoreFunc func(rel string) bool `yaml:"-"`
}

// AddLocalPythonSource makes local Python modules importable in the image, at /root/<module path>.
func (img Image) AddLocalPythonSource(modules ...string) Image {
	return img.AddLocalPythonSourceWith(AddLocalPythonSourceOptions{Modules: modules})
}

// AddLocalPythonSourceWith is AddLocalPythonSource with all options.
func (img Image) AddLocalPythonSourceWith(o AddLocalPythonSourceOptions) Image {
	return img.addLocal("add_local_python_source", o.Copy, func(r *resolver) ([]spec.LocalSource, string, func(string) bool, error) {
		if len(o.Modules) == 0 {
			return nil, "", nil, fmt.Errorf("modules is empty: name at least one module")
		}
		var srcs []spec.LocalSource
		for _, mod := range o.Modules {
			if mod == "" || strings.ContainsAny(mod, `/\ `) || strings.HasPrefix(mod, ".") {
				return nil, "", nil, fmt.Errorf("module %q is not an importable name such as \"mypkg\" or \"mypkg.sub\"", mod)
			}
			rel := filepath.Join(strings.Split(mod, ".")...)
			dir := filepath.Join(r.dir, rel)
			remote := path.Join("/root", filepath.ToSlash(rel))
			if st, err := os.Stat(dir); err == nil && st.IsDir() {
				srcs = append(srcs, spec.LocalSource{Local: dir, Prefix: remote, Ignore: o.Ignore, PythonSource: o.Ignore == nil && o.IgnoreFunc == nil})
			} else if _, err := os.Stat(dir + ".py"); err == nil {
				srcs = append(srcs, spec.LocalSource{Local: dir + ".py", Prefix: remote + ".py"})
			} else {
				return nil, "", nil, fmt.Errorf("module %q: neither %s/ nor %s.py exists under %s", mod, rel, rel, r.dir)
			}
		}
		return srcs, "/root", o.IgnoreFunc, nil
	})
}

// localSpec says, at resolve time, which local sources an add_local_* step places where, and
// the Go ignore function if there is one.
type localSpec func(r *resolver) (srcs []spec.LocalSource, target string, exclude func(string) bool, err error)

// addLocal makes a copy layer or a runtime mount from local sources. Listed files have their
// absolute destinations, without the leading "/", as paths.
func (img Image) addLocal(method string, copy bool, sources localSpec) Image {
	list := func(r *resolver) (spec.Mount, []spec.LocalSource, error) {
		srcs, target, exclude, err := sources(r)
		if err != nil {
			return spec.Mount{}, nil, err
		}
		r.hasher.Prefetch() // decoded while the sources are listed
		var files []spec.ContextFile
		for _, src := range srcs {
			fs, err := localfiles.List(src, exclude)
			if err != nil {
				return spec.Mount{}, nil, err
			}
			files = append(files, fs...)
		}
		m := spec.Mount{Target: target, Files: files}
		if exclude == nil {
			m.Sources = srcs
		}
		return m, srcs, nil
	}
	if !copy {
		return img.thenMount(method, func(r *resolver) (spec.Mount, error) {
			m, _, err := list(r)
			return m, err
		})
	}
	return img.then(method, false, func(r *resolver) (*spec.Layer, error) {
		m, srcs, err := list(r)
		if err != nil {
			return nil, err
		}
		return &spec.Layer{Instructions: []spec.Instruction{copyIn(nil, ".", "/")}, Context: m.Files, Sources: srcs}, nil
	})
}

func remotePath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("remote_path %q must be absolute, such as \"/root/data\"", p)
	}
	return path.Clean(p), nil
}

func localPath(r *resolver, p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("local_path is empty")
	}
	abs := r.path(p)
	if _, err := os.Lstat(abs); err != nil {
		return "", fmt.Errorf("local_path %q (%s): %w", p, abs, unwrapPathError(err))
	}
	return abs, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// copyContext lists the files of ctxDir that the COPY and ADD instructions read, leaving out
// what the dockerignore patterns exclude. Here-documents and ADD's URLs are not local files.
func (r *resolver) copyContext(ins []spec.Instruction, ctxDir string, ignore []string) ([]spec.ContextFile, error) {
	var sources []string
	for _, in := range ins {
		if in.Op != spec.OpCopy && in.Op != spec.OpAdd {
			continue
		}
		flags, err := in.CopyFlags()
		if err != nil {
			return nil, err
		}
		if flags.From != "" {
			continue
		}
		for _, src := range in.Args[:len(in.Args)-1] {
			switch {
			case spec.IsHeredocSource(in, src):
				continue
			case strings.Contains(src, "$"):
				return nil, fmt.Errorf("%s: source %q uses a variable; strata lists COPY sources before the build, so write the path literally", in.Op, src)
			case spec.IsRemoteSource(src):
				if in.Op == spec.OpCopy {
					return nil, fmt.Errorf("COPY: source %q is a URL; use ADD, which downloads it", src)
				}
				continue
			}
			sources = append(sources, spec.CleanSource(src))
		}
	}
	if len(sources) == 0 {
		return nil, nil
	}
	all, err := r.walkContext(ctxDir, ignore)
	if err != nil {
		return nil, err
	}
	var out []spec.ContextFile
	matched := make([]bool, len(sources))
	for _, f := range all {
		used := false
		for i, src := range sources {
			if spec.Selects(src, f.Path) {
				matched[i], used = true, true
			}
		}
		if used {
			out = append(out, f)
		}
	}
	for i, ok := range matched {
		if !ok {
			return nil, fmt.Errorf("COPY source %q matches no file in the context %s (or all of it is ignored)", sources[i], ctxDir)
		}
	}
	return followSourceLinks(out, all, sources, ctxDir)
}

// followSourceLinks replaces each symlink that a source names itself (not one inside a
// folder it names) by what it points to, under the link's name, as Docker and BuildKit
// follow the source of a COPY. The target is resolved inside the context, never outside it,
// and its files are taken from the context's listing (all), so what the ignore patterns
// leave out stays out through a link too.
func followSourceLinks(files, all []spec.ContextFile, sources []string, ctxDir string) ([]spec.ContextFile, error) {
	var out []spec.ContextFile
	for _, f := range files {
		if f.Link == "" || !namedBySource(f.Path, sources) {
			out = append(out, f)
			continue
		}
		target, err := securejoin.SecureJoin(ctxDir, f.Path)
		if err != nil {
			return nil, fmt.Errorf("COPY source %s: %w", f.Path, err)
		}
		rel, err := filepath.Rel(ctxDir, target)
		if err != nil {
			return nil, fmt.Errorf("COPY source %s: %w", f.Path, err)
		}
		rel = filepath.ToSlash(rel)
		n := len(out)
		for _, g := range all {
			switch {
			case g.Path == rel:
				g.Path = f.Path
			case rel == ".":
				g.Path = f.Path + "/" + g.Path
			case strings.HasPrefix(g.Path, rel+"/"):
				g.Path = f.Path + strings.TrimPrefix(g.Path, rel)
			default:
				continue
			}
			out = append(out, g)
		}
		if len(out) == n {
			return nil, fmt.Errorf("COPY source %s is a symlink to %s, which is not in the context %s (or is ignored)", f.Path, f.Link, ctxDir)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// namedBySource reports whether some source matches p itself rather than a folder above it.
func namedBySource(p string, sources []string) bool {
	for _, src := range sources {
		if ok, _ := path.Match(src, p); ok || src == p {
			return true
		}
	}
	return false
}

// walkContext lists a build context once per resolve, however many instructions read it.
func (r *resolver) walkContext(ctxDir string, ignore []string) ([]spec.ContextFile, error) {
	key := ctxDir + "\x00" + strings.Join(ignore, "\x00")
	if files, ok := r.contexts[key]; ok {
		return files, nil
	}
	st, err := os.Stat(ctxDir)
	if err != nil {
		return nil, fmt.Errorf("context_dir %s: %w", ctxDir, unwrapPathError(err))
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("context_dir %s is not a directory", ctxDir)
	}
	m, err := localfiles.Patterns(ignore)
	if err != nil {
		return nil, err
	}
	files, err := localfiles.Walk(ctxDir, "", m)
	if err != nil {
		return nil, err
	}
	if r.contexts == nil {
		r.contexts = map[string][]spec.ContextFile{}
	}
	r.contexts[key] = files
	return files, nil
}

// absPath makes a local path absolute against the working folder.
func absPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("a local path is empty")
	}
	return filepath.Abs(p)
}
