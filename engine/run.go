package engine

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// RunOptions say what to run in a container of an image.
type RunOptions struct {
	// Args replace the image's CMD (after its entrypoint); empty runs the CMD.
	Args []string
	// Env are extra KEY=VALUE variables.
	Env []string
	// Secrets name local secrets given to the process as environment.
	Secrets []string
	// Binds are LOCAL:REMOTE folders or files mounted read-write.
	Binds []string
	// Workdir overrides the image's working folder.
	Workdir string
	// Terminal gives the process a pseudo-terminal.
	Terminal bool
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	// Signals are forwarded to the process.
	Signals <-chan os.Signal
}

// Run runs a process in a fresh container of the image, with its runtime mounts in place,
// and removes the container afterwards. A non-zero exit is a *container.ExitError.
func (e *Engine) Run(ctx context.Context, img *store.Image, o RunOptions) error {
	use, err := e.Store.Use()
	if err != nil {
		return err
	}
	defer use.Unlock()
	layers, err := e.manifest(img)
	if err != nil {
		return err
	}
	cfg, err := e.Config(img)
	if err != nil {
		return err
	}
	lowers, err := e.snapshots(layers)
	if err != nil {
		return err
	}
	w, err := e.Store.NewWorkDir("run-")
	if err != nil {
		return err
	}
	defer w.Remove()
	// Runtime mounts become the topmost read-only layer, staged from the local files.
	if len(img.Mounts) > 0 {
		staged := filepath.Join(w.Path, "mounts")
		if err := stageMounts(staged, img.Mounts); err != nil {
			return err
		}
		lowers = append([]string{staged}, lowers...)
	}
	rootfs, upper, work := filepath.Join(w.Path, "rootfs"), filepath.Join(w.Path, "upper"), filepath.Join(w.Path, "work")
	for _, d := range []string{rootfs, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := container.MountOverlay(lowers, upper, work, rootfs); err != nil {
		return err
	}
	mounts, err := supportMounts(w.Path)
	if err != nil {
		return err
	}
	for _, b := range o.Binds {
		local, remote, ok := strings.Cut(b, ":")
		if !ok || !filepath.IsAbs(remote) {
			return fmt.Errorf("--mount %q: want LOCAL:REMOTE with an absolute REMOTE", b)
		}
		abs, err := filepath.Abs(local)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("--mount %q: %w", b, err)
		}
		mounts = append(mounts, container.Mount{Source: abs, Target: remote})
	}
	args := append(append([]string{}, cfg.Config.Entrypoint...), cfg.Config.Cmd...)
	if len(o.Args) > 0 {
		args = append(append([]string{}, cfg.Config.Entrypoint...), o.Args...)
	}
	if len(args) == 0 {
		return fmt.Errorf("image %s has no entrypoint or command: give one after --", img.Name)
	}
	env := append([]string{}, cfg.Config.Env...)
	if !hasKey(env, "PATH") {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	sec, err := e.secretEnv(o.Secrets)
	if err != nil {
		return err
	}
	for _, kv := range append(sec, o.Env...) {
		k, v, _ := strings.Cut(kv, "=")
		env = setEnv(env, k, v)
	}
	cwd := cfg.Config.WorkingDir
	if o.Workdir != "" {
		cwd = o.Workdir
	}
	bundle := filepath.Join(w.Path, "bundle")
	if err := os.Mkdir(bundle, 0o700); err != nil {
		return err
	}
	return (&container.Runner{Runtime: e.Runtime, Root: filepath.Join(w.Path, "runc")}).Run(ctx, "strata-run-"+randomID(), bundle, container.Spec{
		Rootfs:   rootfs,
		Args:     args,
		Env:      env,
		Cwd:      cwd,
		User:     cfg.Config.User,
		Mounts:   mounts,
		Terminal: o.Terminal,
		Stdin:    o.Stdin,
		Stdout:   o.Stdout,
		Stderr:   o.Stderr,
		Signals:  o.Signals,
	})
}

// stageMounts lays out runtime-mounted files under dir at their container paths, hard-linked
// to the local files where possible (no copy), copied otherwise. Mounts that know their
// sources list them again, so a container sees the local files as they are now.
func stageMounts(dir string, mounts []store.Mount) error {
	for _, m := range mounts {
		files := m.Files
		if len(m.Sources) > 0 {
			files = nil
			for _, src := range m.Sources {
				fs, err := localfiles.List(src, nil)
				if err != nil {
					return fmt.Errorf("%s: listing %s: %w", m.Method, src.Local, err)
				}
				for _, f := range fs {
					files = append(files, store.MountFile{Path: f.Path, Source: f.Source, Mode: f.Mode, Link: f.Link})
				}
			}
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
						return fmt.Errorf("%s: mounting %s: %w", m.Method, f.Source, err)
					}
					if err := os.Chmod(p, mode.Perm()); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}
