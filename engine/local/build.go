package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/engine/imageconfig"
	"github.com/strata-build/strata/sbom"
	"github.com/strata-build/strata/secrets"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// state is the image as built so far.
type state struct {
	layers  []store.LayerDesc
	config  v1.ConfigFile
	history []v1.History
	created time.Time
	// args are the ARG values of the Dockerfile stage named scope, which its next
	// instruction's layer continues.
	args  []string
	scope string
}

func (st *state) apply(l *spec.Layer, r *store.Record) {
	st.layers = append(st.layers, r.Layers...)
	st.config.Architecture, st.config.OS, st.config.Variant = r.Config.Architecture, r.Config.OS, r.Config.Variant
	st.config.Config, st.config.Author = r.Config.Config, r.Config.Author
	st.history = append(st.history, r.History...)
	if r.Created.After(st.created) {
		st.created = r.Created
	}
	st.args, st.scope = r.Args, l.Scope
}

// inheritedArgs are the ARG values a layer starts with: its stage's so far, or none.
func (st *state) inheritedArgs(l *spec.Layer) []string {
	if l.Scope != "" && l.Scope == st.scope {
		return st.args
	}
	return nil
}

// build is one Build call: its options, progress, registry cache, and the stages its
// layers read from.
type build struct {
	e      *Engine
	o      engine.BuildOptions
	cache  *remoteCache
	stages map[string]*stageBuild
	index  map[string]int // the progress number of each layer

	// layers holds the layers this build has made or is making, by key: two stages that
	// share layers (a stage FROM another) make each of them once.
	mu     sync.Mutex
	layers map[string]*layerCall
}

// layerCall is one layer of the build, made once; done closes when rec or err is set.
type layerCall struct {
	done chan struct{}
	rec  *store.Record
	err  error
}

// stageBuild is a stage of the plan being built; done closes when st or err is set.
type stageBuild struct {
	done chan struct{}
	st   *state
	err  error
}

// stage waits for a stage of the plan and returns its state.
func (b *build) stage(ctx context.Context, name string) (*state, error) {
	sb, ok := b.stages[name]
	if !ok {
		return nil, fmt.Errorf("stage %s is not in the plan", name)
	}
	select {
	case <-sb.done:
		return sb.st, sb.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *build) emit(ev engine.Event) {
	if b.o.Progress != nil {
		ev.Time = time.Now()
		b.o.Progress(ev)
	}
}

// Build builds the plan's layers and names the image. Cached layers are skipped entirely.
func (e *Engine) Build(ctx context.Context, p engine.Plan, o engine.BuildOptions) (*engine.Image, error) {
	if len(p.Layers) == 0 {
		return nil, errors.New("nothing to build: the plan has no layers")
	}
	use, err := e.store.Use()
	if err != nil {
		return nil, err
	}
	defer use.Unlock()
	if err := e.checkGPUs(p, o); err != nil {
		return nil, err
	}
	cache, err := e.openCache(ctx, p, o)
	if err != nil {
		return nil, err
	}
	b := &build{e: e, o: o, cache: cache, stages: map[string]*stageBuild{}, index: map[string]int{}}
	// Progress numbers each layer once, however many stages share it.
	number := func(layers []*spec.Layer) {
		for _, l := range layers {
			if _, ok := b.index[l.Key]; !ok {
				b.index[l.Key] = len(b.index)
			}
		}
	}
	for _, s := range p.Stages {
		number(s.Layers)
	}
	number(p.Layers)
	// The stages the layers read from build first, the independent ones at once; a layer
	// that needs one waits for it.
	// The first chain to fail stops the others; its error is the one to report, not those
	// of the steps it canceled.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var first error
	var once sync.Once
	fail := func(err error) {
		once.Do(func() { first = err })
		cancel()
	}
	for _, s := range p.Stages {
		sb := &stageBuild{done: make(chan struct{})}
		b.stages[s.Name] = sb
		go func(s spec.Stage) {
			defer close(sb.done)
			sb.st, sb.err = b.chain(ctx, s.Layers)
			if sb.err != nil {
				fail(sb.err)
			}
		}(s)
	}
	st, err := b.chain(ctx, p.Layers)
	if err != nil {
		fail(err)
	}
	for _, sb := range b.stages {
		<-sb.done
	}
	if err = first; err != nil {
		cache.wait()
		return nil, e.explainFull(err, false)
	}
	si, err := e.commitImage(st, p, o.Name)
	if err != nil {
		cache.wait()
		return nil, e.explainFull(err, false)
	}
	if err := cache.wait(); err != nil {
		return nil, fmt.Errorf("the image %s was built, but: %w", si.Manifest, err)
	}
	return e.describe(si)
}

// checkGPUs fails the build before anything runs when a layer it will build asks for GPUs
// the machine does not have.
func (e *Engine) checkGPUs(p engine.Plan, o engine.BuildOptions) error {
	layers := append([]*spec.Layer(nil), p.Layers...)
	for _, s := range p.Stages {
		layers = append(layers, s.Layers...)
	}
	for _, l := range layers {
		if l.GPU == nil {
			continue
		}
		if !o.ForceBuild && !o.IgnoreCache && !l.ForceBuild {
			if _, err := e.store.Record(l.Key); err == nil {
				continue // cached: needs no GPU
			}
		}
		if _, err := e.gpuDevices(l.GPU); err != nil {
			return fmt.Errorf("layer %s (%s): %w", l.Key, l.Method, err)
		}
	}
	return nil
}

// chain builds a chain of layers.
func (b *build) chain(ctx context.Context, layers []*spec.Layer) (*state, error) {
	st := &state{config: b.e.emptyConfig()}
	for _, l := range layers {
		ev := engine.Event{Index: b.index[l.Key], Total: len(b.index), Method: l.Method, Title: l.Title, Key: l.Key}
		rec, err := b.layer(ctx, st, l, ev)
		if err != nil {
			return nil, err
		}
		st.apply(l, rec)
	}
	return st, nil
}

func (e *Engine) emptyConfig() v1.ConfigFile {
	return v1.ConfigFile{Architecture: e.platform.Architecture, OS: e.platform.OS, Variant: e.platform.Variant}
}

// layer returns the cache entry of one layer, building it on a miss; a layer that another
// chain of the build is already making is waited for, not made again.
func (b *build) layer(ctx context.Context, st *state, l *spec.Layer, ev engine.Event) (*store.Record, error) {
	b.mu.Lock()
	if c, ok := b.layers[l.Key]; ok {
		b.mu.Unlock()
		select {
		case <-c.done:
			return c.rec, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &layerCall{done: make(chan struct{})}
	if b.layers == nil {
		b.layers = map[string]*layerCall{}
	}
	b.layers[l.Key] = c
	b.mu.Unlock()
	defer close(c.done)
	c.rec, c.err = b.makeLayer(ctx, st, l, ev)
	if c.err == nil {
		b.cache.store(ctx, c.rec) // once per layer, by the chain that made it
	}
	return c.rec, c.err
}

// makeLayer returns the cache entry of one layer, building it on a miss.
func (b *build) makeLayer(ctx context.Context, st *state, l *spec.Layer, ev engine.Event) (*store.Record, error) {
	s := b.e.store
	force := b.o.ForceBuild || l.ForceBuild
	cached := func() *store.Record {
		if force || b.o.IgnoreCache {
			return nil
		}
		rec, err := s.Record(l.Key)
		if err != nil {
			return nil
		}
		ev.Status, ev.Size = engine.StatusCached, size(rec)
		b.emit(ev)
		return rec
	}
	if rec := cached(); rec != nil {
		return rec, nil
	}
	lock, err := s.LockKey(l.Key)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	// Another build may have made it while we waited.
	if rec := cached(); rec != nil {
		return rec, nil
	}
	if !force && !b.o.IgnoreCache {
		rec, ok, err := b.cache.fetch(ctx, l.Key, st.layers)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := s.PutRecord(rec); err != nil {
				return nil, err
			}
			ev.Status, ev.Size = engine.StatusFetched, size(rec)
			b.emit(ev)
			return rec, nil
		}
	}
	ev.Status = engine.StatusBuilding
	b.emit(ev)
	start := time.Now()
	rec, fresh, err := b.buildLayer(ctx, st, l, ev)
	if err != nil {
		var be *engine.BuildError
		if !errors.As(err, &be) {
			be = &engine.BuildError{Err: err}
		}
		be.Index, be.Method, be.Key = ev.Index, l.Method, l.Key
		if be.Log == "" {
			be.Log = s.LogPath(l.Key)
		}
		ev.Status, ev.Seconds = engine.StatusFailed, time.Since(start).Seconds()
		b.emit(ev)
		return nil, be
	}
	rec.Seconds = time.Since(start).Seconds()
	if !b.o.IgnoreCache {
		if err := s.PutRecord(rec); err != nil {
			// Without its record the snapshot is no layer's (a full disk, most likely):
			// it goes, with the space it takes.
			if fresh != "" {
				_ = s.DeleteSnapshot(fresh)
			}
			return nil, fmt.Errorf("layer %d (%s): writing its cache entry: %w", ev.Index, l.Method, err)
		}
	}
	ev.Status, ev.Size, ev.Seconds = engine.StatusDone, size(rec), rec.Seconds
	b.emit(ev)
	return rec, nil
}

func size(r *store.Record) int64 {
	var n int64
	for _, l := range r.Layers {
		n += l.Size
	}
	return n
}

// buildLayer builds one layer on top of st.
func (b *build) buildLayer(ctx context.Context, st *state, l *spec.Layer, ev engine.Event) (_ *store.Record, fresh string, _ error) {
	e := b.e
	logf, err := os.Create(e.store.LogPath(l.Key))
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	env, err := e.secretEnv(l.Secrets)
	if err != nil {
		return nil, "", err
	}
	var values []string
	for _, kv := range env {
		_, v, _ := strings.Cut(kv, "=")
		values = append(values, v)
	}
	for _, v := range b.o.Secrets {
		values = append(values, string(v))
	}
	log := secrets.NewRedactor(io.MultiWriter(logf, secrets.LineWriter(func(line string) {
		ev := ev
		ev.Status, ev.Line = engine.StatusLog, line
		b.emit(ev)
	})), values)
	defer log.Flush()

	rec := &store.Record{Key: l.Key, Method: l.Method, Created: clamp(time.Now().UTC().Truncate(time.Second), l.SourceDateEpoch)}
	// Start from the parent's state; a root layer starts from its base.
	cur := &state{config: st.config, layers: append([]store.LayerDesc(nil), st.layers...)}
	args := st.inheritedArgs(l)
	var triggers []spec.Instruction
	// A Dockerfile stage FROM another stage runs that stage's ONBUILD triggers first.
	if l.Base == nil && l.Scope != "" && st.scope != "" && l.Scope != st.scope && len(cur.config.Config.OnBuild) > 0 {
		cur.config.Config = imageconfig.Copy(cur.config.Config)
		if triggers, err = spec.ParseTriggers(cur.config.Config.OnBuild); err != nil {
			return nil, "", err
		}
		cur.config.Config.OnBuild = nil
		fmt.Fprintf(log, "running %d ONBUILD trigger(s) of the stage it is FROM\n", len(triggers))
	}
	if l.Base != nil {
		base, err := e.base(ctx, l, log)
		if err != nil {
			return nil, "", err
		}
		cur, args = base, nil
		rec.Layers = append(rec.Layers, base.layers...)
		rec.History = append(rec.History, base.history...)
		// As in Docker, a base's ONBUILD triggers run right after FROM, and are spent.
		if t := base.config.Config.OnBuild; len(t) > 0 {
			if triggers, err = spec.ParseTriggers(t); err != nil {
				return nil, "", err
			}
			cur.config.Config.OnBuild = nil
			fmt.Fprintf(log, "running %d ONBUILD trigger(s) of the base image\n", len(triggers))
		}
	}
	x := newExecutor(b, cur, l, log, env, args)
	x.triggers = triggers
	desc, err := x.run(ctx)
	if err != nil {
		log.Flush()
		var be *engine.BuildError
		if errors.As(err, &be) {
			be.Tail = tail(e.store.LogPath(l.Key), 10)
		}
		return nil, "", err
	}
	if desc != nil {
		rec.Layers = append(rec.Layers, *desc)
	}
	if rec.Packages, err = e.scanPackages(st.layers, rec.Layers); err != nil {
		fmt.Fprintf(log, "strata: the packages of this layer could not be listed: %v\n", err)
	}
	rec.Config = cur.config
	rec.Config.Config, rec.Config.Author = x.cfg.Config, x.cfg.Author
	rec.Args = x.cfg.Args
	for i := range rec.History {
		rec.History[i].Created.Time = clamp(rec.History[i].Created.Time, l.SourceDateEpoch)
	}
	rec.History = append(rec.History, v1.History{
		Created:    v1.Time{Time: rec.Created},
		CreatedBy:  "strata " + l.Method + ": " + summary(l),
		Comment:    l.Key,
		EmptyLayer: desc == nil,
	})
	return rec, x.fresh, nil
}

// clamp limits t to the layer's SOURCE_DATE_EPOCH, if it has one.
func clamp(t time.Time, epoch *int64) time.Time {
	if epoch != nil {
		if e := time.Unix(*epoch, 0).UTC(); t.After(e) {
			return e
		}
	}
	return t
}

func summary(l *spec.Layer) string {
	var parts []string
	for _, in := range l.Instructions {
		parts = append(parts, in.String())
	}
	s := strings.Join(parts, "; ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

// tail returns the last n lines of a file.
func tail(path string, n int) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// snapshots returns the short paths of the layers' extracted folders, top first, extracting
// any that are missing (after a prune) from their blobs.
func (e *Engine) snapshots(layers []store.LayerDesc) ([]string, error) {
	out := make([]string, len(layers))
	for i, l := range layers {
		if err := e.ensureSnapshot(layers[:i], l); err != nil {
			return nil, err
		}
		p, err := e.store.SnapshotLink(l.DiffID)
		if err != nil {
			return nil, err
		}
		out[len(layers)-1-i] = p
	}
	// A layer may come twice in an image (an empty one, which BuildKit and Docker make
	// for a step that changed nothing), and overlayfs refuses a folder twice in lowerdir
	// (ELOOP). Keeping the topmost of equal layers changes nothing: what the lower one
	// adds or deletes, the upper one adds or deletes again.
	seen := map[string]bool{}
	kept := out[:0]
	for _, p := range out {
		if !seen[p] {
			seen[p] = true
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// scanPackages lists the packages that the layers added (on top of below) installed,
// changed or removed.
func (e *Engine) scanPackages(below, added []store.LayerDesc) (*sbom.Changes, error) {
	if len(added) == 0 {
		return &sbom.Changes{}, nil
	}
	all := append(append([]store.LayerDesc(nil), below...), added...)
	if _, err := e.snapshots(all); err != nil {
		return nil, err
	}
	var status []byte
	for i := len(below) - 1; i >= 0; i-- {
		if b, err := os.ReadFile(filepath.Join(e.store.SnapshotPath(below[i].DiffID), sbom.DpkgStatus)); err == nil {
			status = b
			break
		}
	}
	var changes []sbom.Changes
	for _, l := range added {
		dir := e.store.SnapshotPath(l.DiffID)
		c, err := sbom.ScanLayer(dir, status)
		if err != nil {
			return nil, err
		}
		changes = append(changes, c)
		if b, err := os.ReadFile(filepath.Join(dir, sbom.DpkgStatus)); err == nil {
			status = b
		}
	}
	c := changes[0]
	if len(changes) > 1 {
		// A base of several layers: what they leave installed.
		c = sbom.Changes{Added: sbom.Fold(changes)}
	}
	return &c, nil
}
