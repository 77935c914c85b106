package strata

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Volumes are named folders that persist outside images, as Modal's: mounted into build
// steps (RunCommands, RunFunction), functions and runs by absolute path, never part of a
// layer. Concurrent readers and writers see a plain folder, with what that allows.

// CreateVolume makes an empty named volume (a volume named in a mount is made on first use).
func (c *Client) CreateVolume(ctx context.Context, name string) error {
	_, err := c.eng.Volume(ctx, name, true)
	return fromEngine(err)
}

// Volumes lists the named volumes.
func (c *Client) Volumes(ctx context.Context) ([]string, error) {
	v, err := c.eng.Volumes(ctx)
	return v, fromEngine(err)
}

// RemoveVolume removes a named volume and what it holds.
func (c *Client) RemoveVolume(ctx context.Context, name string) error {
	return fromEngine(c.eng.RemoveVolume(ctx, name))
}

// VolumePut copies a local file or folder into a volume at remotePath ("/" is the volume's
// root; a folder goes below it by its name).
func (c *Client) VolumePut(ctx context.Context, name, localPath, remotePath string) error {
	root, err := c.eng.Volume(ctx, name, true)
	if err != nil {
		return fromEngine(err)
	}
	info, err := os.Stat(localPath)
	if err != nil {
		return err
	}
	dst, err := securejoin.SecureJoin(root, remotePath)
	if err != nil {
		return err
	}
	if strings.HasSuffix(remotePath, "/") || remotePath == "" {
		dst = filepath.Join(dst, filepath.Base(localPath))
	}
	if info.IsDir() {
		return copyDir(localPath, dst)
	}
	return copyFile(localPath, dst, info.Mode())
}

// VolumeGet copies a file or folder of a volume to a local path.
func (c *Client) VolumeGet(ctx context.Context, name, remotePath, localPath string) error {
	root, err := c.eng.Volume(ctx, name, false)
	if err != nil {
		return fromEngine(err)
	}
	src, err := securejoin.SecureJoin(root, remotePath)
	if err != nil {
		return err
	}
	info, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("volume %s has no %s", name, remotePath)
	}
	if info.IsDir() {
		return copyDir(src, localPath)
	}
	if st, err := os.Stat(localPath); err == nil && st.IsDir() {
		localPath = filepath.Join(localPath, filepath.Base(src))
	}
	return copyFile(src, localPath, info.Mode())
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			_ = os.Remove(target)
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode())
		}
		return nil
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Container is a detached container (Built.Start).
type Container struct {
	ID       string    `json:"id"`
	Image    string    `json:"image"`
	Manifest string    `json:"manifest"`
	Command  []string  `json:"command"`
	Started  time.Time `json:"started"`
	// Status is "running", "stopped" (its process exited) or "unknown".
	Status string `json:"status"`
}

// Start starts a process in a new container of the image and returns its id without
// waiting; its output goes to its log (Client.ContainerLog). Stop stops it.
func (b *Built) Start(ctx context.Context, o RunOptions) (string, error) {
	eo, err := b.engineRunOptions(o)
	if err != nil {
		return "", err
	}
	id, err := b.c.eng.Start(ctx, b.img, eo)
	return id, fromEngine(err)
}

// Containers lists the detached containers.
func (c *Client) Containers(ctx context.Context) ([]*Container, error) {
	all, err := c.eng.Containers(ctx)
	if err != nil {
		return nil, fromEngine(err)
	}
	out := make([]*Container, len(all))
	for i, ct := range all {
		out[i] = (*Container)(ct)
	}
	return out, nil
}

// ContainerLog opens a detached container's output.
func (c *Client) ContainerLog(ctx context.Context, id string) (io.ReadCloser, error) {
	rc, err := c.eng.ContainerLog(ctx, id)
	return rc, fromEngine(err)
}

// Stop stops a detached container (SIGTERM, then SIGKILL after grace) and removes it.
func (c *Client) Stop(ctx context.Context, id string, grace time.Duration) error {
	return fromEngine(c.eng.Stop(ctx, id, grace))
}
