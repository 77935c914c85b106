package localfiles

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

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
	w := &walker{root: root, prefix: prefix, ignore: ignore, slots: make(chan struct{}, 2*runtime.GOMAXPROCS(0))}
	if prefix != "" {
		w.files = append(w.files, spec.ContextFile{Path: prefix, Source: root, Mode: uint32(st.Mode())})
	}
	w.wg.Add(1)
	w.dir(root, "")
	w.wg.Wait()
	if w.err != nil {
		return nil, w.err
	}
	slices.SortFunc(w.files, func(a, b spec.ContextFile) int { return strings.Compare(a.Path, b.Path) })
	return w.files, nil
}

// walker lists a tree with its folders read in parallel: a warm listing is one getdents per
// folder and one lstat per entry, spread over the machine's cores.
type walker struct {
	root, prefix string
	ignore       Matcher
	// slots bound the goroutines reading folders; a folder found with none free is read by
	// the goroutine that found it.
	slots chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	files []spec.ContextFile
	err   error
	// matching serialises the ignore patterns, which need not be safe for concurrent use:
	// moby/patternmatcher compiles a pattern on its first match, and a Go predicate is the
	// user's.
	matching sync.Mutex
}

func (w *walker) excludes(rel string, isDir bool) bool {
	w.matching.Lock()
	defer w.matching.Unlock()
	return w.ignore.Excludes(rel, isDir)
}

// dir lists the folder abs (rel to the root, "" for the root) and what it holds, as
// filepath.WalkDir with the ignore patterns would: an excluded folder is skipped whole when
// the patterns allow it (prune), else walked for what a "!" pattern re-includes.
func (w *walker) dir(abs, rel string) {
	defer w.wg.Done()
	entries, err := os.ReadDir(abs)
	if err != nil {
		w.fail(err)
		return
	}
	var found []spec.ContextFile
	for _, d := range entries {
		r := d.Name()
		if rel != "" {
			r = rel + "/" + r
		}
		p := filepath.Join(abs, d.Name())
		isDir := d.IsDir()
		excluded := w.excludes(r, isDir)
		if excluded && isDir && w.ignore.prune {
			continue
		}
		if !excluded {
			info, err := d.Info()
			if err != nil {
				w.fail(err)
				return
			}
			f, err := entry(p, path.Join(w.prefix, r), info)
			if err != nil {
				w.fail(err)
				return
			}
			found = append(found, f)
		}
		if isDir {
			w.wg.Add(1)
			select {
			case w.slots <- struct{}{}:
				go func() {
					defer func() { <-w.slots }()
					w.dir(p, r)
				}()
			default:
				w.dir(p, r)
			}
		}
	}
	w.mu.Lock()
	w.files = append(w.files, found...)
	w.mu.Unlock()
}

func (w *walker) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
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
