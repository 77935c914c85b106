package local

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/klauspost/compress/zstd"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
)

// copyStep runs COPY or ADD: from the layer's context, or --from another image.
func (x *executor) copyStep(ctx context.Context, in spec.Instruction) error {
	if err := x.mount(); err != nil {
		return err
	}
	flags, err := in.CopyFlags()
	if err != nil {
		return err
	}
	words := make([]string, len(in.Args))
	for i, a := range in.Args {
		w, err := x.cfg.Expand(a)
		if err != nil {
			return err
		}
		words[i] = w
	}
	srcs, dst := words[:len(words)-1], words[len(words)-1]
	// As BuildKit: "." and a trailing slash name a folder, and so does a destination that
	// is a folder already (a file copied to it goes in it).
	dstIsDir := strings.HasSuffix(dst, "/") || dst == "." || len(srcs) > 1
	uid, gid := -1, -1
	if flags.Chown != "" {
		c, err := x.cfg.Expand(flags.Chown)
		if err != nil {
			return err
		}
		u, g, err := container.LookupUser(x.rootfs, c)
		if err != nil {
			return fmt.Errorf("--chown=%s: %w", c, err)
		}
		uid, gid = int(u), int(g)
	}
	var mode os.FileMode
	if flags.Chmod != "" {
		c, err := x.cfg.Expand(flags.Chmod)
		if err != nil {
			return err
		}
		m, err := strconv.ParseUint(c, 8, 32)
		if err != nil {
			return fmt.Errorf("--chmod=%s: want an octal mode such as 755", flags.Chmod)
		}
		mode = os.FileMode(m)
	}
	if !path.IsAbs(dst) {
		dst = path.Join("/", x.cfg.Config.WorkingDir, dst)
	}
	if !dstIsDir {
		if p, err := securejoin.SecureJoin(x.rootfs, dst); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				dstIsDir = true
			}
		}
	}
	// Here-documents and ADD's downloads are files of their own; the rest come from the
	// build context, or from --from's stage or image.
	var plan []spec.CopyItem
	var local []string
	for i, src := range in.Args[:len(in.Args)-1] {
		switch {
		case spec.IsHeredocSource(in, src):
			f, err := x.heredocFile(in, src)
			if err != nil {
				return err
			}
			plan = append(plan, spec.CopyItem{File: f, Target: intoDir(dst, f.Path, dstIsDir)})
		case in.Op == spec.OpAdd && flags.From == "" && spec.IsRemoteSource(srcs[i]):
			items, err := x.download(ctx, srcs[i], flags, dst, dstIsDir)
			if err != nil {
				return fmt.Errorf("ADD %s: %w", srcs[i], err)
			}
			plan = append(plan, items...)
		default:
			local = append(local, srcs[i])
		}
	}
	if len(local) > 0 {
		files := x.layer.Context
		if len(x.artifacts) > 0 {
			files = slices.Concat(files, x.artifacts)
			sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
		}
		if flags.From != "" {
			var cleanup func()
			files, cleanup, err = x.fromImage(ctx, flags.From, local)
			if err != nil {
				return err
			}
			defer cleanup()
		}
		var items []spec.CopyItem
		if flags.Parents {
			items, err = spec.ParentsPlan(files, local, dst)
		} else {
			items, err = spec.CopyPlan(files, local, dst, dstIsDir)
		}
		if err != nil {
			return err
		}
		if items, err = localfiles.ExcludeItems(items, flags.Excludes, dst); err != nil {
			return err
		}
		plan = append(plan, items...)
	}
	for _, c := range plan {
		if in.Op == spec.OpAdd && flags.From == "" && c.File.Mode&uint32(fs.ModeType) == 0 && !c.File.Remote && spec.NamedByAny(local, c.File.Path) {
			// As Docker: ADD unpacks a local tar archive that a source names into the
			// destination folder; one inside a folder it copies is copied.
			if done, err := x.unpack(c.File, dst, uid, gid); done || err != nil {
				if err != nil {
					return fmt.Errorf("ADD %s: %w", c.File.Path, err)
				}
				continue
			}
		}
		if err := x.place(c.File, c.Target, uid, gid, mode); err != nil {
			return fmt.Errorf("%s %s: %w", in.Op, c.File.Path, err)
		}
	}
	return nil
}

// intoDir is where a single file named name goes: dst, or dst/name when dst is a folder.
func intoDir(dst, name string, dstIsDir bool) string {
	if dstIsDir {
		return path.Join(dst, path.Base(name))
	}
	return dst
}

// heredocFile writes a COPY here-document to a file of the work folder, expanded unless its
// delimiter was quoted, with mode 0644 as BuildKit gives it.
func (x *executor) heredocFile(in spec.Instruction, src string) (spec.ContextFile, error) {
	name := strings.Trim(strings.TrimPrefix(strings.TrimPrefix(src, "<<"), "-"), `"'`)
	for _, h := range in.Heredocs {
		if h.Name != name {
			continue
		}
		text, err := x.cfg.ExpandHeredoc(h)
		if err != nil {
			return spec.ContextFile{}, err
		}
		dir := filepath.Join(x.work.Path, "heredocs")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return spec.ContextFile{}, err
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return spec.ContextFile{}, err
		}
		return spec.ContextFile{Path: name, Source: p, Mode: 0o644, Size: int64(len(text))}, nil
	}
	return spec.ContextFile{}, fmt.Errorf("no heredoc %q", name)
}

// unpack extracts f into the folder dst if f is a tar archive (plain, gzip, bzip2 or zstd),
// and reports whether it was one.
func (x *executor) unpack(f spec.ContextFile, dst string, uid, gid int) (bool, error) {
	in, err := os.Open(f.Source)
	if err != nil {
		return false, err
	}
	defer in.Close()
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(in, h), 1<<16)
	magic, _ := br.Peek(6)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return false, err
		}
		r = gz
	case bytes.HasPrefix(magic, []byte("BZh")):
		r = bzip2.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return false, err
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return true, fmt.Errorf("xz archives are not unpacked by ADD here; COPY it and RUN tar -xJf")
	}
	tr := bufio.NewReaderSize(r, 1<<16)
	head, _ := tr.Peek(512)
	if len(head) < 512 || string(head[257:262]) != "ustar" {
		return false, nil
	}
	dir, err := securejoin.SecureJoin(x.rootfs, dst)
	if err != nil {
		return true, err
	}
	if err := mkdirAllOwned(dir, uid, gid); err != nil {
		return true, err
	}
	if err := layer.Extract(tr, dir, layer.ExtractOptions{}); err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, br)
	if f.Digest != "" && "sha256:"+hex.EncodeToString(h.Sum(nil)) != f.Digest {
		return true, fmt.Errorf("%s changed after the build was planned; run the build again", f.Source)
	}
	return true, nil
}

// place writes one file into the rootfs at target, resolving symlinks inside the rootfs.
func (x *executor) place(f spec.ContextFile, target string, uid, gid int, chmod os.FileMode) error {
	parent, base := path.Split(path.Clean(target))
	pdir, err := securejoin.SecureJoin(x.rootfs, parent)
	if err != nil {
		return err
	}
	if err := mkdirAllOwned(pdir, uid, gid); err != nil {
		return err
	}
	dst := filepath.Join(pdir, base)
	if base == "" {
		dst = pdir
	}
	mode := fs.FileMode(f.Mode)
	perm := mode.Perm()
	if chmod != 0 {
		perm = chmod
	}
	if uid < 0 {
		uid, gid = 0, 0
	}
	switch {
	case mode.IsDir():
		if fi, err := os.Lstat(dst); err == nil && !fi.IsDir() {
			if err := os.Remove(dst); err != nil {
				return err
			}
		}
		if err := os.Mkdir(dst, perm); err != nil && !os.IsExist(err) {
			return err
		}
	case mode&fs.ModeSymlink != 0:
		_ = os.Remove(dst)
		if err := os.Symlink(f.Link, dst); err != nil {
			return err
		}
		return os.Lchown(dst, uid, gid)
	case mode.IsRegular():
		if fi, err := os.Lstat(dst); err == nil && (fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0) {
			if fi.IsDir() {
				return fmt.Errorf("%s is a folder in the image", target)
			}
			_ = os.Remove(dst)
		}
		if err := copyVerified(f, dst); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported file type %s", mode.Type())
	}
	if err := os.Lchown(dst, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(dst, perm|mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	if f.Info != nil {
		_ = os.Chtimes(dst, f.Info.ModTime(), f.Info.ModTime())
	}
	return nil
}

// copyVerified copies a context file and checks that its content is still what was hashed
// into the cache key.
func copyVerified(f spec.ContextFile, dst string) error {
	in, err := localfiles.OpenVerified(f)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func mkdirAllOwned(dir string, uid, gid int) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirAllOwned(filepath.Dir(dir), uid, gid); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	if uid >= 0 {
		return os.Lchown(dir, uid, gid)
	}
	return nil
}

// fromImage lists the sources of COPY --from from the file system of what it names: a
// stage of the plan, or the image the reference was resolved to before the build.
func (x *executor) fromImage(ctx context.Context, ref string, srcs []string) ([]spec.ContextFile, func(), error) {
	st, err := x.fromState(ctx, ref)
	if err != nil {
		return nil, nil, fmt.Errorf("--%w", err)
	}
	lowers, err := x.e.snapshots(st.layers)
	if err != nil {
		return nil, nil, err
	}
	w, err := x.e.store.NewWorkDir("from-")
	if err != nil {
		return nil, nil, err
	}
	root := filepath.Join(w.Path, "rootfs")
	empty := filepath.Join(w.Path, "empty")
	os.Mkdir(root, 0o755)
	os.Mkdir(empty, 0o755)
	if err := container.MountOverlayReadOnly(append(lowers, empty), root); err != nil {
		w.Remove()
		return nil, nil, err
	}
	var files []spec.ContextFile
	for _, s := range srcs {
		p, err := securejoin.SecureJoin(root, s)
		if err != nil {
			w.Remove()
			return nil, nil, err
		}
		fs, err := localfiles.Walk(p, spec.CleanSource(s), localfiles.Matcher{})
		if err != nil {
			w.Remove()
			return nil, nil, fmt.Errorf("--from=%s: %s: %w", ref, s, err)
		}
		files = append(files, fs...)
	}
	return files, func() { w.Remove() }, nil
}
