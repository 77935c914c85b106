package buildkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/session/auth/authprovider"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/session/sshforward/sshprovider"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/engine/gpus"
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
	// store is strata's store as buildkitd reads the bases from it and exports into it.
	store *contentStore
	// vertices maps a vertex's name prefix to its layer, for progress.
	names map[string]*spec.Layer
	// entitlements are those the solve asks for: a device= for each GPU the daemon does
	// not give every build.
	entitlements []string
	// releases undo what the translation made on this machine (unpacked artifacts), after
	// the solve.
	releases []func()
}

// chain is an image as translated so far: its LLB state and its config.
type chain struct {
	st     llb.State
	config v1.ConfigFile
	// args and scope are the Dockerfile stage's ARG values, which its next layer continues.
	args  []string
	scope string
	// force is set from the first layer with force_build on: it and every later layer are
	// built again.
	force bool
}

// Build translates the plan into LLB, solves it on buildkitd and imports the image into the
// local store. Base layers are built by the local engine and read by BuildKit from the
// store, as buildx's oci-layout:// contexts are.
func (e *Engine) Build(ctx context.Context, p engine.Plan, o engine.BuildOptions) (*engine.Image, error) {
	b, err := e.newBuild(p, o)
	if err != nil {
		return nil, err
	}
	if err := e.connect(ctx); err != nil {
		return nil, err
	}
	if err := b.checkGPUs(p); err != nil {
		return nil, err
	}
	// No prune may remove the blobs that the export writes before Import records them.
	release, err := e.Store.Hold()
	if err != nil {
		return nil, err
	}
	defer release()
	defer func() {
		for _, r := range b.releases {
			r()
		}
	}()
	c, err := b.translate(ctx, p)
	if err != nil {
		return nil, err
	}
	return b.solve(ctx, p, c)
}

// newBuild numbers the plan's layers and refuses it if a layer is one this engine does not
// build: before anything is built or the daemon is reached.
func (e *Engine) newBuild(p engine.Plan, o engine.BuildOptions) (*build, error) {
	if len(p.Layers) == 0 {
		return nil, errors.New("nothing to build: the plan has no layers")
	}
	b := &build{e: e, o: o, store: newContentStore(e.Store), index: map[string]int{}, locals: map[string]fsutil.FS{}, secrets: map[string][]byte{}, stages: map[string]*chain{}, names: map[string]*spec.Layer{}}
	for _, s := range p.Stages {
		b.number(s.Layers)
	}
	b.number(p.Layers)
	for id, v := range o.Secrets {
		b.secrets[id] = v
	}
	return b, b.refuse(p)
}

// translate builds the plan's bases and translates its stages and layers into LLB.
func (b *build) translate(ctx context.Context, p engine.Plan) (*chain, error) {
	for _, s := range p.Stages {
		c, err := b.chain(ctx, s.Layers)
		if err != nil {
			return nil, err
		}
		b.stages[s.Name] = c
	}
	return b.chain(ctx, p.Layers)
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
			err = b.layer(ctx, c, l)
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
	manifest, err := b.store.layersOnly(in)
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

// vertex are the options of a layer's vertex: its name, and BuildKit's cache ignored when
// the build, this layer or one below it is forced (force propagates, as with the local
// engine) or the cache is to be ignored.
func (b *build) vertex(c *chain, l *spec.Layer, what string) []llb.ConstraintsOpt {
	c.force = c.force || l.ForceBuild
	opts := []llb.ConstraintsOpt{llb.WithCustomName(b.vertexName(l, what))}
	if c.force || b.o.ForceBuild || b.o.IgnoreCache {
		opts = append(opts, llb.IgnoreCache)
	}
	return opts
}

// refuse fails a plan with a layer this engine does not build, before anything is built:
// volumes at build time, which buildkitd, maybe on another machine, cannot mount.
func (b *build) refuse(p engine.Plan) error {
	return b.eachTranslated(p, func(l *spec.Layer) error {
		if len(l.Volumes) > 0 {
			return fmt.Errorf("volumes at build time: %w: buildkitd, which may be on another machine, cannot mount this machine's volumes (build this layer with the local engine)", ErrUnsupported)
		}
		return nil
	})
}

// checkGPUs fails a plan whose GPU request the daemon cannot meet, once its devices are
// known and before anything is built.
func (b *build) checkGPUs(p engine.Plan) error {
	return b.eachTranslated(p, func(l *spec.Layer) error {
		if l.GPU == nil {
			return nil
		}
		_, err := b.gpuDevices(l.GPU)
		return err
	})
}

// eachTranslated calls check on every layer of the plan that this engine translates (all but
// the bases, which the local engine builds and which may ask for anything it builds), and
// returns the first error as the layer's BuildError.
func (b *build) eachTranslated(p engine.Plan, check func(*spec.Layer) error) error {
	layers := append([]*spec.Layer(nil), p.Layers...)
	for _, s := range p.Stages {
		layers = append(layers, s.Layers...)
	}
	for _, l := range layers {
		if l.Base != nil {
			continue
		}
		if err := check(l); err != nil {
			return &engine.BuildError{Index: b.index[l.Key], Method: l.Method, Key: l.Key, Err: err}
		}
	}
	return nil
}

// gpuDevices picks the daemon's CDI devices for a layer's GPU request, as the local engine
// picks its machine's, and asks for the device entitlement of each one that the daemon does
// not allow every build (buildkitd --allow-insecure-entitlement device lets builds ask).
func (b *build) gpuDevices(req *spec.GPU) ([]llb.RunOption, error) {
	var all []gpus.Device
	autoAllow := map[string]bool{}
	for _, d := range b.e.devices {
		if g, ok := gpus.FromCDI(d.Name, d.Annotations); ok {
			all = append(all, g)
			autoAllow[d.Name] = d.AutoAllow
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	names, err := gpus.Pick(all, req, "the buildkitd at "+b.e.addr, "its workers' CDI devices")
	if err != nil {
		return nil, err
	}
	var opts []llb.RunOption
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range names {
		opts = append(opts, llb.AddCDIDevice(llb.CDIDeviceName(n)))
		if ent := "device=" + n; !autoAllow[n] && !slices.Contains(b.entitlements, ent) {
			b.entitlements = append(b.entitlements, ent)
		}
	}
	return opts, nil
}

// solve marshals the chain, solves it with the OCI exporter into strata's store and
// imports the result.
func (b *build) solve(ctx context.Context, p engine.Plan, c *chain) (*engine.Image, error) {
	platform := ocispecs.Platform{OS: "linux", Architecture: runtime.GOARCH}
	def, err := c.st.Marshal(ctx, llb.Platform(platform))
	if err != nil {
		return nil, err
	}
	cfg := c.config
	cfg.OS, cfg.Architecture = platform.OS, platform.Architecture
	// BuildKit fills in no creation time when the config has one, and a zero one would
	// say year 1.
	epoch := planEpoch(p)
	created := time.Now().UTC().Truncate(time.Second)
	if epoch != nil && time.Unix(*epoch, 0).Before(created) {
		created = time.Unix(*epoch, 0).UTC()
	}
	cfg.Created = v1.Time{Time: created}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{
		// Into the output store, not a tar stream (which needs a file receiver).
		"tar":                           "false",
		"oci-mediatypes":                "true",
		"compression":                   "gzip",
		exptypes.ExporterImageConfigKey: string(cfgJSON),
	}
	if epoch != nil {
		attrs["source-date-epoch"] = strconv.FormatInt(*epoch, 10)
		attrs["rewrite-timestamp"] = "true"
	}
	opt := client.SolveOpt{
		Exports:     []client.ExportEntry{{Type: client.ExporterOCI, Attrs: attrs, OutputStore: b.store}},
		LocalMounts: b.locals,
		OCIStores:   map[string]content.Store{storeID: b.store},
		Session:     []session.Attachable{secretsprovider.FromMap(b.secrets), authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{AuthConfigProvider: keychainAuth})},
		// Not in buildkitd's build history, which would keep the steps' output unmasked.
		Internal:            true,
		AllowedEntitlements: b.entitlements,
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
	// The ssh agents (strata build --ssh), forwarded through the session as buildctl's
	// --ssh forwards them.
	if len(b.o.SSH) > 0 {
		var agents []sshprovider.AgentConfig
		for id, sock := range b.o.SSH {
			agents = append(agents, sshprovider.AgentConfig{ID: id, Paths: []string{sock}})
		}
		ssh, err := sshprovider.NewSSHAgentProvider(agents)
		if err != nil {
			return nil, fmt.Errorf("--ssh: %w", err)
		}
		opt.Session = append(opt.Session, ssh)
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
	pr.finish(p.Layers)
	manifest := res.ExporterResponse[exptypes.ExporterImageDigestKey]
	if _, err := digest.Parse(manifest); err != nil {
		return nil, fmt.Errorf("buildkitd exported no image digest (%q): %w", manifest, err)
	}
	return b.e.Store.Import(ctx, Name, manifest, p, b.o.Name)
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

// argsOf returns the ARG values a layer starts with: its stage's so far, or none.
func (c *chain) argsOf(l *spec.Layer) []string {
	if l.Scope != "" && l.Scope == c.scope {
		return c.args
	}
	return nil
}

func splitKV(kv string) (string, string) {
	k, v, _ := strings.Cut(kv, "=")
	return k, v
}
