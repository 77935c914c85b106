package localfiles

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/strata-build/strata/spec"
)

// Matcher decides which files a walk leaves out. The zero Matcher leaves out nothing.
type Matcher struct {
	exclude func(rel string, isDir bool) bool
	// prune skips an excluded directory whole; it is false when a "!" pattern could
	// re-include something below it.
	prune bool
}

// Func returns a Matcher from a predicate over paths relative to the walked root
// (slash-separated); true leaves the path out, and an excluded directory is skipped whole.
func Func(exclude func(rel string) bool) Matcher {
	return Matcher{exclude: func(rel string, _ bool) bool { return exclude(rel) }, prune: true}
}

// PythonSource leaves out everything but *.py files, and __pycache__ folders.
var PythonSource = Matcher{
	exclude: func(rel string, isDir bool) bool {
		if isDir {
			return path.Base(rel) == "__pycache__"
		}
		return path.Ext(rel) != ".py"
	},
	prune: true,
}

// Or leaves out what either Matcher leaves out.
func (m Matcher) Or(o Matcher) Matcher {
	if m.exclude == nil {
		return o
	}
	if o.exclude == nil {
		return m
	}
	return Matcher{
		exclude: func(rel string, isDir bool) bool { return m.exclude(rel, isDir) || o.exclude(rel, isDir) },
		prune:   m.prune && o.prune,
	}
}

// Patterns returns a Matcher for dockerignore patterns: the last matching pattern wins, "!"
// re-includes, and a match on a parent directory counts (moby/patternmatcher semantics).
func Patterns(patterns []string) (Matcher, error) {
	if len(patterns) == 0 {
		return Matcher{}, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return Matcher{}, fmt.Errorf("ignore patterns %q: %w", patterns, err)
	}
	return Matcher{
		exclude: func(rel string, _ bool) bool {
			ok, err := pm.MatchesOrParentMatches(filepath.FromSlash(rel))
			return err == nil && ok
		},
		prune: !pm.Exclusions(),
	}, nil
}

// Excludes reports whether the Matcher leaves rel out.
func (m Matcher) Excludes(rel string, isDir bool) bool {
	return m.exclude != nil && m.exclude(rel, isDir)
}

// ReadDockerignore reads a .dockerignore file into patterns, skipping comments and blanks.
func ReadDockerignore(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ignorefile.ReadAll(f)
}

// Walk lists the tree at root (a directory or a single file) as context files whose paths
// are prefix joined with the path below root. Directories are listed too, so empty ones
// survive a copy. The ignore Matcher sees paths relative to root. Symlinks are
// listed as links, never followed.
func Walk(root, prefix string, ignore Matcher) ([]spec.ContextFile, error) {
	st, err := os.Lstat(root)
	if err != nil {
		return nil, err
	}
	prefix = strings.Trim(path.Clean("/"+filepath.ToSlash(prefix)), "/")
	if !st.IsDir() {
		f, err := entry(root, prefix, st)
		if err != nil {
			return nil, err
		}
		return []spec.ContextFile{f}, nil
	}
	var files []spec.ContextFile
	if prefix != "" {
		files = append(files, spec.ContextFile{Path: prefix, Source: root, Mode: uint32(st.Mode())})
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if ignore.Excludes(rel, d.IsDir()) {
			if d.IsDir() && ignore.prune {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f, err := entry(p, path.Join(prefix, rel), info)
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

func entry(p, rel string, info fs.FileInfo) (spec.ContextFile, error) {
	f := spec.ContextFile{Path: rel, Source: p, Mode: uint32(info.Mode()), Size: info.Size(), Info: info}
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return f, err
		}
		f.Link, f.Size = target, 0
	case info.IsDir():
		f.Size = 0
	case !info.Mode().IsRegular():
		return f, fmt.Errorf("%s: only regular files, directories and symlinks can be copied (this is a %s)", p, info.Mode().Type())
	}
	return f, nil
}

// List lists a local source, leaving out what its patterns (and the optional Go predicate
// exclude, which sees paths relative to the source) leave out.
func List(src spec.LocalSource, exclude func(rel string) bool) ([]spec.ContextFile, error) {
	var m Matcher
	switch {
	case src.Ignore != nil:
		var err error
		if m, err = Patterns(src.Ignore); err != nil {
			return nil, err
		}
	case src.PythonSource:
		m = PythonSource
	}
	if exclude != nil {
		m = m.Or(Func(exclude))
	}
	return Walk(src.Local, src.Prefix, m)
}
