package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/store"
)

// Check verifies the store (see engine.Engine). It holds the store exclusively when it
// repairs, and shared otherwise, so that it never sees a build's half-made files: those are
// in tmp until they are renamed into place whole.
func (e *Engine) Check(ctx context.Context, o engine.CheckOptions) (*engine.CheckReport, error) {
	take := e.store.Use
	if o.Repair {
		take = e.store.Exclusive
	}
	lock, err := take()
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	c := &checker{e: e, o: o, rep: &engine.CheckReport{}, badBlobs: map[string]bool{}, badSnaps: map[string]bool{}}
	steps := []func(context.Context) error{c.blobs, c.records, c.variants, c.images}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(c.rep.Problems, func(i, j int) bool { return c.rep.Problems[i].Object < c.rep.Problems[j].Object })
	return c.rep, nil
}

type checker struct {
	e   *Engine
	o   engine.CheckOptions
	rep *engine.CheckReport
	mu  sync.Mutex
	// badBlobs are blobs whose bytes do not match their name; badSnaps are snapshots checked
	// against their layer's diff ID and found changed (true) or whole (false).
	badBlobs map[string]bool
	badSnaps map[string]bool
}

// problem records what is wrong with object and, when repairing, does the repair.
func (c *checker) problem(object, what, repair string, fix func() error) error {
	p := engine.Problem{Object: object, Err: what, Repair: repair}
	if c.o.Repair && fix != nil {
		if err := fix(); err != nil {
			return fmt.Errorf("repairing %s: %w", object, err)
		}
		p.Repaired = true
	}
	c.mu.Lock()
	c.rep.Problems = append(c.rep.Problems, p)
	c.mu.Unlock()
	return nil
}

// blobs hashes every blob, in parallel, against its name.
func (c *checker) blobs(ctx context.Context) error {
	entries, err := os.ReadDir(c.e.store.Path("blobs", "sha256"))
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, ent := range entries {
		d := "sha256:" + ent.Name()
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			got, err := fileDigest(c.e.store.BlobPath(d))
			if err != nil {
				return err
			}
			c.mu.Lock()
			c.rep.Blobs++
			c.mu.Unlock()
			if got == d {
				return nil
			}
			c.mu.Lock()
			c.badBlobs[d] = true
			c.mu.Unlock()
			return c.problem("blob "+d, "its bytes hash to "+got, "remove it: what needs it is built or pulled again", func() error { return c.e.store.DeleteBlob(d) })
		})
	}
	return g.Wait()
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// layerOK says whether the store holds a layer whole: its blob, checked by blobs, or, for a
// layer kept as its snapshot alone, a snapshot whose tar has the layer's diff ID.
func (c *checker) layerOK(ctx context.Context, l store.LayerDesc) (bool, string, error) {
	if c.e.store.HasBlob(l.Digest) {
		if c.badBlobs[l.Digest] {
			return false, "its blob " + l.Digest + " is corrupt", nil
		}
		return true, "", nil
	}
	if !l.SnapshotOnly() {
		return false, "its blob " + l.Digest + " is missing", nil
	}
	if !c.e.store.HasSnapshot(l.DiffID) {
		return false, "its snapshot " + l.DiffID + ", the layer's only copy, is missing", nil
	}
	bad, seen := c.badSnaps[l.DiffID]
	if !seen {
		r, err := c.e.openLayer(l)
		if err != nil {
			return false, "", err
		}
		_, err = io.Copy(io.Discard, r)
		r.Close()
		if err != nil && ctx.Err() != nil {
			return false, "", ctx.Err()
		}
		bad = err != nil
		c.badSnaps[l.DiffID] = bad
		c.rep.Snapshots++
		if bad {
			snap := l.DiffID
			if err := c.problem("snapshot "+snap, err.Error(), "remove it and the cache entries that name it: the layer is built again", func() error { return c.e.store.DeleteSnapshot(snap) }); err != nil {
				return false, "", err
			}
		}
	}
	if bad {
		return false, "its snapshot " + l.DiffID + " no longer holds it", nil
	}
	return true, "", nil
}

// records checks every cache entry: it must parse, and hold every layer it names.
func (c *checker) records(ctx context.Context) error {
	entries, err := os.ReadDir(c.e.store.Path("cache"))
	if err != nil {
		return err
	}
	for _, ent := range entries {
		name, ok := strings.CutSuffix(ent.Name(), ".json")
		if !ok {
			continue
		}
		key := "sha256:" + name
		c.rep.Records++
		remove := func() error { return c.e.store.DeleteRecord(key) }
		var r store.Record
		b, err := os.ReadFile(c.e.store.Path("cache", ent.Name()))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &r); err != nil || r.Key != key {
			if err == nil {
				err = fmt.Errorf("it is the entry of %s", r.Key)
			}
			if err := c.problem("cache entry "+key, "unreadable: "+err.Error(), "remove it: the layer is built again", remove); err != nil {
				return err
			}
			continue
		}
		for _, l := range r.Layers {
			ok, why, err := c.layerOK(ctx, l)
			if err != nil {
				return err
			}
			if !ok {
				if err := c.problem("cache entry "+key, fmt.Sprintf("layer %s (%s): %s", l.DiffID, r.Method, why), "remove it: the layer is built again", remove); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// variants checks that every recorded compressed variant's blob is there and whole.
func (c *checker) variants(ctx context.Context) error {
	all, err := c.e.store.Variants()
	if err != nil {
		return err
	}
	for diffID, vs := range all {
		for comp, v := range vs {
			if c.e.store.HasBlob(v.Digest) && !c.badBlobs[v.Digest] {
				continue
			}
			if err := c.problem(fmt.Sprintf("variant %s of %s", comp, diffID), "its blob "+v.Digest+" is missing or corrupt", "forget the layer's variants: the next export or push makes them again", func() error { return c.e.store.DeleteVariants(diffID) }); err != nil {
				return err
			}
			break
		}
	}
	return nil
}

// images checks every named image: its manifest and config, and every layer its manifest
// lists. A broken image is reported, not removed.
func (c *checker) images(ctx context.Context) error {
	entries, err := os.ReadDir(c.e.store.Path("images"))
	if err != nil {
		return err
	}
	for _, ent := range entries {
		if !strings.HasSuffix(ent.Name(), ".json") {
			continue
		}
		c.rep.Images++
		var img store.Image
		b, err := os.ReadFile(c.e.store.Path("images", ent.Name()))
		if err != nil {
			return err
		}
		object := "image file " + ent.Name()
		if json.Unmarshal(b, &img) == nil && img.Name != "" {
			object = "image " + img.Name
		} else {
			if err := c.problem(object, "unreadable", "none: remove the file, and build or pull the image again", nil); err != nil {
				return err
			}
			continue
		}
		why, err := c.imageProblem(ctx, img)
		if err != nil {
			return err
		}
		if why != "" {
			if err := c.problem(object, why, "none: build or pull it again (strata rm "+img.Name+" removes the name)", nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *checker) imageProblem(ctx context.Context, img store.Image) (string, error) {
	for _, d := range []string{img.Manifest, img.Config, img.Mounts} {
		if d != "" && (!c.e.store.HasBlob(d) || c.badBlobs[d]) {
			return "its blob " + d + " is missing or corrupt", nil
		}
	}
	var m v1.Manifest
	if err := c.e.readJSONBlob(img.Manifest, &m); err != nil || m.Config.Digest.String() != img.Config {
		return "its manifest " + img.Manifest + " is not the manifest of its config " + img.Config, nil
	}
	layers, err := c.e.manifest(img.Manifest)
	if err != nil {
		return err.Error(), nil
	}
	for _, l := range layers {
		ok, why, err := c.layerOK(ctx, l)
		if err != nil {
			return "", err
		}
		if !ok {
			return "layer " + l.DiffID + ": " + why, nil
		}
	}
	return "", nil
}
