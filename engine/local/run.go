package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/engine/imageconfig"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
)

// Run runs a process in a fresh container of the image, with its runtime mounts in place,
// and removes the container afterwards. A non-zero exit is an *engine.ExitError.
func (e *Engine) Run(ctx context.Context, img *engine.Image, o engine.RunOptions) error {
	use, err := e.store.Use()
	if err != nil {
		return err
	}
	defer use.Unlock()
	w, err := e.store.NewWorkDir("run-")
	if err != nil {
		return err
	}
	defer w.Remove()
	cs, err := e.containerSpec(img, o, w.Path)
	if err != nil {
		return err
	}
	bundle := filepath.Join(w.Path, "bundle")
	if err := os.Mkdir(bundle, 0o700); err != nil {
		return err
	}
	err = e.runner(w.Path).Run(ctx, "strata-run-"+randomID(), bundle, *cs)
	var ee *container.ExitError
	if errors.As(err, &ee) {
		return &engine.ExitError{Code: ee.Code}
	}
	return err
}

// containerSpec sets up a container of the image in dir: its rootfs (the image's snapshots
// under a fresh upper, its runtime mounts on top), and the process the options ask for.
func (e *Engine) containerSpec(img *engine.Image, o engine.RunOptions, dir string) (*container.Spec, error) {
	layers, err := e.manifest(img.Manifest)
	if err != nil {
		return nil, err
	}
	cfg, err := e.config(img.Manifest)
	if err != nil {
		return nil, err
	}
	lowers, err := e.snapshots(layers)
	if err != nil {
		return nil, err
	}
	// Runtime mounts become the topmost read-only layer, staged from the local files.
	if len(img.Mounts) > 0 {
		staged := filepath.Join(dir, "mounts")
		if err := stageMounts(staged, img.Mounts); err != nil {
			return nil, err
		}
		lowers = append([]string{staged}, lowers...)
	}
	rootfs, upper, work := filepath.Join(dir, "rootfs"), filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{rootfs, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := container.MountOverlayVolatile(lowers, upper, work, rootfs); err != nil {
		return nil, err
	}
	mounts, err := supportMounts(dir)
	if err != nil {
		return nil, err
	}
	for _, b := range o.Binds {
		if !filepath.IsAbs(b.Source) || !filepath.IsAbs(b.Target) {
			return nil, fmt.Errorf("bind mount %s to %s: both paths must be absolute", b.Source, b.Target)
		}
		if _, err := os.Stat(b.Source); err != nil {
			return nil, fmt.Errorf("bind mount %s: %w", b.Source, err)
		}
		mounts = append(mounts, container.Mount{Source: b.Source, Target: b.Target, ReadOnly: b.ReadOnly})
	}
	args := runArgs(cfg.Config, o)
	if len(args) == 0 {
		return nil, fmt.Errorf("image %s has no entrypoint or command: give the command to run", img.Name)
	}
	env := imageconfig.Fill(append([]string{}, cfg.Config.Env...), "PATH="+imageconfig.DefaultPath)
	// Code can tell it runs in a strata container, as Modal's can (modal.is_local); the
	// Python client's Image.imports() raises an ImportError there rather than skip it.
	env = imageconfig.SetEnv(env, engine.ContainerEnv, "1")
	sec, err := e.secretEnv(o.Secrets)
	if err != nil {
		return nil, err
	}
	for _, kv := range append(sec, o.Env...) {
		k, v, _ := strings.Cut(kv, "=")
		env = imageconfig.SetEnv(env, k, v)
	}
	cwd := cfg.Config.WorkingDir
	if o.Workdir != "" {
		cwd = o.Workdir
	}
	user := cfg.Config.User
	if o.User != "" {
		user = o.User
	}
	vols, err := e.volumeMounts(o.Volumes)
	if err != nil {
		return nil, err
	}
	devices, err := e.gpuDevices(o.GPU)
	if err != nil {
		return nil, err
	}
	return &container.Spec{
		Rootfs:     rootfs,
		Args:       args,
		Env:        env,
		Cwd:        cwd,
		User:       user,
		Mounts:     append(mounts, vols...),
		NoNetwork:  o.NoNetwork,
		CDIDevices: devices,
		CDIDirs:    e.cdiDirs,
		Terminal:   o.Terminal,
		Stdin:      o.Stdin,
		Stdout:     o.Stdout,
		Stderr:     o.Stderr,
		Signals:    o.Signals,
	}, nil
}

// runArgs is a run's argv: the entrypoint (the image's, or the one given, which also drops
// the image's CMD, as docker run --entrypoint does), then the args given or the CMD.
func runArgs(cfg v1.Config, o engine.RunOptions) []string {
	entry, cmd := cfg.Entrypoint, cfg.Cmd
	if len(o.Entrypoint) > 0 {
		entry, cmd = o.Entrypoint, nil
	}
	if len(o.Args) > 0 {
		cmd = o.Args
	}
	return append(append([]string{}, entry...), cmd...)
}

// volumeMounts mounts named volumes, creating them on first use.
func (e *Engine) volumeMounts(vols []spec.VolumeMount) ([]container.Mount, error) {
	var out []container.Mount
	for _, v := range vols {
		dir, err := e.volume(v.Name, true)
		if err != nil {
			return nil, err
		}
		out = append(out, container.Mount{Source: dir, Target: v.Path})
	}
	return out, nil
}

// stageMounts lays out runtime-mounted files under dir at their container paths, hard-linked
// to the local files where possible (no copy), copied otherwise. Mounts that know their
// sources list them again, so a container sees the local files as they are now.
func stageMounts(dir string, mounts []engine.Mount) error {
	for _, m := range mounts {
		var files []spec.ContextFile
		for _, f := range m.Files {
			files = append(files, spec.ContextFile{Path: f.Path, Source: f.Source, Mode: f.Mode, Link: f.Link})
		}
		if len(m.Sources) > 0 {
			files = nil
			for _, src := range m.Sources {
				fs, err := localfiles.List(src, nil)
				if err != nil {
					return fmt.Errorf("%s: listing %s: %w", m.Method, src.Local, err)
				}
				files = append(files, fs...)
			}
		}
		if err := stageFiles(dir, files); err != nil {
			return fmt.Errorf("%s: %w", m.Method, err)
		}
	}
	return nil
}

// stageFiles lays out local files under dir at their paths, hard-linked to the local files
// where possible (no copy), copied otherwise; a container sees them read-only.
func stageFiles(dir string, files []spec.ContextFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := fs.FileMode(f.Mode)
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(p, mode.Perm()|0o100); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			_ = os.Remove(p)
			if err := os.Symlink(f.Link, p); err != nil {
				return err
			}
		default:
			_ = os.Remove(p)
			if err := os.Link(f.Source, p); err != nil {
				if err := copyVerified(spec.ContextFile{Source: f.Source}, p); err != nil {
					return fmt.Errorf("staging %s: %w", f.Source, err)
				}
				if err := os.Chmod(p, mode.Perm()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
