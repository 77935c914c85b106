package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/engine/imageconfig"
	"github.com/strata-build/strata/gofunc"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// hostCABundle is the host's CA bundle, offered to build steps for HTTPS through proxies
// whose CA only the host trusts. It is mounted, never copied into a layer.
const hostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// caEnv points common tools at the mounted bundle, where the image or the step has not
// chosen a bundle of its own.
var caEnv = []string{
	"SSL_CERT_FILE=/.strata/ca-certificates.crt", "REQUESTS_CA_BUNDLE=/.strata/ca-certificates.crt",
	"PIP_CERT=/.strata/ca-certificates.crt", "CURL_CA_BUNDLE=/.strata/ca-certificates.crt",
	"GIT_SSL_CAINFO=/.strata/ca-certificates.crt", "NODE_EXTRA_CA_CERTS=/.strata/ca-certificates.crt",
}

// executor runs one layer's instructions on top of the state below it.
type executor struct {
	e         *Engine
	b         *build
	below     *state
	layer     *spec.Layer
	cfg       *imageconfig.State
	log       io.Writer
	secretEnv []string
	// triggers are the base image's ONBUILD instructions, run before the layer's own.
	triggers []spec.Instruction
	// devices are the CDI devices (GPUs) the layer's steps get.
	devices []string
	// artifacts are the files of the layer's artifacts, context files for its COPYs.
	artifacts []spec.ContextFile

	work   *store.WorkDir
	rootfs string
	upper  string
	// fresh is the diff ID of the snapshot the layer committed, if no other had it: removed
	// again if the layer's record cannot be written.
	fresh string
}

func newExecutor(b *build, below *state, l *spec.Layer, log io.Writer, secretEnv, args []string) *executor {
	return &executor{e: b.e, b: b, below: below, layer: l, cfg: imageconfig.New(below.config.Config, below.config.Author, args, l), log: log, secretEnv: secretEnv}
}

// run executes the layer and commits what it changed as a layer blob and snapshot; nil if
// it changed no file.
func (x *executor) run(ctx context.Context) (*store.LayerDesc, error) {
	defer func() {
		if x.work != nil {
			x.work.Remove()
		}
	}()
	var err error
	if x.devices, err = x.e.gpuDevices(x.layer.GPU); err != nil {
		return nil, err
	}
	if len(x.layer.Artifacts) > 0 {
		dir, err := x.e.store.NewWorkDir("artifacts-")
		if err != nil {
			return nil, err
		}
		defer dir.Remove()
		if x.artifacts, err = x.e.artifactFiles(ctx, x.layer.Artifacts, dir.Path, x.log); err != nil {
			return nil, &engine.BuildError{Command: "fetch artifacts", Err: err}
		}
	}
	if x.layer.Function != nil {
		if err := x.runFunction(ctx); err != nil {
			return nil, err
		}
	}
	bootstrapped := x.layer.Base != nil && x.layer.Base.Kind == spec.BaseDebian
	for _, in := range append(append([]spec.Instruction(nil), x.triggers...), x.layer.Instructions...) {
		if bootstrapped && in.Op == spec.OpRun {
			continue // ran as mmdebstrap hooks
		}
		if err := x.do(ctx, in); err != nil {
			var be *engine.BuildError
			if !errors.As(err, &be) {
				be = &engine.BuildError{Command: in.String(), Err: err}
			}
			if in.Line > 0 && !strings.HasPrefix(be.Command, "line ") {
				be.Command = fmt.Sprintf("line %d: %s", in.Line, be.Command)
			}
			// Seen now, before the step's files are removed: a step that failed with the
			// disk all but full most likely failed for want of space.
			if be.ExitCode != 0 {
				cause := be.Err
				if cause == nil {
					cause = &engine.ExitError{Code: be.ExitCode}
				}
				if full := x.e.explainFull(cause, true); full != cause {
					be.Err = full
				}
			}
			return nil, be
		}
	}
	if x.work == nil {
		return nil, nil
	}
	container.UnmountAll(x.rootfs)
	if empty, err := layer.Empty(x.upper); err != nil || empty {
		return nil, err
	}
	epoch := epochTime(x.layer.SourceDateEpoch)
	if epoch != nil {
		// The snapshot is what containers of the image see: the same times as the layer.
		if err := layer.ClampTimes(x.upper, *epoch); err != nil {
			return nil, err
		}
	}
	desc, err := commitLayer(func(w io.Writer) error {
		return layer.WriteTar(x.upper, w, layer.Options{Epoch: epoch})
	})
	if err != nil {
		return nil, err
	}
	if !x.e.store.HasSnapshot(desc.DiffID) {
		x.fresh = desc.DiffID
	}
	if err := x.e.store.CommitSnapshot(x.upper, desc.DiffID); err != nil {
		return nil, err
	}
	return &desc, nil
}

func epochTime(epoch *int64) *time.Time {
	if epoch == nil {
		return nil
	}
	t := time.Unix(*epoch, 0).UTC()
	return &t
}

// commitLayer records the tar that write produces by its diff ID, computed while the tar
// streams: the layer is its snapshot and that digest. Its compressed blob is made when an
// export, push or cache write first needs it (variant), off the build's critical path.
func commitLayer(write func(io.Writer) error) (store.LayerDesc, error) {
	diffID, size, err := layer.Digest(write)
	if err != nil {
		return store.LayerDesc{}, err
	}
	return store.LayerDesc{Digest: diffID, DiffID: diffID, Size: size, MediaType: store.MediaTypeTar}, nil
}

// do executes one instruction: the config applier takes those that change only the config.
func (x *executor) do(ctx context.Context, in spec.Instruction) error {
	handled, err := x.cfg.Apply(in)
	if err != nil || handled {
		if err == nil && in.Op == spec.OpWorkdir {
			return x.workdir()
		}
		return err
	}
	switch in.Op {
	case spec.OpRun:
		return x.runStep(ctx, in)
	case spec.OpCopy, spec.OpAdd:
		return x.copyStep(ctx, in)
	}
	return fmt.Errorf("%s is not supported", in.Op)
}

// workdir creates the working folder; as in BuildKit, the folders it creates belong to the
// current USER.
func (x *executor) workdir() error {
	if err := x.mount(); err != nil {
		return err
	}
	p, err := securejoin.SecureJoin(x.rootfs, x.cfg.Config.WorkingDir)
	if err != nil {
		return err
	}
	uid, gid := -1, -1
	if u := x.cfg.Config.User; u != "" {
		ui, gi, err := container.LookupUser(x.rootfs, u)
		if err != nil {
			return err
		}
		uid, gid = int(ui), int(gi)
	}
	return mkdirAllOwned(p, uid, gid)
}

// mount assembles the rootfs on first use: the parent chain's snapshots under a fresh upper.
func (x *executor) mount() error {
	if x.work != nil {
		return nil
	}
	lowers, err := x.e.snapshots(x.below.layers)
	if err != nil {
		return err
	}
	w, err := x.e.store.NewWorkDir("build-")
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
	return container.MountOverlayVolatile(lowers, x.upper, filepath.Join(w.Path, "work"), x.rootfs)
}

// stepEnv is a RUN step's environment (imageconfig.StepEnv) and, where the image and the
// layer have not chosen a CA bundle, the pointers to the host's.
func stepEnv(image []string, l *spec.Layer, secretEnv []string, hostCA bool) []string {
	env := imageconfig.StepEnv(image, l, secretEnv)
	if hostCA {
		env = imageconfig.Fill(env, caEnv...)
	}
	return env
}

func (x *executor) runStep(ctx context.Context, in spec.Instruction) error {
	if err := x.mount(); err != nil {
		return err
	}
	flags, err := in.RunFlags()
	if err != nil {
		return err
	}
	if err := flags.Expand(x.cfg.Expand); err != nil {
		return err
	}
	cs := container.Spec{
		Rootfs:  x.rootfs,
		Cwd:     x.cfg.Config.WorkingDir,
		User:    x.cfg.Config.User,
		Stdout:  x.log,
		Stderr:  x.log,
		Cleanup: true,
	}
	switch n := instructions.GetNetwork(flags); n {
	case instructions.NetworkDefault, instructions.NetworkHost:
	case instructions.NetworkNone:
		cs.NoNetwork = true
	default:
		return fmt.Errorf("RUN --network=%s is not supported: use host (the default) or none", n)
	}
	if s := instructions.GetSecurity(flags); s != instructions.SecuritySandbox {
		return fmt.Errorf("RUN --security=%s is not supported: steps run with Docker's default capabilities", s)
	}
	cs.Mounts, err = supportMounts(x.work.Path)
	if err != nil {
		return err
	}
	var heredocMount *container.Mount
	if cs.Args, heredocMount, err = x.runArgs(in); err != nil {
		return err
	}
	if heredocMount != nil {
		cs.Mounts = append(cs.Mounts, *heredocMount)
	}
	mounts, mountEnv, release, err := x.runMounts(ctx, instructions.GetMounts(flags))
	if err != nil {
		return err
	}
	defer release()
	cs.Mounts = append(cs.Mounts, mounts...)
	vols, err := x.e.volumeMounts(x.layer.Volumes)
	if err != nil {
		return err
	}
	cs.Mounts = append(cs.Mounts, vols...)
	cs.CDIDevices, cs.CDIDirs = x.devices, x.e.cdiDirs
	_, hostCA := os.Stat(hostCABundle)
	caches, env, releaseCaches, err := x.lendCaches(stepEnv(x.cfg.Env(), x.layer, append(x.secretEnv, mountEnv...), hostCA == nil))
	if err != nil {
		return err
	}
	defer releaseCaches()
	cs.Mounts, cs.Env = append(cs.Mounts, caches...), env
	fmt.Fprintf(x.log, "+ %s\n", in.String())
	bundle, err := os.MkdirTemp(x.work.Path, "bundle-")
	if err != nil {
		return err
	}
	err = x.e.runner(x.work.Path).Run(ctx, "strata-"+randomID(), bundle, cs)
	var ee *container.ExitError
	if errors.As(err, &ee) {
		return &engine.BuildError{Command: in.String(), ExitCode: ee.Code, Err: err}
	}
	return err
}

// runArgs is a RUN's argv (imageconfig.RunArgv), with a heredoc script written into the
// work folder and mounted at /dev/pipes.
func (x *executor) runArgs(in spec.Instruction) ([]string, *container.Mount, error) {
	argv, script, err := x.cfg.RunArgv(in)
	if err != nil || script == nil {
		return argv, nil, err
	}
	dir := filepath.Join(x.work.Path, "heredoc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, script.Name), []byte(script.Data), 0o755); err != nil {
		return nil, nil, err
	}
	return argv, &container.Mount{Source: dir, Target: "/dev/pipes", ReadOnly: true}, nil
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
		// Mount points for a Go function's folders, which go below this read-only one.
		for _, sub := range []string{gofunc.Dir, gofunc.Out} {
			if err := os.MkdirAll(filepath.Join(dir, "ca", path.Base(sub)), 0o755); err != nil {
				return nil, err
			}
		}
		mounts = append(mounts, container.Mount{Source: filepath.Join(dir, "ca"), Target: "/.strata", ReadOnly: true})
	}
	return mounts, nil
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
