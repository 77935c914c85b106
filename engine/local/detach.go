package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/store"
)

// A detached container lives in containers/ID of the store, not in a work folder, so that
// it outlives the process that started it and recovery leaves it alone: its rootfs, its
// runtime state, its log (stdout and stderr) and info.json. Stop removes it.

// Start starts a process in a new container of the image and returns the container's id
// without waiting for it; its output goes to its log.
func (e *Engine) Start(ctx context.Context, img *engine.Image, o engine.RunOptions) (string, error) {
	id := "c" + randomID()
	dir := e.store.Path("containers", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	started := false
	defer func() {
		if !started {
			e.removeContainer(id)
		}
	}()
	logf, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	o.Stdin, o.Stdout, o.Stderr, o.Terminal, o.Signals = nil, logf, logf, false, nil
	cs, err := e.containerSpec(img, o, dir)
	if err != nil {
		return "", err
	}
	info := engine.Container{ID: id, Image: img.Name, Manifest: img.Manifest, Command: cs.Args, Started: time.Now().UTC()}
	if info.Image == "" {
		info.Image = img.Manifest
	}
	b, err := json.Marshal(info)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "info.json"), b, 0o600); err != nil {
		return "", err
	}
	bundle := filepath.Join(dir, "bundle")
	if err := os.Mkdir(bundle, 0o700); err != nil {
		return "", err
	}
	if err := e.detachedRunner(dir).Start(ctx, id, bundle, *cs); err != nil {
		return "", err
	}
	started = true
	return id, nil
}

// Containers lists the detached containers, running or not.
func (e *Engine) Containers(ctx context.Context) ([]*engine.Container, error) {
	entries, err := os.ReadDir(e.store.Path("containers"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*engine.Container
	for _, ent := range entries {
		c, err := e.container(ent.Name())
		if err == nil {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

func (e *Engine) container(id string) (*engine.Container, error) {
	dir := e.store.Path("containers", id)
	var c engine.Container
	b, err := os.ReadFile(filepath.Join(dir, "info.json"))
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, engine.ErrNotFound)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	c.Status = e.detachedRunner(dir).State(id)
	return &c, nil
}

// ContainerLog opens a detached container's output.
func (e *Engine) ContainerLog(ctx context.Context, id string) (io.ReadCloser, error) {
	if _, err := e.container(id); err != nil {
		return nil, err
	}
	return os.Open(e.store.Path("containers", id, "log"))
}

// Stop stops a detached container (SIGTERM, then SIGKILL after grace) and removes it.
func (e *Engine) Stop(ctx context.Context, id string, grace time.Duration) error {
	if _, err := e.container(id); err != nil {
		return err
	}
	r := e.detachedRunner(e.store.Path("containers", id))
	r.Stop(id, grace)
	return e.removeContainer(id)
}

func (e *Engine) removeContainer(id string) error {
	dir := e.store.Path("containers", id)
	e.detachedRunner(dir).Cleanup()
	container.UnmountAll(dir)
	return store.RemoveAll(dir)
}
