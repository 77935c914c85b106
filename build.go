package strata

import (
	"context"
	"os"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/store"
)

// BuildOption configures Build and Run.
type BuildOption func(*buildConfig)

type buildConfig struct {
	resolve  []ResolveOption
	home     string
	opts     engine.BuildOptions
	progress func(engine.Event)
}

// WithName names the built image in the local store, for strata run, export and inspect.
func WithName(name string) BuildOption { return func(c *buildConfig) { c.opts.Name = name } }

// WithForceBuild rebuilds every layer and replaces the cached entries (STRATA_FORCE_BUILD=1).
func WithForceBuild() BuildOption { return func(c *buildConfig) { c.opts.ForceBuild = true } }

// WithIgnoreCache rebuilds every layer without reading or replacing cached entries
// (STRATA_IGNORE_CACHE=1).
func WithIgnoreCache() BuildOption { return func(c *buildConfig) { c.opts.IgnoreCache = true } }

// WithHome uses another store than Home().
func WithHome(dir string) BuildOption { return func(c *buildConfig) { c.home = dir } }

// WithProgress receives the build's progress events.
func WithProgress(f func(engine.Event)) BuildOption { return func(c *buildConfig) { c.progress = f } }

// WithResolveOptions passes options to the resolve step (WithDir, WithHashCache).
func WithResolveOptions(opts ...ResolveOption) BuildOption {
	return func(c *buildConfig) { c.resolve = append(c.resolve, opts...) }
}

// Built is an image in the local store.
type Built struct {
	// Name is the image's name in the store ("" if unnamed).
	Name string
	// Manifest is the digest of its OCI manifest.
	Manifest string
	// Plan is the resolved definition it was built from.
	Plan *Plan

	eng   *engine.Engine
	image *store.Image
}

// Ref is how to refer to the image: its name, or its manifest digest.
func (b *Built) Ref() string {
	if b.Name != "" {
		return b.Name
	}
	return b.Manifest
}

// Build resolves the image and builds it into the local store with the local engine, reusing
// every cached layer. It needs root, runc and overlayfs (and mmdebstrap for DebianSlim).
func (img Image) Build(ctx context.Context, opts ...BuildOption) (*Built, error) {
	c := buildConfig{home: Home()}
	for _, o := range opts {
		o(&c)
	}
	if os.Getenv("STRATA_FORCE_BUILD") == "1" {
		c.opts.ForceBuild = true
	}
	if os.Getenv("STRATA_IGNORE_CACHE") == "1" {
		c.opts.IgnoreCache = true
	}
	plan, err := img.Resolve(ctx, c.resolve...)
	if err != nil {
		return nil, err
	}
	return BuildPlan(ctx, plan, c.home, c.opts, c.progress)
}

// BuildPlan builds an already resolved plan.
func BuildPlan(ctx context.Context, plan *Plan, home string, o engine.BuildOptions, progress func(engine.Event)) (*Built, error) {
	eng, err := engine.Open(home)
	if err != nil {
		return nil, err
	}
	eng.Progress = progress
	o.Mounts = plan.Mounts
	si, err := eng.Build(ctx, plan.Layers, o)
	if err != nil {
		return nil, err
	}
	return &Built{Name: si.Name, Manifest: si.Manifest, Plan: plan, eng: eng, image: si}, nil
}

// RunOptions say how to run a process in an image; see engine.RunOptions.
type RunOptions = engine.RunOptions

// Run runs a process in a new container of the built image, with its runtime mounts.
func (b *Built) Run(ctx context.Context, o RunOptions) error {
	return b.eng.Run(ctx, b.image, o)
}

// Run builds the image (reusing the cache) and runs args in a container of it, with stdout and
// stderr going to the process's own unless o says otherwise.
func (img Image) Run(ctx context.Context, args []string, o RunOptions, opts ...BuildOption) error {
	b, err := img.Build(ctx, opts...)
	if err != nil {
		return err
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	o.Args = args
	return b.Run(ctx, o)
}

// Event is one step of a build's progress; see WithProgress.
type Event = engine.Event
