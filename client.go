package strata

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/engine/local"
	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/secrets"
	"github.com/strata-build/strata/spec"
)

// Option configures Open, Build and the other calls that reach an engine. Options that do
// not concern a call are ignored by it.
type Option func(*options)

type options struct {
	home        string
	name        string
	forceBuild  bool
	ignoreCache bool
	pull        bool
	progress    func(Event)
	resolve     []ResolveOption
	cacheFrom   []string
	cacheTo     string
	transfer    func(Transfer)
	secrets     map[string][]byte
	ssh         map[string]string
	engine      string
	engineAddr  string
}

func newOptions(opts []Option) options {
	o := options{home: Home(), engine: os.Getenv("STRATA_ENGINE")}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithHome uses the store in dir instead of Home().
func WithHome(dir string) Option { return func(o *options) { o.home = dir } }

// WithName names the built image in the store, for strata run, export and inspect.
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithForceBuild rebuilds every layer and replaces the cached entries (STRATA_FORCE_BUILD).
func WithForceBuild() Option { return func(o *options) { o.forceBuild = true } }

// WithIgnoreCache rebuilds every layer without reading or replacing cached entries
// (STRATA_IGNORE_CACHE).
func WithIgnoreCache() Option { return func(o *options) { o.ignoreCache = true } }

// WithPull resolves every registry reference (from_registry, COPY --from) at its registry
// again, instead of using the digest it was resolved to when first pulled. A tag that has
// moved then gives new cache keys from that layer on.
func WithPull() Option { return func(o *options) { o.pull = true } }

// WithCacheFrom looks up the build's layers in registry repositories ("registry/name")
// where other builds stored them (WithCacheTo): a layer found there is fetched instead of
// built. STRATA_CACHE_REPO names one repository for both.
func WithCacheFrom(repos ...string) Option {
	return func(o *options) { o.cacheFrom = append(o.cacheFrom, repos...) }
}

// WithCacheTo stores every layer of the build in a registry repository by its cache key,
// for other machines' builds (WithCacheFrom).
func WithCacheTo(repo string) Option { return func(o *options) { o.cacheTo = repo } }

// WithBuildSecret gives a build secret to the steps that mount it (a Dockerfile's RUN
// --mount=type=secret,id=ID), as docker build --secret does. Its value reaches no layer,
// cache key or log.
func WithBuildSecret(id string, value []byte) Option {
	return func(o *options) {
		if o.secrets == nil {
			o.secrets = map[string][]byte{}
		}
		o.secrets[id] = value
	}
}

// WithSSH forwards an SSH agent's socket to the steps that mount it (RUN
// --mount=type=ssh,id=ID; the id "default" is the usual one), as docker build --ssh does.
func WithSSH(id, socket string) Option {
	return func(o *options) {
		if o.ssh == nil {
			o.ssh = map[string]string{}
		}
		o.ssh[id] = socket
	}
}

// WithEngine builds with another engine than the local one: "buildkit" solves builds on
// the buildkitd at addr ("unix:///run/buildkit/buildkitd.sock", "tcp://host:1234" with
// STRATA_BUILDKIT_CA, _CERT and _KEY for mutual TLS, "kube-pod://name"; "" reads
// STRATA_BUILDKIT_ADDR). Its images are kept in the local store all the same. The engine's
// package must be linked in: import _ "github.com/strata-build/strata/engine/buildkit".
// STRATA_ENGINE and STRATA_BUILDKIT_ADDR choose the same without code.
func WithEngine(name, addr string) Option {
	return func(o *options) { o.engine, o.engineAddr = name, addr }
}

// WithTransferProgress receives the progress of each layer a pull fetches.
func WithTransferProgress(f func(Transfer)) Option { return func(o *options) { o.transfer = f } }

// WithProgress receives the build's progress events.
func WithProgress(f func(Event)) Option { return func(o *options) { o.progress = f } }

// WithResolveOptions passes options to the resolve step (WithDir, WithHashCache...).
func WithResolveOptions(opts ...ResolveOption) Option {
	return func(o *options) { o.resolve = append(o.resolve, opts...) }
}

// Client is an open engine and its store: the local engine, by default on the store in
// Home(). Its methods are safe for concurrent use.
type Client struct {
	eng     engine.Engine
	secrets *secrets.Store
	reg     *registry.Client
	home    string
}

// Open opens the engine the options name (the local engine on Home(), unless WithHome says
// otherwise). The local engine reads STRATA_RUNTIME (the OCI runtime, default runc),
// STRATA_DEBIAN_MIRROR, STRATA_INSECURE_REGISTRIES (comma-separated hosts reached over
// plain http, beyond loopback ones), STRATA_REGISTRY_RETRIES and STRATA_REGISTRY_TIMEOUT
// (registry.RetryFromEnv), STRATA_MAX_LAYER_SIZE and STRATA_MAX_LAYER_FILES
// (engine.LimitsFromEnv), STRATA_CDI_SPEC_DIRS (where the CDI specs of the
// machine's GPUs are, default /etc/cdi and /var/run/cdi) and STRATA_NO_PACKAGE_CACHES (set,
// the steps of apt, pip, uv, poetry and micromamba layers get no download cache).
func Open(opts ...Option) (*Client, error) {
	if err := canBuild(); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	var insecure []string
	for _, h := range strings.Split(os.Getenv("STRATA_INSECURE_REGISTRIES"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			insecure = append(insecure, h)
		}
	}
	certs := registry.DefaultCertDirs(o.home)
	retry, err := registry.RetryFromEnv()
	if err != nil {
		return nil, err
	}
	limits, err := engine.LimitsFromEnv()
	if err != nil {
		return nil, err
	}
	var cdiDirs []string
	for _, d := range strings.Split(os.Getenv("STRATA_CDI_SPEC_DIRS"), ",") {
		if d = strings.TrimSpace(d); d != "" {
			cdiDirs = append(cdiDirs, d)
		}
	}
	eng, err := local.Open(local.Options{
		CDIDirs:            cdiDirs,
		Home:               o.home,
		Runtime:            os.Getenv("STRATA_RUNTIME"),
		Mirror:             os.Getenv("STRATA_DEBIAN_MIRROR"),
		InsecureRegistries: insecure,
		CertDirs:           certs,
		RegistryRetry:      retry,
		Limits:             limits,
		NoPackageCaches:    os.Getenv("STRATA_NO_PACKAGE_CACHES") != "",
		RunDir:             runDir(),
	})
	if err != nil {
		return nil, err
	}
	var e engine.Engine = eng
	if o.engine != "" && o.engine != "local" {
		open, ok := engine.Lookup(o.engine)
		if !ok {
			eng.Close()
			return nil, fmt.Errorf("engine %q is not linked into this program: import _ \"github.com/strata-build/strata/engine/%s\" (the strata command runs strata-%s for it)", o.engine, o.engine, o.engine)
		}
		if e, err = open(context.Background(), eng, o.engineAddr); err != nil {
			eng.Close()
			return nil, err
		}
	}
	return &Client{
		home:    o.home,
		eng:     e,
		secrets: secrets.Open(filepath.Join(o.home, "secrets")),
		reg:     registry.New(registry.Options{Insecure: insecure, CertDirs: certs, Retry: retry}),
	}, nil
}

// Close releases the engine. Images it returned cannot be used after.
func (c *Client) Close() error { return c.eng.Close() }

// Resolve resolves the image as Image.Resolve does, with its registry references keyed by
// the digests they were pinned to when first pulled; a reference not pulled yet keeps its
// name in the key, and Build resolves it.
func (c *Client) Resolve(ctx context.Context, img Image, opts ...Option) (*Plan, error) {
	o := newOptions(opts)
	resolve := append([]ResolveOption{WithImageResolver(c.resolver(false, true)), withImageConfigs(c.configs(true))}, o.resolve...)
	return img.Resolve(ctx, resolve...)
}

// resolver resolves image references through the engine. Offline, a reference that was
// never pulled stays unresolved.
func (c *Client) resolver(pull, offline bool) ImageResolver {
	return func(ctx context.Context, ref string, auth *spec.RegistryAuth, platform string) (string, error) {
		d, err := c.eng.ResolveImage(ctx, ref, engine.ResolveOptions{Platform: platform, Pull: pull, Offline: offline, Auth: auth})
		if offline && errors.Is(err, engine.ErrNotFound) {
			return "", nil
		}
		return d, err
	}
}

// configs reads image configs through the engine. Offline, an image whose config is not in
// the store has no triggers known.
func (c *Client) configs(offline bool) imageConfigs {
	return func(ctx context.Context, ref, digest string, auth *spec.RegistryAuth) ([]string, []string, error) {
		cfg, err := c.eng.ImageConfig(ctx, ref, digest, engine.ResolveOptions{Offline: offline, Auth: auth})
		if offline && errors.Is(err, engine.ErrNotFound) {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		return cfg.Config.OnBuild, cfg.Config.Env, nil
	}
}

// Build resolves the image and builds it, reusing every cached layer. The local engine needs
// root, runc and overlayfs (and mmdebstrap for DebianSlim).
func (c *Client) Build(ctx context.Context, img Image, opts ...Option) (*Built, error) {
	o := newOptions(opts)
	for _, env := range []struct {
		name string
		set  *bool
	}{{"STRATA_FORCE_BUILD", &o.forceBuild}, {"STRATA_IGNORE_CACHE", &o.ignoreCache}} {
		if v := os.Getenv(env.name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("%s=%q: want a boolean: 1, t, true, 0, f or false", env.name, v)
			}
			*env.set = *env.set || b
		}
	}
	resolve := append([]ResolveOption{WithImageResolver(c.resolver(o.pull, false)), withImageConfigs(c.configs(false)), withRemoteVersions()}, o.resolve...)
	plan, err := img.Resolve(ctx, resolve...)
	if err != nil {
		return nil, err
	}
	bo := engine.BuildOptions{Name: o.name, ForceBuild: o.forceBuild, IgnoreCache: o.ignoreCache, CacheFrom: o.cacheFrom, CacheTo: o.cacheTo, Secrets: o.secrets, SSH: o.ssh}
	if repo := os.Getenv("STRATA_CACHE_REPO"); repo != "" {
		bo.CacheFrom = append(bo.CacheFrom, repo)
		if bo.CacheTo == "" {
			bo.CacheTo = repo
		}
	}
	if o.progress != nil {
		bo.Progress = func(ev engine.Event) { o.progress(eventOf(ev)) }
	}
	if plan.runsFunctions() {
		if bo.Program, err = programBinary(ctx, c.home, plan.platform()); err != nil {
			return nil, err
		}
	}
	ei, err := c.eng.Build(ctx, engine.Plan{Layers: plan.Layers, Stages: plan.Stages, Mounts: plan.Mounts}, bo)
	if err != nil {
		return nil, fromEngine(err)
	}
	b := c.built(ei)
	b.Plan = plan
	return b, nil
}

// Image finds an image in the store by name or manifest digest.
func (c *Client) Image(ctx context.Context, ref string) (*Built, error) {
	ei, err := c.eng.Image(ctx, ref)
	if err != nil {
		return nil, fromEngine(err)
	}
	return c.built(ei), nil
}

// Images lists the named images, by name.
func (c *Client) Images(ctx context.Context) ([]*Built, error) {
	all, err := c.eng.Images(ctx)
	if err != nil {
		return nil, fromEngine(err)
	}
	out := make([]*Built, len(all))
	for i, ei := range all {
		out[i] = c.built(ei)
	}
	return out, nil
}

// Remove removes image names; their layers stay cached until Prune.
func (c *Client) Remove(ctx context.Context, names ...string) error {
	for _, n := range names {
		if err := c.eng.Remove(ctx, n); err != nil {
			return fromEngine(err)
		}
	}
	return nil
}

// PruneReport says what Prune removed.
type PruneReport = engine.PruneReport

// PruneOptions say what Prune removes beyond what no image uses.
type PruneOptions = engine.PruneOptions

// Prune removes the cache entries, blobs and snapshots that no named image uses. Builds and
// runs under way finish first.
func (c *Client) Prune(ctx context.Context) (*PruneReport, error) {
	return c.PruneWith(ctx, PruneOptions{})
}

// PruneWith is Prune with options: Caches also empties the package managers' download
// caches and the RUN --mount=type=cache folders.
func (c *Client) PruneWith(ctx context.Context, o PruneOptions) (*PruneReport, error) {
	r, err := c.eng.Prune(ctx, o)
	if err != nil {
		return nil, fromEngine(err)
	}
	return r, nil
}

// CheckReport is what Check verified in the store and what it found wrong.
type CheckReport = engine.CheckReport

// Check verifies the store: every blob against its digest, every cache entry, compressed
// variant and image against the blobs and snapshots it names, and every snapshot that is a
// layer's only copy against the layer's diff ID. With repair it removes what is broken (never
// an image's name), so that the next build rebuilds it.
func (c *Client) Check(ctx context.Context, repair bool) (*CheckReport, error) {
	r, err := c.eng.Check(ctx, engine.CheckOptions{Repair: repair})
	if err != nil {
		return nil, fromEngine(err)
	}
	return r, nil
}

// Log opens the build log of the layer with the given cache key.
func (c *Client) Log(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := c.eng.Log(ctx, key)
	return rc, fromEngine(err)
}

// Pull fetches an image from a registry into the store and names it (WithName; by default
// the reference). A tag is resolved at the registry now, and its digest recorded.
func (c *Client) Pull(ctx context.Context, ref string, opts ...Option) (*Built, error) {
	o := newOptions(opts)
	ei, err := c.eng.Pull(ctx, ref, engine.PullOptions{Name: o.name, Pull: true, Progress: transferFunc(o.transfer)})
	if err != nil {
		return nil, fromEngine(err)
	}
	return c.built(ei), nil
}

// Login checks a username and password (or token) with a registry and stores them in the
// user's docker config, where docker, podman and strata find them.
func (c *Client) Login(ctx context.Context, registry, username, password string) error {
	return c.reg.Login(ctx, registry, username, password)
}

// Logout removes a registry's credentials from the user's docker config.
func (c *Client) Logout(registry string) error { return c.reg.Logout(registry) }

// CreateSecret stores (or replaces) a named secret: KEY=VALUE pairs that build steps and
// runs naming it receive as environment, and that never enter an image, a key or a log.
func (c *Client) CreateSecret(name string, values map[string]string) error {
	return c.secrets.Create(name, values)
}

// Secrets lists the secrets by name, with their keys (never their values).
func (c *Client) Secrets() (map[string][]string, error) { return c.secrets.List() }

// RemoveSecret removes a secret.
func (c *Client) RemoveSecret(name string) error { return c.secrets.Remove(name) }

func (c *Client) built(ei *engine.Image) *Built {
	b := &Built{Name: ei.Name, Manifest: ei.Manifest, Size: ei.Size, Created: ei.Created, c: c, img: ei}
	for i, k := range ei.Keys {
		b.Layers = append(b.Layers, LayerRef{Method: ei.Methods[i], Key: k})
	}
	for _, m := range ei.Mounts {
		mi := MountInfo{Method: m.Method, Target: m.Target}
		for _, f := range m.Files {
			if !fs.FileMode(f.Mode).IsDir() {
				mi.Files++
			}
		}
		b.Mounts = append(b.Mounts, mi)
	}
	return b
}

// Built is an image in the store.
type Built struct {
	// Name is the image's name ("" if unnamed).
	Name string
	// Manifest is the digest of its stored OCI manifest, whose layers built here are
	// uncompressed; Inspect gives the manifest digest as pushed.
	Manifest string
	// Size is the size of its config and layers as stored (uncompressed for layers built here).
	Size    int64
	Created time.Time
	// Layers are the layers of its definition, with their cache keys.
	Layers []LayerRef
	// Mounts are its runtime mounts: local files placed into its containers when they start.
	Mounts []MountInfo
	// Plan is the resolved definition it was built from (nil for an image looked up by name).
	Plan *Plan

	c   *Client
	img *engine.Image
}

// LayerRef is one layer of an image's definition.
type LayerRef struct {
	Method string `json:"method"`
	Key    string `json:"key"`
}

// MountInfo is a runtime mount of an image.
type MountInfo struct {
	Method string `json:"method"`
	Target string `json:"target"`
	// Files is how many files (not folders) it placed when the image was built.
	Files int `json:"files"`
}

// Ref is how to refer to the image: its name, or its manifest digest.
func (b *Built) Ref() string {
	if b.Name != "" {
		return b.Name
	}
	return b.Manifest
}

// platform is what the image was built for: its plan's, or this machine's.
func (b *Built) platform() string {
	if b.Plan != nil {
		return b.Plan.platform()
	}
	return HostPlatform()
}

// enterErr is what kept Main from re-running the program in a user namespace.
var enterErr error

// canBuild says why this process cannot use the local engine: it is neither root nor in a
// user namespace, where an ordinary user's builds run.
func canBuild() error {
	if os.Geteuid() == 0 {
		return nil
	}
	if enterErr != nil {
		return fmt.Errorf("%w: %w", ErrRootless, enterErr)
	}
	return fmt.Errorf("%w: this program runs as uid %d, neither root nor in a user namespace: call strata.Main() first in main, which re-runs the program in a user namespace as an ordinary user, as the strata command does; or run it as root", ErrRootless, os.Geteuid())
}

// runDir is where a rootless strata keeps the OCI runtime's state for its steps and runs:
// $XDG_RUNTIME_DIR/strata when the session has one of the user's own (su keeps root's,
// which the user cannot write); otherwise, as for root, the store.
func runDir() string {
	d := os.Getenv("XDG_RUNTIME_DIR")
	if !rootless.Active() || !filepath.IsAbs(d) {
		return ""
	}
	var st unix.Stat_t
	if unix.Stat(d, &st) != nil || st.Uid != uint32(os.Geteuid()) || unix.Access(d, unix.W_OK) != nil {
		return ""
	}
	return filepath.Join(d, "strata")
}
