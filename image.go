package strata

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-build/strata/internal/home"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
)

// BuilderVersion is part of every cache key. It changes, deliberately, whenever the
// instructions strata generates for a method or the key encoding change, so that old cache
// entries are never reused for a different recipe.
const BuilderVersion = "2026.12"

// Image is an image definition: a chain of layers. Its methods return new Images and never
// change the receiver, so one Image can be the base of many. The zero Image has no
// constructor; start a chain with DebianSlim, FromRegistry or another constructor.
type Image struct {
	n *node
}

// node is one chain method call.
type node struct {
	parent *node
	method string
	root   bool
	force  bool
	// layers produces the method's layers at resolve time (several for from_dockerfile).
	layers func(r *resolver) ([]*spec.Layer, error)
	// mount produces a runtime mount instead of a layer (add_local_* without copy).
	mount func(r *resolver) (spec.Mount, error)
}

func newRoot(method string, force bool, layers func(r *resolver) ([]*spec.Layer, error)) Image {
	return Image{&node{method: method, root: true, force: force, layers: layers}}
}

func (img Image) then(method string, force bool, layer func(r *resolver) (*spec.Layer, error)) Image {
	return Image{&node{parent: img.n, method: method, force: force, layers: func(r *resolver) ([]*spec.Layer, error) {
		l, err := layer(r)
		if err != nil {
			return nil, err
		}
		return []*spec.Layer{l}, nil
	}}}
}

func (img Image) thenMount(method string, mount func(r *resolver) (spec.Mount, error)) Image {
	return Image{&node{parent: img.n, method: method, mount: mount}}
}

// Pipe applies a reusable recipe: img.Pipe(f) is f(img).
func (img Image) Pipe(f func(Image) Image) Image { return f(img) }

// LayerOptions are the options most layer methods take.
type LayerOptions struct {
	// ForceBuild rebuilds this layer, and so every later one, even when cached, and replaces
	// the cached entries.
	ForceBuild bool `yaml:"force_build"`
	// Env is environment for this layer's build steps only; it does not persist in the image.
	Env map[string]string `yaml:"env"`
	// Secrets name local secrets (strata secret create) whose keys and values become
	// environment of this layer's build steps. Values never enter the image or its cache key.
	Secrets []string `yaml:"secrets"`
	// GPU asks for accelerators during the build step: "H100", "a10g:2", "any".
	GPU string `yaml:"gpu"`
}

// Plan is a resolved image: its layers with their cache keys, the stages they read from,
// and its runtime mounts.
type Plan struct {
	Builder string
	Layers  []*spec.Layer
	// Stages are chains of layers that Layers copy or mount from (a multi-stage Dockerfile's
	// stages other than its target), in the order they can be built.
	Stages []spec.Stage
	Mounts []spec.Mount
	// Warnings say where the plan differs from what the definition asked for.
	Warnings []string
}

// runsFunctions reports whether a layer of the plan runs a Go function.
func (p *Plan) runsFunctions() bool {
	for _, l := range p.Layers {
		if l.Function != nil {
			return true
		}
	}
	return false
}

// platform is what the plan is built for.
func (p *Plan) platform() string {
	if len(p.Layers) > 0 && p.Layers[0].Base != nil && p.Layers[0].Base.Platform != "" {
		return p.Layers[0].Base.Platform
	}
	return HostPlatform()
}

// Key is the cache key of the image's last layer, which identifies the whole image.
func (p *Plan) Key() string { return p.Layers[len(p.Layers)-1].Key }

// Dockerfile renders the plan as an equivalent Dockerfile.
func (p *Plan) Dockerfile() string { return spec.Dockerfile(p.Layers, p.Mounts) }

// ResolveOption configures Resolve.
type ResolveOption func(*resolveOptions)

type resolveOptions struct {
	dir       string
	hashCache string
	noCache   bool
	images    ImageResolver
	configs   imageConfigs
	remote    bool
	platform  string
	epoch     *int64
	epochSet  bool
}

// ImageResolver returns the manifest digest an image reference stands for on a platform
// ("linux/amd64"), or "" when it cannot say without building (the key then holds the
// reference). auth says how to log in to its registry, nil for the default.
type ImageResolver func(ctx context.Context, ref string, auth *spec.RegistryAuth, platform string) (string, error)

// WithImageResolver keys the layers that start from or copy from an image by the digest
// the resolver gives, as BuildKit does, so that a rebuilt or re-pushed image rebuilds what
// uses it. Client.Build passes the engine's resolver; without one the reference as written
// is in the key.
func WithImageResolver(r ImageResolver) ResolveOption {
	return func(o *resolveOptions) { o.images = r }
}

// imageConfigs returns the ONBUILD triggers and the environment of the image that ref
// resolved to (digest): what a Dockerfile stage FROM it runs first, and the files of the
// build context they copy.
type imageConfigs func(ctx context.Context, ref, digest string, auth *spec.RegistryAuth) (triggers, env []string, err error)

// withImageConfigs reads the configs of the images Dockerfiles start from; Client.Resolve
// and Client.Build pass the engine's. Without it, a base image's ONBUILD COPY finds no files.
func withImageConfigs(c imageConfigs) ResolveOption { return func(o *resolveOptions) { o.configs = c } }

// withRemoteVersions looks up what the URLs and git repositories that ADD instructions name
// hold now (a commit, an ETag), so that a change there rebuilds: Client.Build does, with
// the network; other resolves key them by their addresses only.
func withRemoteVersions() ResolveOption { return func(o *resolveOptions) { o.remote = true } }

// WithPlatform sets the platform the image is built for, "linux/amd64" (default: this
// machine's, runtime.GOOS/runtime.GOARCH).
func WithPlatform(p string) ResolveOption { return func(o *resolveOptions) { o.platform = p } }

// WithSourceDateEpoch makes the image reproducible: file times in every layer strata
// writes, and the times in its config and history, are clamped to t, and build steps see
// SOURCE_DATE_EPOCH. The default is the SOURCE_DATE_EPOCH environment variable, if set.
func WithSourceDateEpoch(t time.Time) ResolveOption {
	return func(o *resolveOptions) {
		sec := t.Unix()
		o.epoch, o.epochSet = &sec, true
	}
}

// HostPlatform is this machine's platform, "linux/amd64": what images are built for.
func HostPlatform() string {
	p := "linux/" + runtime.GOARCH
	if runtime.GOARCH == "arm64" {
		p += "/v8"
	}
	return p
}

// WithDir sets the folder that relative local paths are resolved against (default: the
// working directory). The spec file loader sets it to the spec file's folder.
func WithDir(dir string) ResolveOption { return func(o *resolveOptions) { o.dir = dir } }

// WithHashCache sets the file that remembers file digests across runs; "" disables it. The
// default is filehash in Home().
func WithHashCache(file string) ResolveOption {
	return func(o *resolveOptions) { o.hashCache, o.noCache = file, file == "" }
}

// Home is strata's state folder: $STRATA_HOME, else /var/lib/strata for root, else (an
// ordinary user, rootless) $XDG_DATA_HOME/strata or ~/.local/share/strata.
func Home() string { return home.Dir() }

// resolver carries what layer functions need at resolve time.
type resolver struct {
	ctx      context.Context
	o        *resolveOptions
	dir      string
	hasher   *localfiles.Hasher
	platform string
	// stages are the stages the plan's layers read from (multi-stage Dockerfiles).
	stages []spec.Stage
	// warnings are what the plan builds differently from what was asked, said plainly.
	warnings []string
	// contexts are build contexts already listed, by folder and ignore patterns.
	contexts map[string][]spec.ContextFile
}

// resolutionError is a failure to resolve an image or source reference, as opposed to a
// mistake in the definition.
type resolutionError struct{ err error }

func (e *resolutionError) Error() string { return e.err.Error() }
func (e *resolutionError) Unwrap() error { return e.err }

// packageCaches are the download caches each method's steps use (spec.Layer.Caches). The
// methods that run the user's own shell commands get apt's: those commands run apt-get more
// than anything else, and the cache is a proxy that only apt reads.
var packageCaches = map[string][]string{
	"debian_slim":                   {"apt"},
	"apt_install":                   {"apt"},
	"run_commands":                  {"apt"},
	"dockerfile_commands":           {"apt"},
	"from_dockerfile":               {"apt"},
	"pip_install":                   {"pip"},
	"pip_install_from_requirements": {"pip"},
	"pip_install_from_pyproject":    {"pip"},
	"pip_install_private_repos":     {"apt", "pip"},
	"poetry_install_from_file":      {"pip", "poetry"},
	"uv_pip_install":                {"uv"},
	"uv_sync":                       {"uv"},
	"micromamba":                    {"micromamba"},
	"micromamba_install":            {"micromamba"},
}

// finish completes a layer: its method, its context's digests, the images it reads, its
// epoch and force flag, and its cache key on top of parent.
func (r *resolver) finish(l *spec.Layer, method, parent string, force bool) error {
	if l.Method == "" {
		l.Method = method
	}
	if l.Caches == nil && runsCommands(l) {
		l.Caches = packageCaches[l.Method]
	}
	if err := r.hasher.Hash(l.Context); err != nil {
		return err
	}
	if err := resolveImages(r.ctx, l, r.o); err != nil {
		return &resolutionError{err}
	}
	if err := resolveRemote(r.ctx, l, r.o); err != nil {
		return &resolutionError{err}
	}
	l.SourceDateEpoch = r.o.epoch
	l.ForceBuild = force
	l.Parent = parent
	l.Key = l.ComputeKey(BuilderVersion, parent)
	return nil
}

// path makes a local path absolute against the resolve folder.
func (r *resolver) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.dir, p)
}

// Resolve validates the definition, hashes its local inputs and computes every layer's cache
// key. It reads local files but builds nothing.
func (img Image) Resolve(ctx context.Context, opts ...ResolveOption) (*Plan, error) {
	o := resolveOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return nil, err
	}
	o.dir = dir
	if o.hashCache == "" && !o.noCache {
		o.hashCache = filepath.Join(Home(), "filehash")
	}
	if o.platform == "" {
		o.platform = HostPlatform()
	}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" && !o.epochSet {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 {
			return nil, fmt.Errorf("%w: SOURCE_DATE_EPOCH=%q: want the Unix time in seconds, such as %d", ErrInvalid, v, time.Now().Unix())
		}
		o.epoch = &sec
	}
	var chain []*node
	for n := img.n; n != nil; n = n.parent {
		chain = append([]*node{n}, chain...)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: empty image: start the chain with a constructor such as strata.DebianSlim(\"3.13\")", ErrInvalid)
	}
	if !chain[0].root {
		return nil, &Error{Index: 0, Method: chain[0].method, Err: fmt.Errorf("the chain has no constructor: start it with strata.DebianSlim, strata.FromRegistry or another constructor before %s", chain[0].method)}
	}
	r := &resolver{ctx: ctx, o: &o, dir: o.dir, hasher: localfiles.NewHasher(o.hashCache), platform: o.platform}
	plan := &Plan{Builder: BuilderVersion}
	parent, force := "", false
	for i, n := range chain {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fail := func(err error) error {
			var e *Error
			if errors.As(err, &e) {
				return err
			}
			return &Error{Index: i, Method: n.method, Err: err}
		}
		if n.mount != nil {
			m, err := n.mount(r)
			if err != nil {
				return nil, fail(err)
			}
			m.Method = n.method
			plan.Mounts = append(plan.Mounts, m)
			continue
		}
		if len(plan.Mounts) > 0 {
			return nil, fail(errMountBeforeBuild)
		}
		layers, err := n.layers(r)
		if err != nil {
			return nil, fail(err)
		}
		// A forced layer forces every later one: their cached entries were built on the
		// content that the forced rebuild replaces.
		force = force || n.force
		for _, l := range layers {
			// A Dockerfile's layers come keyed already: its stages needed their keys.
			if l.Key == "" {
				if err := r.finish(l, n.method, parent, force); err != nil {
					var re *resolutionError
					if errors.As(err, &re) {
						return nil, fmt.Errorf("layer %d (%s): %w", i, n.method, re.err)
					}
					return nil, fail(err)
				}
			}
			parent = l.Key
			plan.Layers = append(plan.Layers, l)
		}
	}
	plan.Stages, plan.Warnings = r.stages, r.warnings
	if err := r.hasher.Save(); err != nil {
		// The digest cache only saves time; a read-only home must not fail a resolve.
		fmt.Fprintf(os.Stderr, "strata: warning: could not save file digests: %v\n", err)
	}
	return plan, nil
}

// resolveImages sets the platform of a root layer and the digests of the images a layer
// starts from or copies from.
func resolveImages(ctx context.Context, l *spec.Layer, o *resolveOptions) error {
	resolve := func(ref string, auth *spec.RegistryAuth) (string, error) {
		if o.images == nil {
			return "", nil
		}
		return o.images(ctx, ref, auth, o.platform)
	}
	if l.Base != nil {
		l.Base.Platform = o.platform
		if l.Base.Kind == spec.BaseRegistry && l.Base.Digest == "" {
			d, err := resolve(l.Base.Ref, l.Base.Auth)
			if err != nil {
				return err
			}
			l.Base.Digest = d
		}
	}
	// References to stages of the plan, and images resolved already, are set by the
	// Dockerfile converter; the rest are images: those the instructions name, and those a
	// base's ONBUILD triggers name (set without a digest).
	var images []spec.ImageRef
	var pending []string
	seen := map[string]bool{}
	for _, im := range l.Images {
		if im.Stage != "" || im.Digest != "" {
			images = append(images, im)
			seen[im.Ref] = true
		} else {
			pending = append(pending, im.Ref)
		}
	}
	froms, err := imageRefs(l.Instructions)
	if err != nil {
		return err
	}
	froms = append(froms, pending...)
	for _, from := range froms {
		if seen[from] {
			continue
		}
		seen[from] = true
		if strings.Contains(from, "$") {
			return fmt.Errorf("--from=%s: strata resolves the image before the build, so write its reference literally", from)
		}
		d, err := resolve(from, nil)
		if err != nil {
			return err
		}
		images = append(images, spec.ImageRef{Ref: from, Digest: d})
	}
	l.Images = images
	return nil
}

// imageRefs lists the --from= values of COPY and ADD, and the from= of RUN mounts, in order.
func imageRefs(ins []spec.Instruction) ([]string, error) {
	var out []string
	for _, in := range ins {
		switch in.Op {
		case spec.OpCopy, spec.OpAdd:
			flags, err := in.CopyFlags()
			if err != nil {
				return nil, err
			}
			if flags.From != "" {
				out = append(out, flags.From)
			}
		case spec.OpRun:
			mounts, err := in.Mounts()
			if err != nil {
				return nil, err
			}
			for _, m := range mounts {
				if m.From != "" {
					out = append(out, m.From)
				}
			}
		}
	}
	return out, nil
}

var errMountBeforeBuild = errors.New(`an image tried to run a build step after using add_local_* to include local files.

Run add_local_* commands last in your image build to avoid rebuilding images with every local file change. strata will then add these files to containers on startup instead, saving build time.
If you need to run other build steps after adding local files, set Copy: true (copy: true in a spec file) to copy the files directly into the image, at the expense of some added build time.

Example:

    strata.DebianSlim("3.13").
        AddLocalFileWith(strata.AddLocalFileOptions{LocalPath: "data.json", RemotePath: "/root/data.json", Copy: true}).
        RunCommands("python -m mypak")`)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// layer starts a layer with the common options applied and validated.
func (r *resolver) layer(o LayerOptions) (*spec.Layer, error) {
	l := &spec.Layer{}
	for k := range o.Env {
		if err := checkEnvKey(k); err != nil {
			return nil, fmt.Errorf("env: %w", err)
		}
	}
	l.Env = spec.SortedKVs(o.Env)
	for _, s := range o.Secrets {
		if !nameRE.MatchString(s) {
			return nil, fmt.Errorf("secrets: %q is not a secret name: names use letters, digits, '.', '_' and '-' (create one with: strata secret create NAME KEY=VALUE)", s)
		}
	}
	l.Secrets = dedupe(o.Secrets)
	gpu, err := ParseGPU(o.GPU)
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	l.GPU = gpu
	return l, nil
}

func checkEnvKey(k string) error {
	if k == "" || strings.ContainsAny(k, "= \t\n\x00") {
		return fmt.Errorf("%q is not a valid environment variable name: names cannot be empty or hold '=', spaces or NUL", k)
	}
	return nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// runsCommands says whether a layer has a RUN step, the only kind a package cache is lent to.
func runsCommands(l *spec.Layer) bool {
	return slices.ContainsFunc(l.Instructions, func(in spec.Instruction) bool { return in.Op == spec.OpRun })
}

func run(cmd string) spec.Instruction {
	return spec.Instruction{Op: spec.OpRun, Args: []string{cmd}}
}

func copyIn(flags []string, src, dst string) spec.Instruction {
	return spec.Instruction{Op: spec.OpCopy, Flags: flags, Args: []string{src, dst}}
}
