package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// cacheRecordType is the config media type of a layer stored in a registry cache: the
// config blob is the layer's cache record (its image config, history and blobs), the
// layers are its blobs. Like BuildKit's registry cache, it is not an image to run.
const cacheRecordType = "application/vnd.strata.cache.record.v1+json"

// cacheLookups is how many registry lookups run at once.
const cacheLookups = 16

// cacheTag is the tag a layer is stored under in a cache repository.
func cacheTag(key string) string { return "sha256-" + strings.TrimPrefix(key, "sha256:") }

// remoteCache is a build's registry cache: where each layer was found, and the layers being
// stored.
type remoteCache struct {
	e     *Engine
	to    *name.Repository
	found map[string]name.Reference // cache key -> where it is

	wg   sync.WaitGroup
	sem  chan struct{}
	mu   sync.Mutex
	errs []error
}

// openCache looks up every layer of the plan in the cache repositories at once (one round
// trip's time for the whole chain): a miss does not stop the lookups of the layers after it,
// whose keys do not depend on it being found.
func (e *Engine) openCache(ctx context.Context, p engine.Plan, o engine.BuildOptions) (*remoteCache, error) {
	c := &remoteCache{e: e, found: map[string]name.Reference{}, sem: make(chan struct{}, pushJobs)}
	if o.CacheTo != "" {
		repo, err := e.reg.ParseRepository(o.CacheTo)
		if err != nil {
			return nil, fmt.Errorf("cache to: %w", err)
		}
		c.to = &repo
	}
	var repos []name.Repository
	for _, s := range o.CacheFrom {
		repo, err := e.reg.ParseRepository(s)
		if err != nil {
			return nil, fmt.Errorf("cache from: %w", err)
		}
		repos = append(repos, repo)
	}
	if len(repos) == 0 || o.IgnoreCache {
		return c, nil
	}
	type lookup struct {
		key string
		ref name.Reference
	}
	var todo []lookup
	for _, l := range p.Layers {
		for _, repo := range repos {
			todo = append(todo, lookup{l.Key, repo.Tag(cacheTag(l.Key))})
		}
	}
	hits := make([]bool, len(todo))
	sem := make(chan struct{}, cacheLookups)
	var wg sync.WaitGroup
	for i, lk := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, ref name.Reference) {
			defer wg.Done()
			defer func() { <-sem }()
			opts, err := e.reg.Options(ctx, ref.Context().Registry, nil)
			if err != nil {
				return
			}
			desc, err := remote.Head(ref, opts...)
			hits[i] = err == nil && desc.MediaType == types.OCIManifestSchema1
		}(i, lk.ref)
	}
	wg.Wait()
	for i, lk := range todo {
		if _, ok := c.found[lk.key]; hits[i] && !ok {
			c.found[lk.key] = lk.ref
		}
	}
	return c, nil
}

// fetch brings a layer found in a cache repository into the store: its blobs and snapshots,
// then its record. below are the layers under it, for hard links into them.
func (c *remoteCache) fetch(ctx context.Context, key string, below []store.LayerDesc) (*store.Record, bool, error) {
	ref, ok := c.found[key]
	if !ok {
		return nil, false, nil
	}
	opts, err := c.e.reg.Options(ctx, ref.Context().Registry, nil)
	if err != nil {
		return nil, false, err
	}
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return nil, false, registry.Explain(err, ref.String())
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, false, registry.Explain(err, ref.String())
	}
	var rec store.Record
	if err := json.Unmarshal(raw, &rec); err != nil || rec.Key != key {
		return nil, false, fmt.Errorf("cache %s does not hold the record of layer %s", ref, key)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, false, err
	}
	if len(m.Layers) != len(rec.Layers) {
		return nil, false, fmt.Errorf("cache %s: its manifest and record disagree on the layers", ref)
	}
	for i, l := range m.Layers {
		if l.Digest.String() != rec.Layers[i].Digest {
			return nil, false, fmt.Errorf("cache %s: its manifest and record disagree on layer %d", ref, i+1)
		}
	}
	err = c.e.fetchLayers(ctx, below, rec.Layers, func(d store.LayerDesc) (io.ReadCloser, error) {
		h, err := v1.NewHash(d.Digest)
		if err != nil {
			return nil, err
		}
		l, err := img.LayerByDigest(h)
		if err != nil {
			return nil, err
		}
		return l.Compressed()
	}, nil)
	if err != nil {
		return nil, false, fmt.Errorf("cache %s: %w", ref, registry.Explain(err, ref.String()))
	}
	return &rec, true, nil
}

// store sends a layer to the cache repository in the background; wait returns when all are
// there.
func (c *remoteCache) store(ctx context.Context, rec *store.Record) {
	if c.to == nil {
		return
	}
	if ref, ok := c.found[rec.Key]; ok && ref.Context().Name() == c.to.Name() {
		return // already there
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.sem <- struct{}{}
		defer func() { <-c.sem }()
		if err := c.push(ctx, rec); err != nil {
			c.mu.Lock()
			c.errs = append(c.errs, fmt.Errorf("layer %s: %w", rec.Key, err))
			c.mu.Unlock()
		}
	}()
}

func (c *remoteCache) push(ctx context.Context, rec *store.Record) error {
	// The cache holds the layers gzip-compressed, as a push would send them.
	layers, err := c.e.variants(ctx, rec.Layers, "gzip")
	if err != nil {
		return err
	}
	r := *rec
	r.Layers = layers
	rec = &r
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Layers: []v1.Descriptor{},
		Config: v1.Descriptor{MediaType: cacheRecordType, Size: int64(len(raw)), Digest: sha256Hash(raw)}}
	for _, l := range rec.Layers {
		h, err := v1.NewHash(l.Digest)
		if err != nil {
			return err
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.MediaType(l.MediaType), Size: l.Size, Digest: h, Annotations: l.Annotations})
	}
	rm, err := json.Marshal(m)
	if err != nil {
		return err
	}
	img, err := partial.CompressedToImage(&pushed{s: c.e.store, manifest: rm, config: raw, layers: rec.Layers, reads: map[string]bool{}})
	if err != nil {
		return err
	}
	ref := c.to.Tag(cacheTag(rec.Key))
	opts, err := c.e.reg.Options(ctx, ref.Context().Registry, nil)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return registry.Explain(err, ref.String())
	}
	for _, l := range rec.Layers {
		_ = c.e.store.AddSource(l.Digest, c.to.Name())
	}
	return nil
}

func (c *remoteCache) wait() error {
	c.wg.Wait()
	if len(c.errs) > 0 {
		return fmt.Errorf("storing layers in the cache %s: %w", c.to, errors.Join(c.errs...))
	}
	return nil
}
