package buildkit

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/strata-build/strata/localfiles"

	"github.com/tonistiigi/fsutil"
	"github.com/tonistiigi/fsutil/types"

	"github.com/strata-build/strata/spec"
)

// contextFS serves a layer's context files to buildkitd (llb.Local) as resolve listed and
// hashed them: the files that passed the ignore patterns, at their context paths, root-owned
// as the local engine places them. A file whose content no longer has the digest in the
// cache key fails the read, as the local engine's copy does.
type contextFS struct {
	stats []*types.Stat
	files map[string]spec.ContextFile
}

func newContextFS(files []spec.ContextFile) *contextFS {
	c := &contextFS{files: map[string]spec.ContextFile{}}
	dirs := map[string]bool{}
	for _, f := range files {
		p := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
		if p == "" {
			continue
		}
		c.files[p] = f
		st := &types.Stat{Path: p, Mode: f.Mode, Size: f.Size, Linkname: f.Link}
		if f.Info != nil {
			st.ModTime = f.Info.ModTime().UnixNano()
		}
		if fs.FileMode(f.Mode).IsDir() {
			dirs[p] = true
		}
		c.stats = append(c.stats, st)
		// Folders that hold listed files but are not listed themselves.
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := c.files[d]; ok || dirs[d] {
				continue
			}
			dirs[d] = true
			c.stats = append(c.stats, &types.Stat{Path: d, Mode: uint32(fs.ModeDir | 0o755), ModTime: time.Unix(0, 0).UnixNano()})
		}
	}
	// filepath.WalkDir's order: a folder, then what it holds, by name at each level.
	sort.Slice(c.stats, func(i, j int) bool {
		return walkLess(c.stats[i].Path, c.stats[j].Path)
	})
	for i := 1; i < len(c.stats); i++ { // a listed folder and an implied one
		if c.stats[i].Path == c.stats[i-1].Path {
			c.stats = append(c.stats[:i], c.stats[i+1:]...)
			i--
		}
	}
	return c
}

func walkLess(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

// Walk calls fn for every entry under target ("" for all), parents before children.
func (c *contextFS) Walk(ctx context.Context, target string, fn fs.WalkDirFunc) error {
	target = strings.Trim(filepath.ToSlash(target), "/")
	var skip string
	for _, st := range c.stats {
		if err := ctx.Err(); err != nil {
			return err
		}
		if target != "" && st.Path != target && !strings.HasPrefix(st.Path, target+"/") {
			continue
		}
		if skip != "" && strings.HasPrefix(st.Path, skip+"/") {
			continue
		}
		skip = ""
		err := fn(filepath.FromSlash(st.Path), dirEntry{st}, nil)
		if err == filepath.SkipDir {
			if fs.FileMode(st.Mode).IsDir() {
				skip = st.Path
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Open opens a regular file of the context.
func (c *contextFS) Open(p string) (io.ReadCloser, error) {
	f, ok := c.files[strings.Trim(filepath.ToSlash(p), "/")]
	if !ok || !fs.FileMode(f.Mode).IsRegular() {
		return nil, fmt.Errorf("%s is not a file of the build context", p)
	}
	return localfiles.OpenVerified(f)
}

type dirEntry struct{ st *types.Stat }

func (d dirEntry) Name() string               { return path.Base(d.st.Path) }
func (d dirEntry) IsDir() bool                { return fs.FileMode(d.st.Mode).IsDir() }
func (d dirEntry) Type() fs.FileMode          { return fs.FileMode(d.st.Mode).Type() }
func (d dirEntry) Info() (fs.FileInfo, error) { return &fsutil.StatInfo{Stat: d.st}, nil }
