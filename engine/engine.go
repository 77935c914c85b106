// Package engine is strata's local build engine: it builds resolved layers into OCI images
// in the local store, with no daemon. Each layer runs on an overlayfs snapshot of its parent
// chain inside runc; the upper folder becomes the layer.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/secrets"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// Engine builds images into a store.
type Engine struct {
	Store   *store.Store
	Secrets *secrets.Store
	// Runtime is the OCI runtime binary (default "runc").
	Runtime string
	// Mirror is the Debian mirror debian_slim bootstraps from.
	Mirror string
	// Progress receives build events; nil discards them.
	Progress func(Event)
}

// Open opens the engine on the store at home, taking its settings from the environment:
// STRATA_DEBIAN_MIRROR and STRATA_RUNTIME.
func Open(home string) (*Engine, error) {
	s, err := store.Open(home)
	if err != nil {
		return nil, err
	}
	mirror := os.Getenv("STRATA_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	return &Engine{
		Store:   s,
		Secrets: secrets.Open(filepath.Join(home, "secrets")),
		Runtime: os.Getenv("STRATA_RUNTIME"),
		Mirror:  mirror,
	}, nil
}

// Status is the state of a layer in a build.
type Status string

// The statuses a layer goes through.
const (
	StatusCached   Status = "cached"
	StatusBuilding Status = "building"
	StatusDone     Status = "done"
	StatusFailed   Status = "failed"
	StatusLog      Status = "log"
)

// Event is one step of a build's progress.
type Event struct {
	Time   time.Time `json:"time"`
	Index  int       `json:"layer"`
	Total  int       `json:"total"`
	Method string    `json:"method"`
	Key    string    `json:"key"`
	Status Status    `json:"status"`
	// Size is the compressed size of the layer's blobs (done, cached).
	Size int64 `json:"size,omitempty"`
	// Seconds is how long the layer took (done, failed).
	Seconds float64 `json:"seconds,omitempty"`
	// Line is a line of build output (log).
	Line string `json:"line,omitempty"`
}

func (e *Engine) emit(ev Event) {
	if e.Progress != nil {
		ev.Time = time.Now()
		e.Progress(ev)
	}
}

// BuildOptions change how a build uses the cache.
type BuildOptions struct {
	// Name tags the result in the store ("" leaves it unnamed).
	Name string
	// ForceBuild rebuilds every layer and replaces their cache entries.
	ForceBuild bool
	// IgnoreCache rebuilds every layer without reading or writing cache entries.
	IgnoreCache bool
	// Mounts are the image's runtime mounts, recorded with the image for strata run.
	Mounts []spec.Mount
}

// BuildError is a failed build step.
type BuildError struct {
	Index   int
	Method  string
	Key     string
	Command string
	// ExitCode is the failed command's exit code (0 if the step failed otherwise).
	ExitCode int
	// Tail is the last lines of the step's log.
	Tail []string
	// Log is the full log file.
	Log string
	Err error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "layer %d (%s) failed", e.Index, e.Method)
	if e.Command != "" {
		fmt.Fprintf(&b, ": %s", e.Command)
	}
	if e.ExitCode != 0 {
		fmt.Fprintf(&b, ": exit code %d", e.ExitCode)
	} else if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if len(e.Tail) > 0 {
		b.WriteString("\n  last lines of the log:\n")
		for _, l := range e.Tail {
			b.WriteString("    " + l + "\n")
		}
	}
	if e.Log != "" {
		fmt.Fprintf(&b, "  full log: %s", e.Log)
	}
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

// state is the image as built so far.
type state struct {
	layers  []store.LayerDesc
	config  v1.ConfigFile
	history []v1.History
	created time.Time
}

func (st *state) apply(r *store.Record) {
	st.layers = append(st.layers, r.Layers...)
	st.config.Architecture, st.config.OS = r.Config.Architecture, r.Config.OS
	st.config.Config = r.Config.Config
	st.history = append(st.history, r.History...)
	if r.Created.After(st.created) {
		st.created = r.Created
	}
}

// Build builds the layers (a resolved plan) and returns the image record. Cached layers are
// skipped entirely.
func (e *Engine) Build(ctx context.Context, layers []*spec.Layer, o BuildOptions) (*store.Image, error) {
	if len(layers) == 0 {
		return nil, errors.New("nothing to build: the plan has no layers")
	}
	use, err := e.Store.Use()
	if err != nil {
		return nil, err
	}
	defer use.Unlock()
	st := &state{config: v1.ConfigFile{Architecture: "amd64", OS: "linux"}}
	for i, l := range layers {
		ev := Event{Index: i, Total: len(layers), Method: l.Method, Key: l.Key}
		rec, err := e.layer(ctx, st, l, ev, o)
		if err != nil {
			return nil, err
		}
		st.apply(rec)
	}
	return e.commitImage(st, layers, o)
}

// layer returns the cache entry of one layer, building it on a miss.
func (e *Engine) layer(ctx context.Context, st *state, l *spec.Layer, ev Event, o BuildOptions) (*store.Record, error) {
	force := o.ForceBuild || l.ForceBuild
	if !force && !o.IgnoreCache {
		if rec, err := e.Store.Record(l.Key); err == nil {
			ev.Status, ev.Size = StatusCached, size(rec)
			e.emit(ev)
			return rec, nil
		}
	}
	lock, err := e.Store.LockKey(l.Key)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	// Another build may have made it while we waited.
	if !force && !o.IgnoreCache {
		if rec, err := e.Store.Record(l.Key); err == nil {
			ev.Status, ev.Size = StatusCached, size(rec)
			e.emit(ev)
			return rec, nil
		}
	}
	ev.Status = StatusBuilding
	e.emit(ev)
	start := time.Now()
	rec, err := e.buildLayer(ctx, st, l, ev)
	if err != nil {
		var be *BuildError
		if !errors.As(err, &be) {
			be = &BuildError{Err: err}
		}
		be.Index, be.Method, be.Key = ev.Index, l.Method, l.Key
		if be.Log == "" {
			be.Log = e.Store.LogPath(l.Key)
		}
		ev.Status, ev.Seconds = StatusFailed, time.Since(start).Seconds()
		e.emit(ev)
		return nil, be
	}
	rec.Seconds = time.Since(start).Seconds()
	if !o.IgnoreCache {
		if err := e.Store.PutRecord(rec); err != nil {
			return nil, err
		}
	}
	ev.Status, ev.Size, ev.Seconds = StatusDone, size(rec), rec.Seconds
	e.emit(ev)
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
func (e *Engine) buildLayer(ctx context.Context, st *state, l *spec.Layer, ev Event) (*store.Record, error) {
	logf, err := os.Create(e.Store.LogPath(l.Key))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	env, err := e.secretEnv(l.Secrets)
	if err != nil {
		return nil, err
	}
	var values []string
	for _, kv := range env {
		_, v, _ := strings.Cut(kv, "=")
		values = append(values, v)
	}
	log := newRedactor(io.MultiWriter(logf, lineWriter(func(line string) {
		ev := ev
		ev.Status, ev.Line = StatusLog, line
		e.emit(ev)
	})), values)
	defer log.Flush()

	rec := &store.Record{Key: l.Key, Method: l.Method, Created: time.Now().UTC().Truncate(time.Second)}
	// Start from the parent's state; a root layer starts from its base.
	cur := &state{config: st.config, layers: append([]store.LayerDesc(nil), st.layers...)}
	cur.config.Config = copyConfig(st.config.Config)
	if l.Base != nil {
		base, err := e.base(ctx, l, log)
		if err != nil {
			return nil, err
		}
		cur = base
		rec.Layers = append(rec.Layers, base.layers...)
		rec.History = append(rec.History, base.history...)
	}
	x := &executor{e: e, st: cur, layer: l, log: log, secretEnv: env, key: l.Key}
	desc, err := x.run(ctx)
	if err != nil {
		log.Flush()
		var be *BuildError
		if errors.As(err, &be) {
			be.Tail = tail(e.Store.LogPath(l.Key), 10)
		}
		return nil, err
	}
	if desc != nil {
		rec.Layers = append(rec.Layers, *desc)
	}
	rec.Config = cur.config
	rec.History = append(rec.History, v1.History{
		Created:    v1.Time{Time: rec.Created},
		CreatedBy:  "strata " + l.Method + ": " + summary(l),
		Comment:    l.Key,
		EmptyLayer: desc == nil,
	})
	return rec, nil
}

func (e *Engine) secretEnv(names []string) ([]string, error) {
	var env []string
	for _, n := range names {
		vals, err := e.Secrets.Get(n)
		if err != nil {
			return nil, err
		}
		for k, v := range vals {
			env = append(env, k+"="+v)
		}
	}
	return env, nil
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

func copyConfig(c v1.Config) v1.Config {
	c.Env = append([]string(nil), c.Env...)
	c.Cmd = append([]string(nil), c.Cmd...)
	c.Entrypoint = append([]string(nil), c.Entrypoint...)
	c.Shell = append([]string(nil), c.Shell...)
	c.Labels = copyMap(c.Labels)
	if c.ExposedPorts != nil {
		p := map[string]struct{}{}
		for k := range c.ExposedPorts {
			p[k] = struct{}{}
		}
		c.ExposedPorts = p
	}
	if c.Volumes != nil {
		v := map[string]struct{}{}
		for k := range c.Volumes {
			v[k] = struct{}{}
		}
		c.Volumes = v
	}
	return c
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
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

// snapshots returns the extracted folders of the layers, top first, extracting any that
// are missing (after a prune) from their blobs.
func (e *Engine) snapshots(layers []store.LayerDesc) ([]string, error) {
	out := make([]string, len(layers))
	for i, l := range layers {
		if err := e.ensureSnapshot(layers[:i], l); err != nil {
			return nil, err
		}
		out[len(layers)-1-i] = e.Store.SnapshotPath(l.DiffID)
	}
	return out, nil
}
