package engine

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/klauspost/compress/zstd"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// hostCABundle is the host's CA bundle, offered to build steps for HTTPS through proxies
// whose CA only the host trusts. It is mounted, never copied into a layer.
const hostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// caEnv points common tools at the mounted bundle.
var caEnv = []string{
	"SSL_CERT_FILE=/.strata/ca-certificates.crt", "REQUESTS_CA_BUNDLE=/.strata/ca-certificates.crt",
	"PIP_CERT=/.strata/ca-certificates.crt", "CURL_CA_BUNDLE=/.strata/ca-certificates.crt",
	"GIT_SSL_CAINFO=/.strata/ca-certificates.crt", "NODE_EXTRA_CA_CERTS=/.strata/ca-certificates.crt",
}

// executor runs one layer's instructions on top of a state.
type executor struct {
	e         *Engine
	st        *state
	layer     *spec.Layer
	log       io.Writer
	secretEnv []string
	key       string

	work    *store.WorkDir
	rootfs  string
	upper   string
	argList []string
}

func (x *executor) run(ctx context.Context) (*store.LayerDesc, error) {
	defer func() {
		if x.work != nil {
			x.work.Remove()
		}
	}()
	if x.layer.GPU != nil {
		if _, err := os.Stat("/dev/nvidiactl"); err != nil {
			return nil, fmt.Errorf("the layer asks for GPU %s:%d, and this machine has none (no /dev/nvidiactl); remove gpu or build on a machine with one", x.layer.GPU.Type, x.layer.GPU.Count)
		}
		return nil, fmt.Errorf("the layer asks for GPU %s:%d: passing GPUs into build steps needs the NVIDIA container toolkit, which strata's local engine does not configure", x.layer.GPU.Type, x.layer.GPU.Count)
	}
	if len(x.layer.Artifacts) > 0 {
		a := x.layer.Artifacts[0]
		return nil, fmt.Errorf("add_python needs the %s %s release, which the local engine does not fetch; use debian_slim, or a registry image that has Python", a.Name, a.Version)
	}
	bootstrapped := x.layer.Base != nil && x.layer.Base.Kind == spec.BaseDebian
	for _, in := range x.layer.Instructions {
		if bootstrapped && in.Op == spec.OpRun {
			continue // ran as mmdebstrap hooks
		}
		if err := x.do(ctx, in); err != nil {
			var be *BuildError
			if e, ok := err.(*BuildError); ok {
				be = e
			} else {
				be = &BuildError{Command: in.String(), Err: err}
			}
			return nil, be
		}
	}
	if x.work == nil {
		return nil, nil
	}
	store.UnmountAll(x.rootfs)
	if empty, err := layer.Empty(x.upper); err != nil || empty {
		return nil, err
	}
	desc, err := layer.Commit(x.e.Store, x.upper, layer.Options{})
	if err != nil {
		return nil, err
	}
	if err := x.e.Store.CommitSnapshot(x.upper, desc.DiffID); err != nil {
		return nil, err
	}
	return &desc, nil
}

// mount assembles the rootfs on first use: the parent chain's snapshots under a fresh upper.
func (x *executor) mount() error {
	if x.work != nil {
		return nil
	}
	lowers, err := x.e.snapshots(x.st.layers)
	if err != nil {
		return err
	}
	w, err := x.e.Store.NewWorkDir("build-")
	if err != nil {
		return err
	}
	x.work = w
	x.upper, x.rootfs = filepath.Join(w.Path, "upper"), filepath.Join(w.Path, "rootfs")
	for _, d := range []string{x.upper, x.rootfs, filepath.Join(w.Path, "work")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	return container.MountOverlay(lowers, x.upper, filepath.Join(w.Path, "work"), x.rootfs)
}

// env is the environment words expand against: ARG values, then ENV, which wins.
func (x *executor) env() []string {
	return append(append([]string(nil), x.argList...), x.st.config.Config.Env...)
}

func (x *executor) expand(word string) (string, error) {
	s, _, err := shell.NewLex('\\').ProcessWord(word, shell.EnvsFromSlice(x.env()))
	return s, err
}

func setEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

func (x *executor) do(ctx context.Context, in spec.Instruction) error {
	cfg := &x.st.config.Config
	switch in.Op {
	case spec.OpEnv:
		for _, kv := range in.Pairs {
			v, err := x.expand(kv.Value)
			if err != nil {
				return err
			}
			cfg.Env = setEnv(cfg.Env, kv.Key, v)
		}
	case spec.OpArg:
		build := map[string]string{}
		for _, kv := range x.layer.BuildArgs {
			build[kv.Key] = kv.Value
		}
		for _, kv := range in.Pairs {
			v, given := build[kv.Key]
			if !given {
				if kv.NoValue {
					continue
				}
				var err error
				if v, err = x.expand(kv.Value); err != nil {
					return err
				}
			}
			x.argList = setEnv(x.argList, kv.Key, v)
		}
	case spec.OpLabel:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range in.Pairs {
			k, err := x.expand(kv.Key)
			if err != nil {
				return err
			}
			v, err := x.expand(kv.Value)
			if err != nil {
				return err
			}
			cfg.Labels[k] = v
		}
	case spec.OpWorkdir:
		dir, err := x.expand(in.Args[0])
		if err != nil {
			return err
		}
		if !path.IsAbs(dir) {
			dir = path.Join("/", cfg.WorkingDir, dir)
		}
		cfg.WorkingDir = path.Clean(dir)
		if err := x.mount(); err != nil {
			return err
		}
		p, err := securejoin.SecureJoin(x.rootfs, cfg.WorkingDir)
		if err != nil {
			return err
		}
		// As BuildKit: folders WORKDIR creates belong to the current USER.
		uid, gid := -1, -1
		if cfg.User != "" {
			u, g, err := container.LookupUser(x.rootfs, cfg.User)
			if err != nil {
				return err
			}
			uid, gid = int(u), int(g)
		}
		return mkdirAllOwned(p, uid, gid)
	case spec.OpUser:
		u, err := x.expand(in.Args[0])
		if err != nil {
			return err
		}
		cfg.User = u
	case spec.OpExpose:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, a := range in.Args {
			p, err := x.expand(a)
			if err != nil {
				return err
			}
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	case spec.OpVolume:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, a := range in.Args {
			v, err := x.expand(a)
			if err != nil {
				return err
			}
			cfg.Volumes[v] = struct{}{}
		}
	case spec.OpStopSignal:
		s, err := x.expand(in.Args[0])
		if err != nil {
			return err
		}
		cfg.StopSignal = s
	case spec.OpShell:
		cfg.Shell = append([]string(nil), in.Args...)
	case spec.OpEntrypoint:
		cfg.Entrypoint = x.argv(in)
		// As in Docker, a new entrypoint drops the inherited command.
		cfg.Cmd = nil
	case spec.OpCmd:
		cfg.Cmd = x.argv(in)
	case spec.OpRun:
		return x.runStep(ctx, in)
	case spec.OpCopy, spec.OpAdd:
		return x.copyStep(ctx, in)
	default:
		return fmt.Errorf("%s is not supported", in.Op)
	}
	return nil
}

func (x *executor) shell() []string {
	if s := x.st.config.Config.Shell; len(s) > 0 {
		return s
	}
	return []string{"/bin/sh", "-c"}
}

// argv turns an exec- or shell-form instruction into argv.
func (x *executor) argv(in spec.Instruction) []string {
	if in.JSON {
		return append([]string{}, in.Args...)
	}
	if len(in.Args) == 0 {
		return nil
	}
	return append(append([]string{}, x.shell()...), in.Args[0])
}

func (x *executor) runStep(ctx context.Context, in spec.Instruction) error {
	if err := x.mount(); err != nil {
		return err
	}
	var mounts []container.Mount
	for _, f := range in.Flags {
		m, err := x.runMount(f)
		if err != nil {
			return err
		}
		mounts = append(mounts, m)
	}
	support, err := supportMounts(x.work.Path)
	if err != nil {
		return err
	}
	mounts = append(support, mounts...)
	for _, v := range x.layer.Volumes {
		dir := x.e.Store.Path("volumes", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		mounts = append(mounts, container.Mount{Source: dir, Target: v.Path})
	}
	env := x.env()
	for _, kv := range x.layer.Env {
		env = setEnv(env, kv.Key, kv.Value)
	}
	env = append(env, x.secretEnv...)
	if _, err := os.Stat(hostCABundle); err == nil {
		env = append(env, caEnv...)
	}
	if !hasKey(env, "PATH") {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	args := x.argv(in)
	fmt.Fprintf(x.log, "+ %s\n", in.String())
	bundle, err := os.MkdirTemp(x.work.Path, "bundle-")
	if err != nil {
		return err
	}
	err = (&container.Runner{Runtime: x.e.Runtime, Root: filepath.Join(x.work.Path, "runc")}).Run(ctx, "strata-"+randomID(), bundle, container.Spec{
		Rootfs:  x.rootfs,
		Args:    args,
		Env:     env,
		Cwd:     x.st.config.Config.WorkingDir,
		User:    x.st.config.Config.User,
		Mounts:  mounts,
		Stdout:  x.log,
		Stderr:  x.log,
		Cleanup: true,
	})
	if ee, ok := err.(*container.ExitError); ok {
		return &BuildError{Command: in.String(), ExitCode: ee.Code, Err: err}
	}
	return err
}

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// supportMounts are what every container gets and no layer keeps: copies of the host's DNS
// settings and hosts file, and its CA bundle. They are made in the work folder.
func supportMounts(work string) ([]container.Mount, error) {
	dir := filepath.Join(work, "support")
	if err := os.MkdirAll(filepath.Join(dir, "ca"), 0o755); err != nil {
		return nil, err
	}
	var mounts []container.Mount
	for _, f := range []struct{ host, name, target string }{
		{"/etc/resolv.conf", "resolv.conf", "/etc/resolv.conf"},
		{"/etc/hosts", "hosts", "/etc/hosts"},
	} {
		b, err := os.ReadFile(f.host)
		if err != nil {
			continue
		}
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		mounts = append(mounts, container.Mount{Source: p, Target: f.target})
	}
	if b, err := os.ReadFile(hostCABundle); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "ca", "ca-certificates.crt"), b, 0o644); err != nil {
			return nil, err
		}
		mounts = append(mounts, container.Mount{Source: filepath.Join(dir, "ca"), Target: "/.strata", ReadOnly: true})
	}
	return mounts, nil
}

// runMount handles RUN --mount=type=cache (a persistent folder shared by builds); other
// RUN flags are refused with the reason.
func (x *executor) runMount(flag string) (container.Mount, error) {
	v, ok := strings.CutPrefix(flag, "--mount=")
	if !ok {
		return container.Mount{}, fmt.Errorf("RUN flag %s is not supported (only --mount=type=cache)", flag)
	}
	opts := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, "=")
		opts[k] = val
	}
	if opts["type"] != "cache" {
		return container.Mount{}, fmt.Errorf("RUN --mount=type=%s is not supported (only type=cache); use secrets= or a volume instead", opts["type"])
	}
	target := opts["target"]
	if target == "" {
		target = opts["dst"]
	}
	if !path.IsAbs(target) {
		return container.Mount{}, fmt.Errorf("RUN --mount=type=cache needs an absolute target=")
	}
	id := opts["id"]
	if id == "" {
		id = target
	}
	sum := sha256.Sum256([]byte(id))
	dir := x.e.Store.Path("cachemounts", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return container.Mount{}, err
	}
	return container.Mount{Source: dir, Target: target}, nil
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// copyStep runs COPY or ADD: from the layer's context, or --from another image.
func (x *executor) copyStep(ctx context.Context, in spec.Instruction) error {
	if err := x.mount(); err != nil {
		return err
	}
	var chown, chmod, from string
	for _, f := range in.Flags {
		k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		switch k {
		case "chown":
			chown = v
		case "chmod":
			chmod = v
		case "from":
			from = v
		case "link":
		default:
			return fmt.Errorf("%s flag %s is not supported", in.Op, f)
		}
	}
	words := make([]string, len(in.Args))
	for i, a := range in.Args {
		w, err := x.expand(a)
		if err != nil {
			return err
		}
		words[i] = w
	}
	srcs, dst := words[:len(words)-1], words[len(words)-1]
	uid, gid := -1, -1
	if chown != "" {
		c, err := x.expand(chown)
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
	if chmod != "" {
		m, err := strconv.ParseUint(chmod, 8, 32)
		if err != nil {
			return fmt.Errorf("--chmod=%s: want an octal mode such as 755", chmod)
		}
		mode = os.FileMode(m)
	}
	files := x.layer.Context
	if from != "" {
		var cleanup func()
		var err error
		files, cleanup, err = x.fromImage(ctx, from, srcs)
		if err != nil {
			return err
		}
		defer cleanup()
	}
	if !path.IsAbs(dst) {
		dst = path.Join("/", x.st.config.Config.WorkingDir, dst)
	}
	plan, err := copyPlan(files, srcs, dst, strings.HasSuffix(words[len(words)-1], "/"))
	if err != nil {
		return err
	}
	for _, c := range plan {
		if in.Op == spec.OpAdd && from == "" && fs.FileMode(c.file.Mode).IsRegular() {
			// As Docker: ADD unpacks a local tar archive into the destination folder.
			if done, err := x.unpack(c.file, dst, uid, gid); done || err != nil {
				if err != nil {
					return fmt.Errorf("ADD %s: %w", c.file.Path, err)
				}
				continue
			}
		}
		if err := x.place(c.file, c.target, uid, gid, mode); err != nil {
			return fmt.Errorf("%s %s: %w", in.Op, c.file.Path, err)
		}
	}
	return nil
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
	if err := layer.Extract(tr, dir, nil); err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, br)
	if f.Digest != "" && "sha256:"+hex.EncodeToString(h.Sum(nil)) != f.Digest {
		return true, fmt.Errorf("%s changed after the build was planned; run the build again", f.Source)
	}
	return true, nil
}

type copyItem struct {
	file   spec.ContextFile
	target string
}

// copyPlan maps context files to their destinations with Docker's COPY rules: a folder's
// contents are copied, not the folder; several sources or a trailing "/" make dst a folder.
func copyPlan(files []spec.ContextFile, srcs []string, dst string, dstIsDir bool) ([]copyItem, error) {
	byPath := map[string]spec.ContextFile{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	paths := make([]string, 0, len(files))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if len(srcs) > 1 {
		dstIsDir = true
	}
	var out []copyItem
	for _, s := range srcs {
		src := strings.TrimPrefix(path.Clean("/"+s), "/")
		var matches []string
		if src == "" {
			matches = []string{""}
		} else if _, ok := byPath[src]; ok {
			matches = []string{src}
		} else {
			for _, p := range paths {
				if ok, _ := path.Match(src, p); ok {
					matches = append(matches, p)
				}
			}
			if len(matches) == 0 && hasChildren(paths, src) {
				matches = []string{src} // a folder that is only implied by its files
			}
			if len(matches) > 1 || strings.ContainsAny(src, "*?[") {
				dstIsDir = true
			}
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("source %q is not in the build context", s)
		}
		for _, m := range matches {
			f, isFile := byPath[m]
			if isFile && !fs.FileMode(f.Mode).IsDir() {
				target := dst
				if dstIsDir {
					target = path.Join(dst, path.Base(m))
				}
				out = append(out, copyItem{f, target})
				continue
			}
			prefix := m + "/"
			if m == "" {
				prefix = ""
			}
			if isFile {
				out = append(out, copyItem{f, dst})
			}
			for _, p := range paths {
				if strings.HasPrefix(p, prefix) && p != m {
					out = append(out, copyItem{byPath[p], path.Join(dst, strings.TrimPrefix(p, prefix))})
				}
			}
		}
	}
	return out, nil
}

func hasChildren(paths []string, dir string) bool {
	i := sort.SearchStrings(paths, dir+"/")
	return i < len(paths) && strings.HasPrefix(paths[i], dir+"/")
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
	in, err := os.Open(f.Source)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if f.Digest != "" && "sha256:"+hex.EncodeToString(h.Sum(nil)) != f.Digest {
		return fmt.Errorf("%s changed after the build was planned; run the build again", f.Source)
	}
	return nil
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

// fromImage lists the sources of COPY --from=IMAGE from that image's filesystem: a local
// image by name, or one pulled from its registry.
func (x *executor) fromImage(ctx context.Context, ref string, srcs []string) ([]spec.ContextFile, func(), error) {
	var layers []store.LayerDesc
	if img, err := x.e.Store.Image(ref); err == nil {
		m, err := x.e.manifest(img)
		if err != nil {
			return nil, nil, err
		}
		layers = m
	} else {
		st, err := x.e.pull(ctx, &spec.Base{Kind: spec.BaseRegistry, Ref: ref}, x.log)
		if err != nil {
			return nil, nil, fmt.Errorf("--from=%s: %w", ref, err)
		}
		layers = st.layers
	}
	lowers, err := x.e.snapshots(layers)
	if err != nil {
		return nil, nil, err
	}
	w, err := x.e.Store.NewWorkDir("from-")
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
		fs, err := localfiles.Walk(p, strings.TrimPrefix(path.Clean("/"+s), "/"), localfiles.Matcher{})
		if err != nil {
			w.Remove()
			return nil, nil, fmt.Errorf("--from=%s: %s: %w", ref, s, err)
		}
		files = append(files, fs...)
	}
	return files, func() { w.Remove() }, nil
}
