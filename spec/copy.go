package spec

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// CleanSource turns a COPY source into a clean path relative to the build context; "" is the
// whole context.
func CleanSource(src string) string { return strings.TrimPrefix(path.Clean("/"+src), "/") }

// Selects reports whether a COPY source (a path or a glob, cleaned by CleanSource) takes the
// context path p: p matches it, or lies in a folder that does.
func Selects(src, p string) bool {
	_, ok := matchRoot(src, p)
	return ok
}

// matchRoot returns the path among p and its parent folders that src matches. A glob has a
// fixed number of segments, so at most one of them can.
func matchRoot(src, p string) (string, bool) {
	if src == "" {
		return "", true
	}
	for q := p; ; {
		if q == src {
			return q, true
		}
		if ok, _ := path.Match(src, q); ok {
			return q, true
		}
		i := strings.LastIndex(q, "/")
		if i < 0 {
			return "", false
		}
		q = q[:i]
	}
}

// CopyItem is one file of a COPY and the absolute path it is written to.
type CopyItem struct {
	File   ContextFile
	Target string
}

// CopyPlan maps the files of a build context to their destinations under Docker's COPY
// rules: a folder's contents are copied into dst, not the folder itself; files go to dst, or
// into it by name when there are several sources, a glob matched several paths, or the
// destination ends in "/" (dstIsDir). dst is absolute.
func CopyPlan(files []ContextFile, srcs []string, dst string, dstIsDir bool) ([]CopyItem, error) {
	sorted := append([]ContextFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	if len(srcs) > 1 {
		dstIsDir = true
	}
	type hit struct {
		file ContextFile
		root string
	}
	var out []CopyItem
	for _, s := range srcs {
		src := CleanSource(s)
		var hits []hit
		roots := map[string]bool{}
		for _, f := range sorted {
			if r, ok := matchRoot(src, f.Path); ok {
				hits = append(hits, hit{f, r})
				roots[r] = true
			}
		}
		if len(hits) == 0 {
			return nil, fmt.Errorf("source %q is not in the build context", s)
		}
		intoDir := dstIsDir || len(roots) > 1
		for _, h := range hits {
			var target string
			switch {
			case h.root == "":
				target = path.Join(dst, h.file.Path)
			case h.file.Path == h.root && fs.FileMode(h.file.Mode).IsDir():
				target = dst // a folder's own metadata; its contents go into dst
			case h.file.Path == h.root:
				target = dst
				if intoDir {
					target = path.Join(dst, path.Base(h.root))
				}
			default:
				target = path.Join(dst, strings.TrimPrefix(h.file.Path, h.root+"/"))
			}
			out = append(out, CopyItem{h.file, target})
		}
	}
	return out, nil
}
