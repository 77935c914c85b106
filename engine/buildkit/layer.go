package buildkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/solver/pb"

	"github.com/strata-build/strata/engine/imageconfig"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
)

// layer translates one layer's instructions onto c: the config instructions change the
// config, RUN becomes an exec, COPY and ADD file operations.
func (b *build) layer(c *chain, l *spec.Layer) error {
	// Each local secret's variables are session secrets of their own ids: two secrets with
	// a key of the same name give each step its own.
	var envSecrets []envSecret
	for _, name := range l.Secrets {
		pairs, err := b.e.Store.SecretEnv([]string{name})
		if err != nil {
			return err
		}
		b.mu.Lock()
		for _, kv := range pairs {
			k, v := splitKV(kv)
			id := "strata-env:" + name + ":" + k
			b.secrets[id] = []byte(v)
			envSecrets = append(envSecrets, envSecret{id: id, key: k})
		}
		b.mu.Unlock()
	}
	instrs := l.Instructions
	// A Dockerfile stage FROM another stage runs that stage's ONBUILD triggers first, and
	// spends them, as the local engine does.
	if l.Scope != "" && c.scope != "" && l.Scope != c.scope && len(c.config.Config.OnBuild) > 0 {
		triggers, err := spec.ParseTriggers(c.config.Config.OnBuild)
		if err != nil {
			return err
		}
		c.config.Config = imageconfig.Copy(c.config.Config)
		c.config.Config.OnBuild = nil
		instrs = append(triggers, instrs...)
	}
	cfg := imageconfig.New(c.config.Config, c.config.Author, c.argsOf(l), l)
	for _, in := range instrs {
		handled, err := cfg.Apply(in)
		if err != nil {
			return err
		}
		if handled {
			if in.Op == spec.OpWorkdir {
				c.st = c.st.File(llb.Mkdir(cfg.Config.WorkingDir, 0o755, llb.WithParents(true), owner(cfg.Config.User)),
					b.vertex(c, l, in.String())...)
			}
			continue
		}
		switch in.Op {
		case spec.OpRun:
			err = b.run(c, l, cfg, in, envSecrets)
		case spec.OpCopy, spec.OpAdd:
			err = b.copy(c, l, cfg, in)
		default:
			err = fmt.Errorf("%s is not supported", in.Op)
		}
		if err != nil {
			if in.Line > 0 {
				return fmt.Errorf("line %d: %s: %w", in.Line, in.String(), err)
			}
			return fmt.Errorf("%s: %w", in.String(), err)
		}
	}
	c.config.Config, c.config.Author = cfg.Config, cfg.Author
	c.args, c.scope = cfg.Args, l.Scope
	return nil
}

// owner is the chown option for files a step makes as the image's USER.
func owner(user string) llb.ChownOption {
	if user == "" {
		return llb.WithUIDGID(0, 0)
	}
	return llb.WithUser(user)
}

// run translates a RUN. The step's environment is the local engine's (imageconfig.StepEnv);
// local secrets are session secrets exposed as variables, never values in the definition.
func (b *build) run(c *chain, l *spec.Layer, cfg *imageconfig.State, in spec.Instruction, envSecrets []envSecret) error {
	flags, err := in.RunFlags()
	if err != nil {
		return err
	}
	if err := flags.Expand(cfg.Expand); err != nil {
		return err
	}
	var opts []llb.RunOption
	for _, o := range b.vertex(c, l, in.String()) {
		opts = append(opts, o)
	}
	argv, pipes, err := runArgs(cfg, in)
	if err != nil {
		return err
	}
	opts = append(opts, llb.Args(argv))
	if pipes != nil {
		opts = append(opts, llb.AddMount("/dev/pipes", *pipes, llb.Readonly))
	}
	// The proxy build args go in as BuildKit's proxy settings, which are in no cache key,
	// as they are in none of the local engine's.
	noProxy := *l
	noProxy.ProxyEnv = nil
	for _, kv := range imageconfig.StepEnv(cfg.Env(), &noProxy, nil) {
		k, v := splitKV(kv)
		opts = append(opts, llb.AddEnv(k, v))
	}
	if px, ok := proxyEnv(l.ProxyEnv); ok {
		opts = append(opts, llb.WithProxy(px))
	}
	for _, s := range envSecrets {
		opts = append(opts, llb.AddSecretWithDest(s.id, nil, llb.SecretAsEnvName(s.key)))
	}
	if u := cfg.Config.User; u != "" {
		opts = append(opts, llb.User(u))
	}
	if wd := cfg.Config.WorkingDir; wd != "" {
		opts = append(opts, llb.Dir(wd))
	}
	switch n := instructions.GetNetwork(flags); n {
	case instructions.NetworkDefault, instructions.NetworkHost:
		// buildkitd's worker network: strata starts its daemon with the host's, as the local
		// engine's steps have.
	case instructions.NetworkNone:
		opts = append(opts, llb.Network(pb.NetMode_NONE))
	default:
		return fmt.Errorf("RUN --network=%s is not supported: use host (the default) or none", n)
	}
	if s := instructions.GetSecurity(flags); s != instructions.SecuritySandbox {
		return fmt.Errorf("RUN --security=%s is not supported: steps run with Docker's default capabilities", s)
	}
	for _, m := range instructions.GetMounts(flags) {
		o, err := b.mount(m)
		if err != nil {
			return err
		}
		opts = append(opts, o)
	}
	c.st = c.st.Run(opts...).Root()
	return nil
}

// runArgs is a RUN's argv (imageconfig.RunArgv), with a heredoc script as a file of a
// state of its own, for the step to mount at /dev/pipes.
func runArgs(cfg *imageconfig.State, in spec.Instruction) ([]string, *llb.State, error) {
	argv, script, err := cfg.RunArgv(in)
	if err != nil || script == nil {
		return argv, nil, err
	}
	st := llb.Scratch().File(llb.Mkfile(script.Name, 0o755, []byte(script.Data)))
	return argv, &st, nil
}

// mount translates a RUN --mount.
func (b *build) mount(m *instructions.Mount) (llb.RunOption, error) {
	switch m.Type {
	case instructions.MountTypeSecret:
		id := m.CacheID
		if id == "" {
			id = path.Base(m.Target)
		}
		b.mu.Lock()
		_, ok := b.secrets[id]
		b.mu.Unlock()
		if !ok && m.Required {
			return nil, fmt.Errorf("RUN --mount=type=secret,id=%s: no build secret %s was given (--secret id=%s,...)", id, id, id)
		}
		var opts []llb.SecretOption
		opts = append(opts, llb.SecretID(id))
		if !m.Required {
			opts = append(opts, llb.SecretOptional)
		}
		mode, uid, gid := ownership(m, 0o400)
		if m.Env != nil {
			env := *m.Env
			if env == "" {
				env = id
			}
			if m.Target == "" {
				return llb.AddSecretWithDest(id, nil, append(opts, llb.SecretAsEnvName(env))...), nil
			}
			opts = append(opts, llb.SecretAsEnvName(env))
		}
		target := m.Target
		if target == "" {
			target = "/run/secrets/" + id
		}
		return llb.AddSecretWithDest(id, &target, append(opts, llb.SecretFileOpt(uid, gid, mode))...), nil
	case instructions.MountTypeCache:
		id := m.CacheID
		if id == "" {
			id = m.Target
		}
		sharing := llb.CacheMountShared
		switch m.CacheSharing {
		case instructions.MountSharingPrivate:
			sharing = llb.CacheMountPrivate
		case instructions.MountSharingLocked:
			sharing = llb.CacheMountLocked
		}
		if m.From != "" {
			return nil, fmt.Errorf("RUN --mount=type=cache,from=%s: %w", m.From, ErrUnsupported)
		}
		// The cache folder's owner and mode, as dockerfile2llb makes it.
		mode, uid, gid := ownership(m, 0o755)
		root := llb.Scratch().File(llb.Mkdir("/cache", os.FileMode(mode), llb.WithUIDGID(uid, gid)), llb.WithCustomName("strata cache folder"))
		return llb.AddMount(m.Target, root, llb.SourcePath("/cache"), llb.AsPersistentCacheDir("strata:"+id, sharing)), nil
	case instructions.MountTypeTmpfs:
		return llb.AddMount(m.Target, llb.Scratch(), llb.Tmpfs(llb.TmpfsSize(m.SizeLimit))), nil
	case instructions.MountTypeBind:
		st, ok := b.stages[m.From]
		if m.From == "" || !ok {
			return nil, fmt.Errorf("RUN --mount=type=bind without from=<stage>: %w", ErrUnsupported)
		}
		opts := []llb.MountOption{llb.SourcePath(m.Source)}
		if m.ReadOnly {
			opts = append(opts, llb.Readonly)
		}
		return llb.AddMount(m.Target, st.st, opts...), nil
	}
	return nil, fmt.Errorf("RUN --mount=type=%s: %w", m.Type, ErrUnsupported)
}

// ownership is a mount's mode=, uid= and gid=, root's and mode by default.
func ownership(m *instructions.Mount, mode int) (int, int, int) {
	uid, gid := 0, 0
	if m.Mode != nil {
		mode = int(*m.Mode)
	}
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	return mode, uid, gid
}

// copy translates a COPY or ADD from the layer's context, a heredoc or a stage. Files from
// the context are copied one by one to the targets the local engine gives them
// (spec.CopyPlan), from an llb.Local that serves exactly the layer's hashed files.
func (b *build) copy(c *chain, l *spec.Layer, cfg *imageconfig.State, in spec.Instruction) error {
	flags, err := in.CopyFlags()
	if err != nil {
		return err
	}
	if flags.From != "" && (flags.Parents || len(flags.Excludes) > 0) {
		return fmt.Errorf("COPY --from with --parents or --exclude: %w", ErrUnsupported)
	}
	words := make([]string, len(in.Args))
	for i, a := range in.Args {
		if words[i], err = cfg.Expand(a); err != nil {
			return err
		}
	}
	srcs, dst := words[:len(words)-1], words[len(words)-1]
	dstIsDir := strings.HasSuffix(dst, "/") || dst == "." || len(srcs) > 1
	if !path.IsAbs(dst) {
		dst = path.Join("/", cfg.Config.WorkingDir, dst)
		if dstIsDir {
			dst += "/"
		}
	}
	info := &llb.CopyInfo{CreateDestPath: true, AttemptUnpack: in.Op == spec.OpAdd, AllowWildcard: true, AllowEmptyWildcard: false}
	if flags.Chown != "" {
		ch, err := cfg.Expand(flags.Chown)
		if err != nil {
			return err
		}
		info.ChownOpt = chownOpt(ch)
	}
	var chmod os.FileMode
	if flags.Chmod != "" {
		ch, err := cfg.Expand(flags.Chmod)
		if err != nil {
			return err
		}
		m, err := strconv.ParseUint(ch, 8, 32)
		if err != nil {
			return fmt.Errorf("--chmod=%s: want an octal mode such as 755", flags.Chmod)
		}
		chmod = os.FileMode(m)
		info.Mode = &llb.ChmodOpt{Mode: chmod}
	}
	vertex := b.vertex(c, l, in.String())
	if flags.From != "" {
		from, err := b.fromState(l, flags.From)
		if err != nil {
			return err
		}
		var fa *llb.FileAction
		for _, src := range srcs {
			ci := *info
			ci.CopyDirContentsOnly, ci.FollowSymlinks = true, true
			ci.AttemptUnpack = false
			fa = chainCopy(fa, from, src, dst, &ci)
		}
		c.st = c.st.File(fa, vertex...)
		return nil
	}
	var fa *llb.FileAction
	var local []string
	for i, src := range in.Args[:len(in.Args)-1] {
		if spec.IsHeredocSource(in, src) {
			h := heredoc(in, src)
			data, err := cfg.ExpandHeredoc(h)
			if err != nil {
				return err
			}
			st := llb.Scratch().File(llb.Mkfile(h.Name, 0o644, []byte(data)))
			target := dst
			if dstIsDir {
				target = path.Join(dst, h.Name)
			}
			ci := *info
			ci.AttemptUnpack = false
			fa = chainCopy(fa, st, h.Name, target, &ci)
			continue
		}
		if in.Op == spec.OpAdd && spec.IsRemoteSource(srcs[i]) {
			st, name, err := httpSource(srcs[i], flags)
			if err != nil {
				return err
			}
			ci := *info
			ci.AttemptUnpack, ci.AllowWildcard = false, false
			target := dst
			if dstIsDir {
				target = path.Join(dst, name)
			}
			fa = chainCopy(fa, st, "/"+name, target, &ci)
			continue
		}
		local = append(local, srcs[i])
	}
	if len(local) > 0 {
		var items []spec.CopyItem
		if flags.Parents {
			items, err = spec.ParentsPlan(l.Context, local, dst)
		} else {
			items, err = spec.CopyPlan(l.Context, local, dst, dstIsDir)
		}
		if err != nil {
			return err
		}
		if items, err = localfiles.ExcludeItems(items, flags.Excludes, dst); err != nil {
			return err
		}
		ctxName := "strata-context-" + strings.TrimPrefix(l.Key, "sha256:")[:16]
		b.mu.Lock()
		b.locals[ctxName] = newContextFS(l.Context)
		b.mu.Unlock()
		// The context serves the layer's listed files only, so no include patterns are
		// needed (a name with [ or * would be read as one). Its vertex is not named after
		// the layer: a local source is never cached, and its layer may be.
		src := llb.Local(ctxName, llb.SharedKeyHint(ctxName), llb.WithCustomName("strata context of "+l.Method))
		for _, it := range items {
			mode := fs.FileMode(it.File.Mode)
			if in.Op == spec.OpAdd && mode.IsRegular() {
				// ADD unpacks a local archive into the destination folder; BuildKit would
				// unpack it into a folder at the file's own target.
				if archive, err := isArchive(it.File.Source); err != nil || archive {
					if err != nil {
						return err
					}
					return fmt.Errorf("ADD of a local archive (%s), which ADD unpacks: %w (COPY it and RUN tar, or build with the local engine)", it.File.Path, ErrUnsupported)
				}
			}
			if mode.IsDir() {
				perm := mode.Perm()
				if chmod != 0 {
					perm = chmod
				}
				opts := []llb.MkdirOption{llb.WithParents(true)}
				if info.ChownOpt != nil {
					opts = append(opts, info.ChownOpt)
				}
				if it.File.Info != nil {
					opts = append(opts, llb.WithCreatedTime(it.File.Info.ModTime()))
				}
				fa = chainMkdir(fa, it.Target, perm, opts...)
				continue
			}
			ci := *info
			ci.AllowWildcard = false
			fa = chainCopy(fa, src, "/"+it.File.Path, it.Target, &ci)
		}
	}
	if fa == nil {
		return nil
	}
	c.st = c.st.File(fa, vertex...)
	return nil
}

func heredoc(in spec.Instruction, src string) spec.Heredoc {
	name := strings.Trim(strings.TrimPrefix(strings.TrimPrefix(src, "<<"), "-"), `"'`)
	for _, h := range in.Heredocs {
		if h.Name == name {
			return h
		}
	}
	return spec.Heredoc{Name: name}
}

func chownOpt(s string) *llb.ChownOpt {
	ci := &llb.CopyInfo{}
	llb.WithUser(s).SetCopyOption(ci)
	return ci.ChownOpt
}

func chainCopy(fa *llb.FileAction, from llb.State, src, dst string, ci *llb.CopyInfo) *llb.FileAction {
	if fa == nil {
		return llb.Copy(from, src, dst, ci)
	}
	return fa.Copy(from, src, dst, ci)
}

func chainMkdir(fa *llb.FileAction, p string, m os.FileMode, opts ...llb.MkdirOption) *llb.FileAction {
	if fa == nil {
		return llb.Mkdir(p, m, opts...)
	}
	return fa.Mkdir(p, m, opts...)
}

// fromState is the state COPY --from reads: a stage of the plan, or an image the layer
// resolved to a digest.
func (b *build) fromState(l *spec.Layer, from string) (llb.State, error) {
	for _, ir := range l.Images {
		if ir.Ref != from {
			continue
		}
		if ir.Stage != "" {
			if c, ok := b.stages[ir.Stage]; ok {
				return c.st, nil
			}
			return llb.State{}, fmt.Errorf("--from=%s: stage %s is not in the plan", from, ir.Stage)
		}
		// An image the store has (a local build, a pulled one) is read from it, as bases
		// are; another is pulled by the daemon, by digest.
		if _, err := b.store.Info(context.Background(), digest.Digest(ir.Digest)); err == nil {
			return llb.OCILayout("strata/image@"+ir.Digest, llb.OCIStore("", storeID), llb.WithCustomName("strata image "+ir.Ref)), nil
		}
		name, _, _ := strings.Cut(ir.Ref, "@")
		return llb.Image(name + "@" + ir.Digest), nil
	}
	if c, ok := b.stages[from]; ok {
		return c.st, nil
	}
	return llb.State{}, fmt.Errorf("--from=%s was not resolved before the build", from)
}

// httpSource is the file an ADD names by http(s) URL, fetched by buildkitd as Docker's ADD
// fetches it (mode 0600, the Last-Modified time, not unpacked), checked against --checksum.
func httpSource(src string, flags spec.CopyFlags) (llb.State, string, error) {
	if spec.IsGitSource(src) {
		return llb.State{}, "", fmt.Errorf("ADD of a git repository: %w", ErrUnsupported)
	}
	name, err := spec.URLFileName(src, flags)
	if err != nil {
		return llb.State{}, "", err
	}
	opts := []llb.HTTPOption{llb.Filename(name), llb.Chmod(0o600)}
	if flags.Checksum != "" {
		d, err := digest.Parse(flags.Checksum)
		if err != nil {
			return llb.State{}, "", fmt.Errorf("--checksum=%s: %w", flags.Checksum, err)
		}
		opts = append(opts, llb.Checksum(d))
	}
	return llb.HTTP(src, opts...), name, nil
}

// envSecret is a local secret's variable, as a session secret.
type envSecret struct{ id, key string }

// proxyEnv is BuildKit's form of the proxy build args.
func proxyEnv(kvs []spec.KV) (llb.ProxyEnv, bool) {
	var px llb.ProxyEnv
	for _, kv := range kvs {
		switch strings.ToUpper(kv.Key) {
		case "HTTP_PROXY":
			px.HTTPProxy = kv.Value
		case "HTTPS_PROXY":
			px.HTTPSProxy = kv.Value
		case "FTP_PROXY":
			px.FTPProxy = kv.Value
		case "NO_PROXY":
			px.NoProxy = kv.Value
		case "ALL_PROXY":
			px.AllProxy = kv.Value
		}
	}
	return px, px != (llb.ProxyEnv{})
}

// isArchive says whether ADD would unpack a local file: a tar archive, plain or compressed
// (gzip, bzip2, xz, zstd), as Docker tells one.
func isArchive(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	for _, magic := range [][]byte{{0x1f, 0x8b}, []byte("BZh"), {0xfd, '7', 'z', 'X', 'Z', 0}, {0x28, 0xb5, 0x2f, 0xfd}} {
		if bytes.HasPrefix(head, magic) {
			return true, nil
		}
	}
	return len(head) >= 262 && string(head[257:262]) == "ustar", nil
}
