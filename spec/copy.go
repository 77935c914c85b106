package spec

import (
	"fmt"
	"io/fs"
	"net/url"
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

// Names reports whether a COPY source (cleaned by CleanSource) names the context path p
// itself, as a path or a glob, and not a folder p lies in: ADD unpacks the archives its
// sources name, not those inside a folder it copies.
func Names(src, p string) bool {
	root, ok := matchRoot(src, p)
	return ok && root == p
}

// NamedByAny reports whether any of the sources (as written) names p itself (Names).
func NamedByAny(srcs []string, p string) bool {
	for _, src := range srcs {
		if Names(CleanSource(src), p) {
			return true
		}
	}
	return false
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

// IsHeredocSource reports whether a COPY or ADD source names one of the instruction's
// here-documents ("<<EOF").
func IsHeredocSource(in Instruction, src string) bool {
	name, ok := strings.CutPrefix(src, "<<")
	if !ok {
		return false
	}
	name = strings.Trim(strings.TrimPrefix(name, "-"), `"'`)
	for _, h := range in.Heredocs {
		if h.Name == name {
			return true
		}
	}
	return false
}

// IsRemoteSource reports whether an ADD source is a URL or a git repository, which ADD
// downloads, rather than a path in the build context.
func IsRemoteSource(src string) bool {
	return strings.Contains(src, "://") || strings.HasPrefix(src, "git@")
}

// IsGitSource reports whether an ADD source is a git repository: a git@ or git:// or ssh://
// address, or an http(s) URL whose path ends in ".git", each with an optional "#ref:subdir".
func IsGitSource(src string) bool {
	repo, _, _ := strings.Cut(src, "#")
	switch {
	case strings.HasPrefix(repo, "git@"), strings.HasPrefix(repo, "git://"), strings.HasPrefix(repo, "ssh://"):
		return true
	case strings.HasPrefix(repo, "http://"), strings.HasPrefix(repo, "https://"):
		return strings.HasSuffix(strings.TrimSuffix(repo, "/"), ".git")
	}
	return false
}

// SplitGitSource splits "URL#ref:subdir" into its parts.
func SplitGitSource(src string) (repo, ref, subdir string) {
	repo, frag, _ := strings.Cut(src, "#")
	ref, subdir, _ = strings.Cut(frag, ":")
	return repo, ref, strings.Trim(subdir, "/")
}

// ParentsPlan maps sources to their destinations keeping their folders, as COPY --parents
// does: a/b/c.txt goes to dst/a/b/c.txt. A "/./" in a source marks where the kept path
// starts.
func ParentsPlan(files []ContextFile, srcs []string, dst string) ([]CopyItem, error) {
	var out []CopyItem
	for _, s := range srcs {
		pivot := ""
		if i := strings.Index(s, "/./"); i >= 0 {
			pivot = CleanSource(s[:i])
		}
		src := CleanSource(s)
		n := len(out)
		for _, f := range files {
			if !Selects(src, f.Path) {
				continue
			}
			rel := f.Path
			if pivot != "" {
				rel = strings.TrimPrefix(strings.TrimPrefix(rel, pivot), "/")
			}
			out = append(out, CopyItem{File: f, Target: path.Join(dst, rel)})
		}
		if len(out) == n {
			return nil, fmt.Errorf("source %q is not in the build context", s)
		}
	}
	return out, nil
}

// URLFileName is the name of the file an ADD fetches by http(s) URL: the last element of
// the URL's path, as Docker names it. KeepGitDir is refused: it is for git sources.
func URLFileName(src string, flags CopyFlags) (string, error) {
	if flags.KeepGitDir {
		return "", fmt.Errorf("--keep-git-dir is for git repositories")
	}
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("%q is not an http(s) URL or a git repository", src)
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		return "", fmt.Errorf("%s names no file: ADD takes the file's name from the URL's path", src)
	}
	return name, nil
}
