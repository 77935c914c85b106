package buildkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/session/auth/authprovider"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/spec"
)

// storeID names strata's store among the OCI content stores a solve reads bases from.
const storeID = "strata"

// build is one Build call being translated to LLB.
type build struct {
	e *Engine
	o engine.BuildOptions
	// index numbers each layer for progress, as the local engine does.
	index map[string]int
	// locals are the layers' context files, by the name of their llb.Local.
	locals map[string]fsutil.FS
	// secrets are the values the steps read (build secrets and local secrets as
	// environment), by secret id: sent through the session, never in the definition.
	mu      sync.Mutex
	secrets map[string][]byte
	stages  map[string]*chain
	// bases is strata's store as BuildKit reads the base images from it.
	bases *readOnlyStore
	// vertices maps a vertex's name prefix to its layer, for progress.
	names map[string]*spec.Layer
}

// chain is an image as translated so far: its LLB state and its config.
type chain struct {
	st     llb.State
	config v1.ConfigFile
	// args and scope are the Dockerfile stage's ARG values, which its next layer continues.
	args  []string
	scope string
}

// Build translates the plan into LLB, solves it on buildkitd and imports the image into the
// local store. Base layers are built by the local engine and read by BuildKit from the
// store, as buildx's oci-layout:// contexts are.
func (e *Engine) Build(ctx context.Context, p engine.Plan, o engine.BuildOptions) (*engine.Image, error) {
	b, c, err := e.translate(ctx, p, o)
	if b != nil {
		defer b.bases.close()
	}
	if err != nil {
		return nil, err
	}
	return b.solve(ctx, p, c)
}

// translate builds the plan's bases and translates its stages and layers into LLB.
func (e *Engine) translate(ctx context.Context, p engine.Plan, o engine.BuildOptions) (*build, *chain, error) {
	if len(p.Layers) == 0 {
		return nil, nil, errors.New("nothing to build: the plan has no layers")
	}
	bases, err := newReadOnlyStore(e.Store.BlobRoot())
	if err != nil {
		return nil, nil, err
	}
	b := &build{e: e, o: o, bases: bases, index: map[string]int{}, locals: map[string]fsutil.FS{}, secrets: map[string][]byte{}, stages: map[string]*chain{}, names: map[string]*spec.Layer{}}
	for _, s := range p.Stages {
		b.number(s.Layers)
	}
	b.number(p.Layers)
	for id, v := range o.Secrets {
		b.secrets[id] = v
	}
	for _, s := range p.Stages {
		c, err := b.chain(ctx, s.Layers)
		if err != nil {
			return b, nil, err
		}
		b.stages[s.Name] = c
	}
	c, err := b.chain(ctx, p.Layers)
	return b, c, err
}

func (b *build) number(layers []*spec.Layer) {
	for _, l := range layers {
		if _, ok := b.index[l.Key]; !ok {
			b.index[l.Key] = len(b.index)
		}
	}
}

func (b *build) emit(ev engine.Event) {
	if b.o.Progress != nil {
		b.o.Progress(ev)
	}
}

// chain translates a chain of layers.
func (b *build) chain(ctx context.Context, layers []*spec.Layer) (*chain, error) {
	var c *chain
	for _, l := range layers {
		var err error
		if l.Base != nil {
			c, err = b.base(ctx, l)
		} else if c == nil {
			err = fmt.Errorf("layer %s (%s) has no base", l.Key, l.Method)
		} else {
			err = b.layer(c, l)
		}
		if err != nil {
			var be *engine.BuildError
			if errors.As(err, &be) {
				return nil, err
			}
			return nil, &engine.BuildError{Index: b.index[l.Key], Method: l.Method, Key: l.Key, Err: err}
		}
	}
	return c, nil
}

// base builds a root layer on the local engine (debian_slim's bootstrap, or a pulled
// image with the layer's own instructions) and gives it to BuildKit as an OCI layout.
func (b *build) base(ctx context.Context, l *spec.Layer) (*chain, error) {
	idx := b.index[l.Key]
	progress := func(ev engine.Event) {
		ev.Index, ev.Total = idx, len(b.index)
		b.emit(ev)
	}
	opts := engine.BuildOptions{ForceBuild: b.o.ForceBuild, IgnoreCache: b.o.IgnoreCache, Progress: progress, Secrets: b.o.Secrets, SSH: b.o.SSH, Program: b.o.Program}
	img, err := b.e.Store.Build(ctx, engine.Plan{Layers: []*spec.Layer{l}}, opts)
	if err != nil {
		return nil, err
	}
	in, err := b.e.Store.Inspect(ctx, img)
	if err != nil {
		return nil, err
	}
	cfg := v1.ConfigFile{Architecture: in.Config.Architecture, OS: in.Config.OS, Variant: in.Config.Variant, Config: in.Config.Config, Author: in.Config.Author, History: in.Config.History}
	manifest, err := b.bases.layersOnly(in)
	if err != nil {
		return nil, err
	}
	// The local engine reported the base layer's progress: its vertex is not named after
	// the layer, so BuildKit's reading it is not reported again.
	st := llb.OCILayout("strata/base@"+manifest, llb.OCIStore("", storeID), llb.WithCustomName("strata base "+img.Manifest))
	return &chain{st: st, config: cfg, scope: l.Scope}, nil
}

// vertexName names a vertex of a layer so that progress finds the layer again.
func (b *build) vertexName(l *spec.Layer, what string) string {
	prefix := fmt.Sprintf("[strata %d]", b.index[l.Key])
	b.mu.Lock()
	b.names[prefix] = l
	b.mu.Unlock()
	return prefix + " " + l.Method + ": " + what
}

// unsupported refuses what a layer asks that this engine does not build yet.
func unsupported(l *spec.Layer) error {
	switch {
	case l.Function != nil:
		return fmt.Errorf("run_function: %w (build this image with the local engine)", ErrUnsupported)
	case l.GPU != nil:
		return fmt.Errorf("a GPU at build time: %w (buildkitd's CDI devices are not wired yet)", ErrUnsupported)
	case len(l.Volumes) > 0:
		return fmt.Errorf("volumes at build time: %w", ErrUnsupported)
	case len(l.Artifacts) > 0:
		return fmt.Errorf("downloaded artifacts (add_python on a non-Debian image, micromamba): %w", ErrUnsupported)
	}
	return nil
}

// solve marshals the chain, solves it with the OCI exporter into a layout folder and
// imports the result.
func (b *build) solve(ctx context.Context, p engine.Plan, c *chain) (*engine.Image, error) {
	platform := ocispecs.Platform{OS: "linux", Architecture: runtime.GOARCH}
	def, err := c.st.Marshal(ctx, llb.Platform(platform))
	if err != nil {
		return nil, err
	}
	cfg := c.config
	cfg.OS, cfg.Architecture = platform.OS, platform.Architecture
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{
		"tar":                           "false",
		"oci-mediatypes":                "true",
		"compression":                   "gzip",
		exptypes.ExporterImageConfigKey: string(cfgJSON),
	}
	if epoch := planEpoch(p); epoch != nil {
		attrs["source-date-epoch"] = strconv.FormatInt(*epoch, 10)
		attrs["rewrite-timestamp"] = "true"
	}
	out, err := os.MkdirTemp("", "strata-buildkit-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	opt := client.SolveOpt{
		Exports:     []client.ExportEntry{{Type: client.ExporterOCI, Attrs: attrs, OutputDir: out}},
		LocalMounts: b.locals,
		OCIStores:   map[string]content.Store{storeID: b.bases},
		Session:     []session.Attachable{secretsprovider.FromMap(b.secrets), authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{AuthConfigProvider: keychainAuth})},
		// Not in buildkitd's build history, which would keep the steps' output unmasked.
		Internal: true,
	}
	// BuildKit's registry cache: the daemon pushes and pulls it, as buildx's
	// --cache-to/--cache-from type=registry, under a tag of its own in the repository that
	// the local engine's cache uses by key.
	for _, repo := range b.o.CacheFrom {
		opt.CacheImports = append(opt.CacheImports, client.CacheOptionsEntry{Type: "registry", Attrs: cacheAttrs(repo)})
	}
	if b.o.CacheTo != "" {
		attrs := cacheAttrs(b.o.CacheTo)
		attrs["mode"] = "max"
		opt.CacheExports = append(opt.CacheExports, client.CacheOptionsEntry{Type: "registry", Attrs: attrs})
	}
	status := make(chan *client.SolveStatus)
	done := make(chan error, 1)
	pr := newProgress(b)
	go func() { done <- pr.run(status) }()
	res, err := b.e.c.Solve(ctx, def, opt, status)
	<-done
	if err != nil {
		return nil, pr.buildError(err)
	}
	digest := res.ExporterResponse[exptypes.ExporterImageDigestKey]
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, fmt.Errorf("buildkitd exported no image digest: %w", err)
	}
	lp, err := layout.FromPath(out)
	if err != nil {
		return nil, err
	}
	img, err := lp.Image(h)
	if err != nil {
		return nil, err
	}
	return b.e.Store.Import(ctx, img, p, b.o.Name)
}

// CacheTag is the tag of BuildKit's registry cache in a --cache-to repository.
const CacheTag = "strata-buildkit-cache"

func cacheAttrs(repo string) map[string]string {
	attrs := map[string]string{"ref": repo + ":" + CacheTag}
	host, _, _ := strings.Cut(repo, "/")
	if insecureRegistry(host) {
		attrs["registry.insecure"] = "true"
	}
	return attrs
}

// insecureRegistry says whether strata reaches a registry over plain http, as the local
// engine does: loopback hosts and those in STRATA_INSECURE_REGISTRIES.
func insecureRegistry(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	if h == "localhost" {
		return true
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, r := range strings.Split(os.Getenv("STRATA_INSECURE_REGISTRIES"), ",") {
		if r = strings.TrimSpace(r); r != "" && (r == host || r == h) {
			return true
		}
	}
	return false
}

// keychainAuth gives buildkitd the user's registry credentials as strata finds them (the
// docker config and its credential helpers), for the registry cache.
func keychainAuth(ctx context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
	reg, err := name.NewRegistry(host)
	if err != nil {
		return types.AuthConfig{}, err
	}
	a, err := authn.DefaultKeychain.Resolve(reg)
	if err != nil {
		return types.AuthConfig{}, err
	}
	ac, err := authn.Authorization(ctx, a)
	if err != nil {
		return types.AuthConfig{}, err
	}
	return types.AuthConfig{ServerAddress: host, Username: ac.Username, Password: ac.Password, IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}, nil
}

// planEpoch is the SOURCE_DATE_EPOCH the plan's last layer was keyed with, if any.
func planEpoch(p engine.Plan) *int64 {
	return p.Layers[len(p.Layers)-1].SourceDateEpoch
}

// readOnlyStore is strata's blob folder seen as a containerd content store, from which
// BuildKit reads the base images (llb.OCILayout). Its own ingest folder is a temporary one:
// nothing is written into strata's store.
type readOnlyStore struct {
	content.Store
	dir   string
	mu    sync.Mutex
	extra map[digest.Digest][]byte
}

func newReadOnlyStore(root string) (*readOnlyStore, error) {
	quietLogs()
	dir, err := os.MkdirTemp("", "strata-oci-store-")
	if err != nil {
		return nil, err
	}
	if err := os.Symlink(filepath.Join(root, "blobs"), filepath.Join(dir, "blobs")); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cs, err := contentlocal.NewStore(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &readOnlyStore{Store: cs, dir: dir}, nil
}

func (s *readOnlyStore) close() { os.RemoveAll(s.dir) }

// layersOnly returns the digest of a manifest of the image's layers whose config holds
// nothing but the layers' diff IDs, served from memory. BuildKit keys an OCI layout source
// by its manifest, and the stored image's config has the time it was built: two stores
// that bootstrapped the same base bytes would otherwise share no cache on one buildkitd.
// The config that the engine gives the exported image is the full one.
func (s *readOnlyStore) layersOnly(in *engine.Inspect) (string, error) {
	cfg := v1.ConfigFile{Architecture: in.Config.Architecture, OS: in.Config.OS, Variant: in.Config.Variant, RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}}}
	m := ocispecs.Manifest{MediaType: ocispecs.MediaTypeImageManifest, Layers: []ocispecs.Descriptor{}}
	m.SchemaVersion = 2
	for _, l := range in.Layers {
		for _, bl := range l.Blobs {
			h, err := v1.NewHash(bl.DiffID)
			if err != nil {
				return "", err
			}
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, h)
			m.Layers = append(m.Layers, ocispecs.Descriptor{MediaType: bl.MediaType, Digest: digest.Digest(bl.Digest), Size: bl.Size})
		}
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	m.Config = ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	mb, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.extra == nil {
		s.extra = map[digest.Digest][]byte{}
	}
	s.extra[digest.FromBytes(cb)] = cb
	md := digest.FromBytes(mb)
	s.extra[md] = mb
	return md.String(), nil
}

func (s *readOnlyStore) blob(d digest.Digest) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.extra[d]
	return b, ok
}

func (s *readOnlyStore) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	if b, ok := s.blob(d); ok {
		return content.Info{Digest: d, Size: int64(len(b))}, nil
	}
	return s.Store.Info(ctx, d)
}

func (s *readOnlyStore) ReaderAt(ctx context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	if b, ok := s.blob(desc.Digest); ok {
		return bytesReaderAt{bytes.NewReader(b)}, nil
	}
	return s.Store.ReaderAt(ctx, desc)
}

type bytesReaderAt struct{ *bytes.Reader }

func (bytesReaderAt) Close() error { return nil }

func (s *readOnlyStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	return nil, errors.New("strata's store is read-only to buildkitd")
}

func (s *readOnlyStore) Delete(ctx context.Context, dgst digest.Digest) error {
	return errors.New("strata's store is read-only to buildkitd")
}

// argsOf returns the ARG values a layer starts with: its stage's so far, or none.
func (c *chain) argsOf(l *spec.Layer) []string {
	if l.Scope != "" && l.Scope == c.scope {
		return c.args
	}
	return nil
}

// envSecretID is the session secret id of a local secret's variable.
func envSecretID(key string) string { return "strata-env:" + key }

func splitKV(kv string) (string, string) {
	k, v, _ := strings.Cut(kv, "=")
	return k, v
}
