package localfiles

import (
	"errors"
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
	root = filepath.Clean(root)
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
	w := &walker{root: root, prefix: prefix, ignore: ignore, queue: []folder{{root, ""}}, pending: 1}
	w.more = sync.NewCond(&w.mu)
	if prefix != "" {
		w.found = append(w.found, []spec.ContextFile{{Path: prefix, Source: root, Mode: uint32(st.Mode()), Info: st}})
	}
	var wg sync.WaitGroup
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.work()
		}()
	}
	wg.Wait()
	if w.err != nil {
		return nil, w.err
	}
	files := slices.Concat(w.found...)
	slices.SortFunc(files, func(a, b spec.ContextFile) int { return strings.Compare(a.Path, b.Path) })
	return files, nil
}

// walker lists a tree with its folders read in parallel: a warm listing is one getdents per
// folder and one fstatat per entry, relative to its folder, spread over the machine's cores.
// Folders wait on a stack that workers take from, so a wide folder's subfolders are read by
// all of them.
type walker struct {
	root, prefix string
	ignore       Matcher

	mu   sync.Mutex
	more *sync.Cond // signalled when a folder is queued, or the last one is done
	// queue holds the folders found and not yet read; pending counts those and the ones
	// being read. The walk is over when pending is 0.
	queue   []folder
	pending int
	found   [][]spec.ContextFile // each folder's entries
	err     error
	// matching serialises the ignore patterns, which need not be safe for concurrent use:
	// moby/patternmatcher compiles a pattern on its first match, and a Go predicate is the
	// user's.
	matching sync.Mutex
}

type folder struct{ abs, rel string }

// work reads queued folders until none is left or being read.
func (w *walker) work() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.queue) == 0 && w.pending > 0 {
			w.more.Wait()
		}
		if w.pending == 0 {
			return
		}
		f := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		w.mu.Unlock()
		found, subs, err := w.dir(f.abs, f.rel)
		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = err
			// The walk has failed: what is queued is not read.
			w.pending -= len(w.queue)
			w.queue = w.queue[:0]
		}
		if len(found) > 0 {
			w.found = append(w.found, found)
		}
		if w.err == nil {
			w.queue = append(w.queue, subs...)
			w.pending += len(subs)
		}
		w.pending--
		w.more.Broadcast()
	}
}

func (w *walker) excludes(rel string, isDir bool) bool {
	if w.ignore.exclude == nil {
		return false
	}
	w.matching.Lock()
	defer w.matching.Unlock()
	return w.ignore.Excludes(rel, isDir)
}

// dir lists the folder abs (rel to the root, "" for the root) and what it holds, as
// filepath.WalkDir with the ignore patterns would: an excluded folder is skipped whole when
// the patterns allow it (prune), else walked for what a "!" pattern re-includes.
func (w *walker) dir(abs, rel string) (found []spec.ContextFile, subs []folder, err error) {
	d, err := os.Open(abs)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	dirfd := int(d.Fd())
	buf := direntBufs.Get().(*[]byte)
	names, types, err := readDir(dirfd, *buf)
	direntBufs.Put(buf)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "readdirent", Path: abs, Err: err}
	}
	// Each entry is stat'ed relative to the folder, as find does: no path lookup from the
	// root. The folder's infos are one allocation, and its paths are joined without Clean:
	// abs, rel and the names are clean already.
	found = make([]spec.ContextFile, 0, len(names))
	infos := make([]statInfo, len(names))
	for i, name := range names {
		p := joinClean(abs, name)
		r := name
		if rel != "" {
			r = rel + "/" + name
		}
		info := &infos[i]
		stated := false
		isDir := types[i] == dirTypeDir
		if types[i] == dirTypeUnknown { // the file system does not say: ask
			if err := info.lstatAt(dirfd, name); errors.Is(err, fs.ErrNotExist) {
				continue // gone since the listing, as os.File.ReadDir skips it
			} else if err != nil {
				return nil, nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
			}
			stated, isDir = true, info.IsDir()
		}
		excluded := w.excludes(r, isDir)
		if excluded && isDir && w.ignore.prune {
			continue
		}
		if !excluded {
			if !stated {
				if err := info.lstatAt(dirfd, name); err != nil {
					return nil, nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
				}
			}
			f, err := entry(p, joinClean(w.prefix, r), info)
			if err != nil {
				return nil, nil, err
			}
			found = append(found, f)
		}
		if isDir {
			subs = append(subs, folder{p, r})
		}
	}
	return found, subs, nil
}

// direntBufs are the walk's getdents buffers, one per folder being read.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// joinClean joins a clean path and a clean relative one: path.Join without its Clean.
func joinClean(dir, name string) string {
	switch {
	case dir == "" || dir == ".":
		return name
	case dir[len(dir)-1] == '/':
		return dir + name
	}
	return dir + "/" + name
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
