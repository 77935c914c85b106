// Package local is strata's default engine: it builds resolved plans into OCI images in a
// local store, with no daemon. Each layer runs on an overlayfs snapshot of its parent chain
// inside an OCI runtime (runc); the upper folder becomes the layer.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/sys/userns"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/secrets"
	"github.com/strata-build/strata/store"
)

// Options configure the local engine.
type Options struct {
	// Home is the store's folder.
	Home string
	// Runtime is the OCI runtime binary ("" is runc).
	Runtime string
	// Mirror is the Debian mirror debian_slim bootstraps from ("" is deb.debian.org).
	Mirror string
	// InsecureRegistries are reached over plain http, or TLS without verification; loopback
	// registries are reached over plain http when they do not speak TLS.
	InsecureRegistries []string
	// CertDirs are certs.d folders with the CAs (and client certificates) of registries.
	CertDirs []string
	// RegistryRetry says how registries' passing faults are retried (zero: the defaults).
	RegistryRetry registry.Retry
	// Limits bound the layers strata takes from images it did not build (zero fields: the
	// defaults, engine.DefaultLimits).
	Limits engine.Limits
	// CDIDirs hold the Container Device Interface specs that describe the machine's GPUs
	// (default /etc/cdi and /var/run/cdi, where NVIDIA's container toolkit writes them).
	CDIDirs []string
	// NoPackageCaches turns off the package managers' download caches (STRATA_NO_PACKAGE_CACHES).
	NoPackageCaches bool
	// RunDir holds the OCI runtime's state, which lives no longer than the machine's boot
	// ($XDG_RUNTIME_DIR/strata for a rootless strata). "" keeps it in the store, in the work
	// folder of the process that started the container.
	RunDir string
}

// Engine is the local engine.
type Engine struct {
	store    *store.Store
	secrets  *secrets.Store
	runtime  string
	mirror   string
	reg      *registry.Client
	platform v1.Platform
	cdiDirs  []string
	home     string
	runDir   string

	limits          engine.Limits
	noPackageCaches bool
	aptOnce         sync.Once
	apt             *aptProxy
	aptErr          error
}

var _ engine.Engine = (*Engine)(nil)

// Open opens the engine on the store at o.Home, removing what dead processes left there:
// their containers, mounts and temp files.
func Open(o Options) (*Engine, error) {
	e := &Engine{
		secrets:         secrets.Open(filepath.Join(o.Home, "secrets")),
		runtime:         o.Runtime,
		mirror:          o.Mirror,
		reg:             registry.New(registry.Options{Insecure: o.InsecureRegistries, CertDirs: o.CertDirs, Retry: o.RegistryRetry}),
		platform:        HostPlatform(),
		cdiDirs:         o.CDIDirs,
		noPackageCaches: o.NoPackageCaches,
		limits:          o.Limits,
		home:            o.Home,
		runDir:          o.RunDir,
	}
	if len(e.cdiDirs) == 0 {
		e.cdiDirs = []string{"/etc/cdi", "/var/run/cdi"}
	}
	if e.limits.LayerBytes <= 0 {
		e.limits.LayerBytes = engine.DefaultLimits.LayerBytes
	}
	if e.limits.LayerFiles <= 0 {
		e.limits.LayerFiles = engine.DefaultLimits.LayerFiles
	}
	if e.mirror == "" {
		e.mirror = "http://deb.debian.org/debian"
	}
	if err := checkIDMaps(o.Home); err != nil {
		return nil, err
	}
	s, err := store.Open(o.Home, store.WithRelease(e.release))
	if err != nil {
		return nil, err
	}
	e.store = s
	return e, nil
}

// idMapsFile records, in the store, the user namespace id maps its files' owners were written
// under: "root" for the host's own ids, else the uid and gid maps of a rootless strata.
const idMapsFile = "idmaps"

// checkIDMaps refuses a store whose files were written under other id maps: root's store
// opened rootless (or the other way), or a rootless store after the user's subordinate ids
// changed. Its owners would be read wrong, and wrong layers cached under right keys. A new
// store records the maps; a store from before the record was root's.
func checkIDMaps(home string) error {
	now, err := currentIDMaps()
	if err != nil {
		return err
	}
	file := filepath.Join(home, idMapsFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(home, "blobs")); err == nil {
			b = []byte("root\n") // made before strata recorded the maps: only root built then
		} else {
			if err := os.MkdirAll(home, 0o755); err != nil {
				return err
			}
			return os.WriteFile(file, []byte(now), 0o644)
		}
	} else if err != nil {
		return err
	}
	if string(b) == now {
		return nil
	}
	who := func(maps string) string {
		if maps == "root\n" {
			return "root"
		}
		return "a rootless strata with the id maps " + strings.Join(strings.Fields(maps), " ")
	}
	return fmt.Errorf("the store at %s was written by %s, and this is %s: its files' owners would be read wrong here. Use another store (STRATA_HOME; an ordinary user's default is ~/.local/share/strata), or build as its owner with the same subordinate ids", home, who(string(b)), who(now))
}

// currentIDMaps is "root" on the host's own ids, else this user namespace's uid and gid maps.
func currentIDMaps() (string, error) {
	if !userns.RunningInUserNS() {
		return "root\n", nil
	}
	var out strings.Builder
	for _, f := range []string{"/proc/self/uid_map", "/proc/self/gid_map"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			fmt.Fprintf(&out, "%s %s\n", filepath.Base(f), strings.Join(strings.Fields(line), " "))
		}
	}
	return out.String(), nil
}

// HostPlatform is the platform this machine runs: what the local engine builds for.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if p.Architecture == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// release frees what a process placed in one of its work folders: the containers in its
// runtime state folder, then its mounts.
func (e *Engine) release(dir string) {
	r := e.runner(dir)
	if _, err := os.Stat(r.Root); err == nil {
		r.Cleanup()
	}
	container.UnmountAll(dir)
}

// runner is the OCI runtime for the containers of a work folder: its state is in the folder,
// or in RunDir under a name made from the folder's.
func (e *Engine) runner(work string) *container.Runner {
	root := filepath.Join(work, "runc")
	if e.runDir != "" {
		rel, err := filepath.Rel(e.home, work)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = work
		}
		root = filepath.Join(e.runDir, "runc", strings.ReplaceAll(strings.Trim(rel, "/"), "/", "-"))
	}
	return &container.Runner{Runtime: e.runtime, Root: root}
}

// detachedRunner is the OCI runtime for a detached container: its state stays in the
// container's folder in the store, as the container outlives the process that started it
// and the session, whose runtime folder (RunDir) is emptied at logout.
func (e *Engine) detachedRunner(dir string) *container.Runner {
	return &container.Runner{Runtime: e.runtime, Root: filepath.Join(dir, "runc")}
}

// Close releases the engine.
func (e *Engine) Close() error {
	e.apt.close()
	return nil
}

// Image finds a named image, or one by its manifest digest.
func (e *Engine) Image(ctx context.Context, ref string) (*engine.Image, error) {
	si, err := e.store.Image(ref)
	if err == nil {
		return e.describe(si)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if strings.HasPrefix(ref, "sha256:") && e.store.HasBlob(ref) {
		if _, err := e.manifest(ref); err == nil {
			return &engine.Image{Manifest: ref}, nil
		}
	}
	return nil, fmt.Errorf("image %q: %w (list images with strata images)", ref, engine.ErrNotFound)
}

// Images lists the named images.
func (e *Engine) Images(ctx context.Context) ([]*engine.Image, error) {
	all, err := e.store.Images()
	if err != nil {
		return nil, err
	}
	out := make([]*engine.Image, 0, len(all))
	for _, si := range all {
		img, err := e.describe(si)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// describe turns a store record into the engine's description of an image.
func (e *Engine) describe(si *store.Image) (*engine.Image, error) {
	img := &engine.Image{Name: si.Name, Manifest: si.Manifest, Size: si.Size, Keys: si.Keys, Methods: si.Methods, Created: si.Created, Engine: si.Engine}
	if si.Mounts != "" {
		if err := e.readJSONBlob(si.Mounts, &img.Mounts); err != nil {
			return nil, fmt.Errorf("image %s: its runtime mounts: %w", si.Name, err)
		}
	}
	return img, nil
}

// Remove removes an image's name.
func (e *Engine) Remove(ctx context.Context, name string) error {
	err := e.store.DeleteImage(name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("image %q: %w", name, engine.ErrNotFound)
	}
	return err
}

// Log opens a layer's build log.
func (e *Engine) Log(ctx context.Context, key string) (io.ReadCloser, error) {
	f, err := os.Open(e.store.LogPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no log for layer %s (it has no build steps, or its log was pruned): %w", key, engine.ErrNotFound)
	}
	return f, err
}

// secretEnv returns the named secrets' pairs as KEY=VALUE.
func (e *Engine) secretEnv(names []string) ([]string, error) {
	var env []string
	for _, n := range names {
		vals, err := e.secrets.Get(n)
		if err != nil {
			return nil, err
		}
		for k, v := range vals {
			env = append(env, k+"="+v)
		}
	}
	return env, nil
}

var volumeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// volume returns the folder of a named volume, creating it when create is set.
func (e *Engine) volume(name string, create bool) (string, error) {
	if !volumeNameRE.MatchString(name) {
		return "", fmt.Errorf("%q is not a volume name: names use letters, digits, '.', '_' and '-'", name)
	}
	dir := e.store.Path("volumes", name)
	if info, err := os.Stat(dir); err == nil && info.IsDir() {
		return dir, nil
	}
	if !create {
		return "", fmt.Errorf("volume %q: %w (create it with strata volume create %s)", name, engine.ErrNotFound, name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// Volume returns a named volume's folder, creating it when create is set.
func (e *Engine) Volume(ctx context.Context, name string, create bool) (string, error) {
	return e.volume(name, create)
}

// Volumes lists the named volumes.
func (e *Engine) Volumes(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(e.store.Path("volumes"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ent := range entries {
		if ent.IsDir() {
			out = append(out, ent.Name())
		}
	}
	return out, nil
}

// RemoveVolume removes a named volume and what it holds.
func (e *Engine) RemoveVolume(ctx context.Context, name string) error {
	dir, err := e.volume(name, false)
	if err != nil {
		return err
	}
	return store.RemoveAll(dir)
}
