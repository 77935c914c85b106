package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/spec"
)

// runMounts turns a RUN's --mount flags into container mounts, as BuildKit gives them:
// bind (from the build context, a stage or an image), cache, tmpfs, secret and ssh. It
// returns the environment they add (a secret as a variable, SSH_AUTH_SOCK) and what to
// release after the step (cache locks, ssh forwarding sockets).
func (x *executor) runMounts(ctx context.Context, mounts []*instructions.Mount) ([]container.Mount, []string, func(), error) {
	var out []container.Mount
	var env []string
	var releases []func()
	release := func() {
		for i := len(releases) - 1; i >= 0; i-- {
			releases[i]()
		}
	}
	for i, m := range mounts {
		var cm *container.Mount
		var err error
		switch m.Type {
		case instructions.MountTypeBind:
			cm, err = x.bindMount(ctx, i, m)
		case instructions.MountTypeCache:
			var rel func()
			cm, rel, err = x.cacheMount(ctx, i, m)
			if rel != nil {
				releases = append(releases, rel)
			}
		case instructions.MountTypeTmpfs:
			cm = &container.Mount{Type: "tmpfs", Target: m.Target}
			if m.SizeLimit > 0 {
				cm.Options = []string{"size=" + strconv.FormatInt(m.SizeLimit, 10)}
			}
		case instructions.MountTypeSecret:
			var e string
			cm, e, err = x.secretMount(i, m)
			if e != "" {
				env = append(env, e)
			}
		case instructions.MountTypeSSH:
			var rel func()
			cm, rel, err = x.sshMount(i, m)
			if rel != nil {
				releases = append(releases, rel)
			}
			if cm != nil && !hasSSHSock(env) {
				env = append(env, "SSH_AUTH_SOCK="+cm.Target)
			}
		default:
			err = fmt.Errorf("RUN --mount=type=%s is not a mount type: use bind, cache, tmpfs, secret or ssh", m.Type)
		}
		if err != nil {
			release()
			return nil, nil, nil, err
		}
		if cm != nil {
			if !path.IsAbs(cm.Target) {
				cm.Target = path.Join("/", x.cfg.Config.WorkingDir, cm.Target)
			}
			out = append(out, *cm)
		}
	}
	return out, env, release, nil
}

func hasSSHSock(env []string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, "SSH_AUTH_SOCK=") {
			return true
		}
	}
	return false
}

// mountSource returns a folder holding what a mount's from= names: a stage of the plan or
// an image (its file system, read-only), or, without from=, the files of the build context
// that the layer lists.
func (x *executor) mountSource(ctx context.Context, i int, from string) (string, error) {
	if from == "" {
		dir := filepath.Join(x.work.Path, fmt.Sprintf("context-%d", i))
		return dir, stageFiles(dir, x.layer.Context)
	}
	st, err := x.fromState(ctx, from)
	if err != nil {
		return "", err
	}
	lowers, err := x.e.snapshots(st.layers)
	if err != nil {
		return "", err
	}
	root := filepath.Join(x.work.Path, fmt.Sprintf("from-%d", i))
	empty := root + "-empty"
	for _, d := range []string{root, empty} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if err := container.MountOverlayReadOnly(append(lowers, empty), root); err != nil {
		return "", err
	}
	return root, nil
}

// fromState is the state of what a --from or from= names: a stage of the plan, or the
// image the reference was resolved to before the build.
func (x *executor) fromState(ctx context.Context, ref string) (*state, error) {
	for _, im := range x.layer.Images {
		if im.Ref != ref {
			continue
		}
		if im.Stage != "" {
			return x.b.stage(ctx, im.Stage)
		}
		st, err := x.e.imageState(ctx, ref, im.Digest, nil, x.log)
		if err != nil {
			return nil, fmt.Errorf("from %s: %w", ref, err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("from %s was not resolved before the build; write the stage name or image reference literally (no $VARIABLES)", ref)
}

// bindMount mounts a folder of the build context, a stage or an image, read-only unless
// rw, in which case writes go to a throwaway overlay.
func (x *executor) bindMount(ctx context.Context, i int, m *instructions.Mount) (*container.Mount, error) {
	root, err := x.mountSource(ctx, i, m.From)
	if err != nil {
		return nil, err
	}
	src, err := securejoin.SecureJoin(root, m.Source)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("RUN --mount=type=bind: source %q: %w", m.Source, err)
	}
	if !m.ReadOnly {
		// A writable bind mount's writes are the step's alone, as in BuildKit.
		over := filepath.Join(x.work.Path, fmt.Sprintf("bind-%d", i))
		for _, d := range []string{over + "/upper", over + "/work", over + "/merged"} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
		if info, err := os.Stat(src); err == nil && info.IsDir() {
			if err := container.MountOverlay([]string{src}, over+"/upper", over+"/work", over+"/merged"); err != nil {
				return nil, err
			}
			src = over + "/merged"
		}
	}
	return &container.Mount{Source: src, Target: m.Target, ReadOnly: m.ReadOnly}, nil
}

// cacheMount mounts a folder that persists across builds, shared by the steps that name the
// same id, with BuildKit's sharing modes: shared (at once), locked (one step at a time) and
// private (a step that finds it in use gets a fresh one).
func (x *executor) cacheMount(ctx context.Context, i int, m *instructions.Mount) (*container.Mount, func(), error) {
	id := m.CacheID
	if id == "" {
		id = m.Target
	}
	sum := sha256.Sum256([]byte(id))
	name := hex.EncodeToString(sum[:8])
	dir := x.e.store.Path("cachemounts", name)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		// Made aside and renamed, so that a concurrent step sees it whole.
		tmp := filepath.Join(x.work.Path, "cache-"+name)
		if err := x.newCacheDir(ctx, i, tmp, m); err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, nil, err
		}
		_ = os.Rename(tmp, dir) // if another step made it first, theirs is used
	}
	var release func()
	switch m.CacheSharing {
	case instructions.MountSharingLocked:
		lock, err := x.e.store.Lock("cachemount-" + name)
		if err != nil {
			return nil, nil, err
		}
		release = lock.Unlock
	case instructions.MountSharingPrivate:
		f, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, nil, err
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			dir = filepath.Join(x.work.Path, fmt.Sprintf("private-cache-%d", i))
			if err := x.newCacheDir(ctx, i, dir, m); err != nil {
				return nil, nil, err
			}
		} else {
			release = func() { f.Close() }
		}
	}
	return &container.Mount{Source: dir, Target: m.Target, ReadOnly: m.ReadOnly}, release, nil
}

// newCacheDir makes an empty cache folder with the mount's owner and mode, seeded from
// from=/source= when given.
func (x *executor) newCacheDir(ctx context.Context, i int, dir string, m *instructions.Mount) error {
	mode := fs.FileMode(0o755)
	if m.Mode != nil {
		mode = fs.FileMode(*m.Mode)
	}
	if m.From != "" {
		root, err := x.mountSource(ctx, 100+i, m.From)
		if err != nil {
			return err
		}
		src, err := securejoin.SecureJoin(root, m.Source)
		if err != nil {
			return err
		}
		if err := copyTree(src, dir); err != nil {
			return fmt.Errorf("seeding the cache from %s:%s: %w", m.From, m.Source, err)
		}
	} else if err := os.Mkdir(dir, mode); err != nil {
		return err
	}
	uid, gid := 0, 0
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	if err := os.Lchown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// secretMount gives a build secret to the step: as a file on a memory file system (by
// default /run/secrets/ID), or as an environment variable with env=. A missing secret is an
// error when required, else the mount is left out, as in BuildKit.
func (x *executor) secretMount(i int, m *instructions.Mount) (*container.Mount, string, error) {
	id := m.CacheID
	if id == "" && m.Target != "" {
		id = path.Base(m.Target)
	}
	if id == "" && m.Env != nil {
		id = *m.Env
	}
	value, ok := x.buildSecret(id)
	if !ok {
		if m.Required {
			return nil, "", fmt.Errorf("RUN --mount=type=secret,id=%s is required, and the build was given no secret %q (strata build --secret id=%s,src=FILE or env=VAR)", id, id, id)
		}
		return nil, "", nil
	}
	var env string
	if m.Env != nil && *m.Env != "" {
		env = *m.Env + "=" + string(value)
		if m.Target == "" {
			return nil, env, nil
		}
	}
	target := m.Target
	if target == "" {
		target = "/run/secrets/" + id
	}
	dir := filepath.Join(x.work.Path, "secrets")
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, "", err
		}
		// In memory: secret values never touch the disk.
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=16m"); err != nil {
			return nil, "", fmt.Errorf("a memory file system for build secrets: %w", err)
		}
	}
	file := filepath.Join(dir, fmt.Sprintf("%d", i))
	mode := fs.FileMode(0o400)
	if m.Mode != nil {
		mode = fs.FileMode(*m.Mode)
	}
	if err := os.WriteFile(file, value, 0o600); err != nil {
		return nil, "", err
	}
	uid, gid := 0, 0
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	if err := os.Chown(file, uid, gid); err != nil {
		return nil, "", err
	}
	if err := os.Chmod(file, mode); err != nil {
		return nil, "", err
	}
	return &container.Mount{Source: file, Target: target, ReadOnly: true}, env, nil
}

// buildSecret finds a build secret: given with the build (strata build --secret), or else a
// strata secret of that name with one key.
func (x *executor) buildSecret(id string) ([]byte, bool) {
	if v, ok := x.b.o.Secrets[id]; ok {
		return v, true
	}
	if vals, err := x.e.secrets.Get(id); err == nil && len(vals) == 1 {
		for _, v := range vals {
			return []byte(v), true
		}
	}
	return nil, false
}

// sshMount forwards an SSH agent (strata build --ssh) into the step as BuildKit does: through
// a socket of its own, owned by the mount's uid and gid (0 by default) with its mode (0600),
// that passes each connection on to the agent. It returns what closes the socket.
func (x *executor) sshMount(i int, m *instructions.Mount) (*container.Mount, func(), error) {
	id := m.CacheID
	if id == "" {
		id = "default"
	}
	sock, ok := x.b.o.SSH[id]
	if !ok {
		if m.Required {
			return nil, nil, fmt.Errorf("RUN --mount=type=ssh,id=%s is required, and the build was given no SSH agent %q (strata build --ssh %s)", id, id, id)
		}
		return nil, nil, nil
	}
	if info, err := os.Stat(sock); err != nil || info.Mode()&fs.ModeSocket == 0 {
		return nil, nil, fmt.Errorf("SSH agent %q: %s is not a socket", id, sock)
	}
	target := m.Target
	if target == "" {
		target = "/run/buildkit/ssh_agent.0"
	}
	dir, err := os.MkdirTemp("", "strata-ssh-") // a short path: a socket's is at most 107 bytes
	if err != nil {
		return nil, nil, err
	}
	own := filepath.Join(dir, fmt.Sprintf("agent-%d.sock", i))
	ln, err := net.Listen("unix", own)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("SSH agent %q: %w", id, err)
	}
	fw := newForwarder(ln, sock)
	release := func() {
		fw.close()
		os.RemoveAll(dir)
	}
	mode, uid, gid := fs.FileMode(0o600), 0, 0
	if m.Mode != nil {
		mode = fs.FileMode(*m.Mode)
	}
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	if err := os.Chown(own, uid, gid); err != nil {
		release()
		return nil, nil, err
	}
	if err := os.Chmod(own, mode); err != nil {
		release()
		return nil, nil, err
	}
	return &container.Mount{Source: own, Target: target}, release, nil
}

// forwarder passes every connection to its listener on to the unix socket at to, until it
// is closed; closing it also closes the connections still open, so that an agent that
// blocks (a confirmation prompt) does not outlive the step.
type forwarder struct {
	ln     net.Listener
	to     string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

func newForwarder(ln net.Listener, to string) *forwarder {
	f := &forwarder{ln: ln, to: to, conns: map[net.Conn]bool{}}
	go f.serve()
	return f
}

// track adds c to the open connections, or closes it when the forwarder is closed.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = true
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *forwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			return
		}
		go func() {
			defer f.untrack(c)
			a, err := net.Dial("unix", f.to)
			if err != nil || !f.track(a) {
				return
			}
			defer f.untrack(a)
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(a, c)
				a.(*net.UnixConn).CloseWrite()
				close(done)
			}()
			_, _ = io.Copy(c, a)
			c.(*net.UnixConn).CloseWrite()
			<-done
		}()
	}
}

func (f *forwarder) close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
}

// copyTree copies a folder with its modes, owners and links.
func copyTree(src, dst string) error {
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
		st := info.Sys().(*syscall.Stat_t)
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
			return os.Lchown(target, int(st.Uid), int(st.Gid))
		case info.Mode().IsRegular():
			if err := copyVerified(spec.ContextFile{Source: p}, target); err != nil {
				return err
			}
		default:
			return nil // devices, pipes and sockets stay behind
		}
		if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		return os.Chmod(target, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	})
}
