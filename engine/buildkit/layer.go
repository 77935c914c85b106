package buildkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/solver/pb"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/engine/imageconfig"
	"github.com/strata-build/strata/gofunc"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/secrets"
	"github.com/strata-build/strata/spec"
)

// layer translates one layer's instructions onto c: the config instructions change the
// config, RUN becomes an exec, COPY and ADD file operations.
func (b *build) layer(ctx context.Context, c *chain, l *spec.Layer) error {
	if len(l.Artifacts) > 0 {
		// The artifacts (a python-build-standalone build, micromamba) are fetched and
		// checked on this machine, as the local engine fetches them, and join the layer's
		// context, which the daemon reads through the session.
		var log secrets.LineWriter = func(line string) {
			ev := engine.Event{Time: time.Now(), Index: b.index[l.Key], Total: len(b.index), Method: l.Method, Title: l.Title, Key: l.Key, Status: engine.StatusLog, Line: line}
			b.emit(ev)
		}
		files, release, err := b.e.Store.ArtifactFiles(ctx, l.Artifacts, log)
		if err != nil {
			return &engine.BuildError{Index: b.index[l.Key], Method: l.Method, Key: l.Key, Command: "fetch artifacts", Err: err}
		}
		b.releases = append(b.releases, release)
		withFiles := *l
		withFiles.Context = slices.Concat(l.Context, files)
		l = &withFiles
	}
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
	if l.Function != nil {
		if err := b.function(c, l, cfg, envSecrets); err != nil {
			return err
		}
	}
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

// runsAsRoot says whether a step of USER user surely runs as root. The local engine lends
// the package caches to root's steps alone; here a user name is not looked up, and gets none.
func runsAsRoot(user string) bool {
	name, _, _ := strings.Cut(user, ":")
	return name == "" || name == "root" || name == "0"
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
	// The proxy build args are variables of the step as given, as in the local engine (and
	// buildah). BuildKit's own proxy settings (llb.WithProxy), which Docker's frontend uses,
	// would keep them out of the daemon's cache key, but set every variable in both cases:
	// a step that writes its environment would make another file than the local engine.
	env := imageconfig.StepEnv(cfg.Env(), l, nil)
	if !b.e.noPackageCaches && runsAsRoot(cfg.Config.User) {
		// The package managers' download caches, as the local engine lends them: cache
		// mounts of buildkitd, shared by every build on it. apt's is the local engine's
		// proxy on its host, which a remote daemon cannot reach: apt downloads as usual.
		for _, name := range l.Caches {
			pc, ok := imageconfig.LookupPackageCache(name)
			if !ok || name == "apt" {
				continue
			}
			target := imageconfig.PackageCacheRoot + "/" + name
			sharing := llb.CacheMountShared
			if pc.Locked {
				sharing = llb.CacheMountLocked
			}
			opts = append(opts, llb.AddMount(target, llb.Scratch(), llb.AsPersistentCacheDir("strata-package-cache:"+name, sharing)))
			env = pc.Lend(env, target)
		}
	}
	process, err := b.process(l, cfg, env, envSecrets)
	if err != nil {
		return err
	}
	opts = append(opts, process...)
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
	sshSock := false
	for _, kv := range cfg.Env() {
		sshSock = sshSock || strings.HasPrefix(kv, "SSH_AUTH_SOCK=")
	}
	for _, m := range instructions.GetMounts(flags) {
		o, err := b.mount(l, m)
		if err != nil {
			return err
		}
		if o == nil {
			continue // an optional ssh agent the build was not given
		}
		opts = append(opts, o)
		if m.Type == instructions.MountTypeSSH && !sshSock {
			// As BuildKit's Dockerfile frontend and the local engine: the step finds the
			// first agent by SSH_AUTH_SOCK, unless the image sets it.
			opts = append(opts, llb.AddEnv("SSH_AUTH_SOCK", sshTarget(m)))
			sshSock = true
		}
	}
	c.st = c.st.Run(opts...).Root()
	return nil
}

// function translates a run_function layer's call: the program (the build's Linux build of
// the Go program) runs in a step with the function's name in its environment, as with the
// local engine, and its file system changes are the layer. The program is sent through the
// session and mounted read-only at gofunc.Program, the arguments at gofunc.ArgsFile; the
// program enforces the timeout itself and reports a failure by its exit code and its log,
// since BuildKit discards the mounts of a failed step (gofunc.EnvExit, gofunc.EnvTimeout).
//
// BuildKit keys the step by the program's bytes too, so a program rebuilt with other
// changes runs the function again on the daemon, where the local engine keys it by the
// function's source (gofunc.Identity) alone: more rebuilds, never a stale layer.
func (b *build) function(c *chain, l *spec.Layer, cfg *imageconfig.State, envSecrets []envSecret) error {
	f := l.Function
	if b.o.Program == "" {
		return fmt.Errorf("the layer runs the Go function %s, and the build was given no program to run it with", f.Name)
	}
	info, err := os.Stat(b.o.Program)
	if err != nil {
		return fmt.Errorf("the program for run_function: %w", err)
	}
	name := "strata-program"
	b.mu.Lock()
	b.locals[name] = newContextFS([]spec.ContextFile{{Path: "program", Source: b.o.Program, Mode: 0o755, Size: info.Size(), Info: info}})
	b.mu.Unlock()
	program := llb.Local(name, llb.SharedKeyHint(name), llb.WithCustomName("strata program for run_function"))
	fn := llb.Scratch().File(llb.Mkfile(path.Base(gofunc.ArgsFile), 0o644, []byte(f.Args)).Mkfile(path.Base(gofunc.Program), 0o755, nil))
	out := llb.Scratch().File(llb.Mkdir("/out", 0o777))
	opts := []llb.RunOption{
		llb.Args([]string{gofunc.Program}),
		llb.AddMount(gofunc.Dir, fn, llb.Readonly),
		llb.AddMount(gofunc.Program, program, llb.SourcePath("/program"), llb.Readonly),
		llb.AddMount(gofunc.Out, out, llb.SourcePath("/out")),
	}
	for _, o := range b.vertex(c, l, "run_function "+f.Name) {
		opts = append(opts, o)
	}
	env := append(imageconfig.StepEnv(cfg.Env(), l, nil), gofunc.EnvName+"="+f.Name, gofunc.EnvCalled+"=1", gofunc.EnvExit+"=1")
	if f.Timeout > 0 {
		env = append(env, gofunc.EnvTimeout+"="+strconv.FormatInt(f.Timeout, 10))
	}
	process, err := b.process(l, cfg, env, envSecrets)
	if err != nil {
		return err
	}
	c.st = c.st.Run(append(opts, process...)...).Root()
	return nil
}

// process are the options of a step's process that RUN and run_function share: its
// environment (env, and the local secrets as session secrets), user, working folder and GPUs.
func (b *build) process(l *spec.Layer, cfg *imageconfig.State, env []string, envSecrets []envSecret) ([]llb.RunOption, error) {
	var opts []llb.RunOption
	for _, kv := range env {
		k, v := splitKV(kv)
		opts = append(opts, llb.AddEnv(k, v))
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
	if l.GPU != nil {
		devices, err := b.gpuDevices(l.GPU)
		if err != nil {
			return nil, err
		}
		opts = append(opts, devices...)
	}
	return opts, nil
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

// mount translates a RUN --mount; nil for an optional ssh agent that the build was not
// given, which the step goes without, as with the local engine.
func (b *build) mount(l *spec.Layer, m *instructions.Mount) (llb.RunOption, error) {
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
		cache := llb.AsPersistentCacheDir("strata:"+id, sharing)
		if m.From != "" {
			// A cache seeded from a stage or an image: BuildKit starts it from that
			// folder the first time.
			from, err := b.fromState(l, m.From)
			if err != nil {
				return nil, err
			}
			return llb.AddMount(m.Target, from, llb.SourcePath(sourcePath(m)), cache), nil
		}
		if m.UID == nil && m.GID == nil && m.Mode == nil {
			return llb.AddMount(m.Target, llb.Scratch(), cache), nil
		}
		// The cache folder's owner and mode, as dockerfile2llb makes it. BuildKit keys a
		// cache by its id and this folder, so, as in Docker, mounts of one id with another
		// owner or mode are another cache.
		mode, uid, gid := ownership(m, 0o755)
		root := llb.Scratch().File(llb.Mkdir("/cache", os.FileMode(mode), llb.WithUIDGID(uid, gid)), llb.WithCustomName("strata cache folder"))
		return llb.AddMount(m.Target, root, llb.SourcePath("/cache"), cache), nil
	case instructions.MountTypeTmpfs:
		return llb.AddMount(m.Target, llb.Scratch(), llb.Tmpfs(llb.TmpfsSize(m.SizeLimit))), nil
	case instructions.MountTypeBind:
		var from llb.State
		if m.From == "" {
			// The layer's context: exactly its hashed files, as for COPY.
			from = b.context(l)
		} else {
			var err error
			if from, err = b.fromState(l, m.From); err != nil {
				return nil, err
			}
		}
		opts := []llb.MountOption{llb.SourcePath(sourcePath(m))}
		if m.ReadOnly {
			opts = append(opts, llb.Readonly)
		}
		return llb.AddMount(m.Target, from, opts...), nil
	case instructions.MountTypeSSH:
		id := m.CacheID
		if id == "" {
			id = "default"
		}
		if _, ok := b.o.SSH[id]; !ok {
			if m.Required {
				return nil, fmt.Errorf("RUN --mount=type=ssh,id=%s is required, and the build was given no SSH agent %q (strata build --ssh %s)", id, id, id)
			}
			return nil, nil
		}
		mode, uid, gid := ownership(m, 0o600)
		return llb.AddSSHSocket(llb.SSHID(id), llb.SSHSocketOpt(sshTarget(m), uid, gid, mode)), nil
	}
	return nil, fmt.Errorf("RUN --mount=type=%s: %w", m.Type, ErrUnsupported)
}

// sourcePath is a bind or cache mount's source= in its from=, "/" by default.
func sourcePath(m *instructions.Mount) string {
	if m.Source == "" {
		return "/"
	}
	return m.Source
}

// sshTarget is where an ssh mount's socket is: its target=, or the local engine's default.
func sshTarget(m *instructions.Mount) string {
	if m.Target == "" {
		return "/run/buildkit/ssh_agent.0"
	}
	return m.Target
}

// context is the state of a layer's context: an llb.Local that serves exactly the layer's
// hashed files, each checked against its digest as it is sent. Its vertex is not named after
// the layer: a local source is never cached, and its layer may be.
func (b *build) context(l *spec.Layer) llb.State {
	name := "strata-context-" + strings.TrimPrefix(l.Key, "sha256:")[:16]
	b.mu.Lock()
	if _, ok := b.locals[name]; !ok {
		b.locals[name] = newContextFS(l.Context)
	}
	b.mu.Unlock()
	// The context serves the layer's listed files only, so no include patterns are needed
	// (a name with [ or * would be read as one).
	return llb.Local(name, llb.SharedKeyHint(name), llb.WithCustomName("strata context of "+l.Method))
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
		// As dockerfile2llb copies from a stage or an image: --exclude's patterns, and
		// --parents as an include pattern below the source's "/./" pivot (or "/").
		var fa *llb.FileAction
		for _, src := range srcs {
			ci := *info
			ci.CopyDirContentsOnly, ci.FollowSymlinks = true, true
			ci.AttemptUnpack = false
			ci.ExcludePatterns = flags.Excludes
			if flags.Parents {
				parent, pattern, ok := strings.Cut(src, "/./")
				if !ok {
					parent, pattern = "/", src
				}
				pattern = strings.TrimPrefix(path.Clean("/"+pattern), "/")
				ci.IncludePatterns = []string{pattern}
				ci.AllowEmptyWildcard = true
				if !strings.ContainsAny(parent+pattern, "*?[") {
					ci.RequiredPaths = []string{path.Join("/", parent, pattern)}
				}
				src = parent
			}
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
		if in.Op == spec.OpAdd && spec.IsGitSource(srcs[i]) {
			// The repository's files go into dst, as the local engine's checkout.
			ci := *info
			ci.AttemptUnpack, ci.AllowWildcard, ci.CopyDirContentsOnly = false, false, true
			fa = chainCopy(fa, gitSource(l, srcs[i], flags), "/", dst, &ci)
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
		src := b.context(l)
		for _, it := range items {
			mode := fs.FileMode(it.File.Mode)
			ci := *info
			ci.AllowWildcard, ci.AttemptUnpack = false, false
			if in.Op == spec.OpAdd && mode.IsRegular() && spec.NamedByAny(local, it.File.Path) {
				archive, err := isArchive(it.File.Source)
				if err != nil {
					return err
				}
				if archive {
					// ADD unpacks a local archive that a source names into the destination,
					// as the local engine does: BuildKit unpacks it there, given the
					// destination. One inside a folder ADD copies is copied.
					ci.AttemptUnpack = true
					fa = chainCopy(fa, src, "/"+it.File.Path, dst, &ci)
					continue
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

// gitSource is a repository an ADD names ("URL#ref:subdir"), fetched by buildkitd at the
// commit the plan resolved, as the local engine checks it out; the ref as written when it
// could not be resolved.
func gitSource(l *spec.Layer, src string, flags spec.CopyFlags) llb.State {
	repo, ref, subdir := spec.SplitGitSource(src)
	for _, r := range l.Remote {
		if r.Ref == src && r.Version != "" {
			ref = r.Version
		}
	}
	opts := []llb.GitOption{llb.WithCustomName("strata git " + repo)}
	if ref != "" {
		opts = append(opts, llb.GitRef(ref))
	}
	if subdir != "" {
		opts = append(opts, llb.GitSubDir(subdir))
	}
	if flags.KeepGitDir {
		opts = append(opts, llb.KeepGitDir())
	}
	return llb.Git(repo, "", opts...)
}

// envSecret is a local secret's variable, as a session secret.
type envSecret struct{ id, key string }

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
