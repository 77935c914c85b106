package local

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/engine/imageconfig"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/store"
)

// Prune removes cache entries that no named image uses, then the blobs, snapshots and logs
// that nothing references any more, and what dead processes left. It waits for builds and
// runs under way to finish. With o.Caches it empties the package caches and the cache mounts.
func (e *Engine) Prune(ctx context.Context, o engine.PruneOptions) (*engine.PruneReport, error) {
	lock, err := e.store.Exclusive()
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	if err := e.store.Recover(); err != nil {
		return nil, err
	}
	rep := &engine.PruneReport{}
	images, err := e.store.Images()
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	blobs := map[string]bool{}
	diffs := map[string]bool{}
	// What detached containers run stays: their file systems stand on these snapshots.
	containers, err := e.Containers(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range containers {
		var m v1.Manifest
		if err := e.readJSONBlob(c.Manifest, &m); err == nil {
			images = append(images, &store.Image{Name: c.ID, Manifest: c.Manifest, Config: m.Config.Digest.String()})
		}
	}
	for _, img := range images {
		for _, k := range img.Keys {
			keys[k] = true
		}
		blobs[img.Manifest], blobs[img.Config] = true, true
		if img.Mounts != "" {
			blobs[img.Mounts] = true
		}
		layers, err := e.manifest(img.Manifest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w; remove it with strata rm before pruning", img.Name, err)
		}
		for _, l := range layers {
			blobs[l.Digest], diffs[l.DiffID] = true, true
		}
	}
	records, err := e.store.Records()
	if err != nil {
		return nil, err
	}
	for _, r := range records {
		if !keys[r.Key] {
			if err := e.store.DeleteRecord(r.Key); err != nil {
				return nil, err
			}
			os.Remove(e.store.LogPath(r.Key))
			rep.Records++
			continue
		}
		for _, l := range r.Layers {
			blobs[l.Digest], diffs[l.DiffID] = true, true
		}
	}
	// Recompressed variants of kept layers stay: they spare the next push the work.
	variants, err := e.store.Variants()
	if err != nil {
		return nil, err
	}
	for diffID, vs := range variants {
		if !diffs[diffID] {
			if err := e.store.DeleteVariants(diffID); err != nil {
				return nil, err
			}
			continue
		}
		for _, v := range vs {
			blobs[v.Digest] = true
		}
	}
	entries, err := os.ReadDir(e.store.Path("blobs", "sha256"))
	if err != nil {
		return nil, err
	}
	for _, ent := range entries {
		d := "sha256:" + ent.Name()
		if blobs[d] {
			continue
		}
		if info, err := ent.Info(); err == nil {
			rep.Bytes += info.Size()
		}
		if err := e.store.DeleteBlob(d); err != nil {
			return nil, err
		}
		rep.Blobs++
	}
	snaps, err := e.store.Snapshots()
	if err != nil {
		return nil, err
	}
	for _, d := range snaps {
		if diffs[d] {
			continue
		}
		rep.Bytes += duBytes(e.store.SnapshotPath(d))
		if err := e.store.DeleteSnapshot(d); err != nil {
			return nil, err
		}
		rep.Snapshots++
	}
	if o.Caches {
		if err := e.pruneCaches(rep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// pruneCaches empties the package caches and the RUN --mount=type=cache folders. The store
// is locked for prune: no step is using them.
func (e *Engine) pruneCaches(rep *engine.PruneReport) error {
	dirs := map[string]string{"cache-mounts": e.store.Path("cachemounts")}
	for _, name := range imageconfig.PackageCacheNames() {
		dirs[name] = e.store.Path("caches", name)
	}
	for _, name := range slices.Sorted(maps.Keys(dirs)) {
		n := duBytes(dirs[name])
		if err := store.RemoveAll(dirs[name]); err != nil {
			return fmt.Errorf("emptying the %s cache: %w", name, err)
		}
		rep.Caches = append(rep.Caches, engine.CacheUsage{Name: name, Bytes: n})
		rep.Bytes += n
	}
	return nil
}

// addPackages lists the packages of a record that has none and keeps them in it.
func (e *Engine) addPackages(r *store.Record, below []store.LayerDesc) {
	use, err := e.store.Use()
	if err != nil {
		return
	}
	defer use.Unlock()
	if r.Packages, err = e.scanPackages(below, r.Layers); err == nil {
		_ = e.store.PutRecord(r)
	}
}

func duBytes(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// Export writes an image as an OCI image layout folder ("oci") or a docker-archive tarball
// that docker load and podman load read ("docker").
func (e *Engine) Export(ctx context.Context, img *engine.Image, o engine.ExportOptions) (err error) {
	if o.Format != "oci" && o.Format != "docker" {
		return fmt.Errorf("unknown export format %q: use oci or docker", o.Format)
	}
	if _, err := os.Stat(o.Path); err == nil {
		return fmt.Errorf("%s exists: export to a new path", o.Path)
	}
	if abs, aerr := filepath.Abs(o.Path); aerr == nil {
		o.Path = abs
	}
	// A failed export leaves no half-written layout or archive.
	defer func() {
		if err != nil {
			os.RemoveAll(o.Path)
			err = e.explainOutputFull(err, o.Path)
		}
	}()
	use, err := e.store.Use() // it may write the layers' compressed blobs
	if err != nil {
		return err
	}
	defer use.Unlock()
	po := engine.PushOptions{Compression: o.Compression}
	if o.Format == "docker" {
		po.MediaTypes = "docker"
	}
	// The layers as a push sends them: compressed once, on first use, and kept.
	pi, err := e.pushImage(ctx, img.Manifest, po)
	if err != nil {
		return err
	}
	vimg, err := partial.CompressedToImage(pi)
	if err != nil {
		return err
	}
	if o.IncludeMounts && len(img.Mounts) > 0 {
		w, err := e.store.NewWorkDir("export-")
		if err != nil {
			return err
		}
		defer w.Remove()
		if vimg, err = appendMounts(vimg, img.Mounts, w.Path); err != nil {
			return err
		}
	}
	tag := img.Name
	if tag == "" {
		tag = "strata/image"
	}
	if !strings.Contains(tag[strings.LastIndex(tag, "/")+1:], ":") {
		tag += ":latest"
	}
	if o.Format == "oci" {
		p, err := layout.Write(o.Path, empty.Index)
		if err == nil {
			err = p.AppendImage(vimg, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
		}
		if err != nil {
			return err
		}
	} else {
		ref, err := name.NewTag(tag)
		if err != nil {
			return fmt.Errorf("image name %q is not a valid tag for a docker archive: %w", tag, err)
		}
		if err := tarball.WriteToFile(o.Path, ref, vimg); err != nil {
			return err
		}
	}
	e.usedCompression(img, o.Compression)
	return nil
}

// appendMounts adds an image's runtime-mounted files, listed and read now, as a last layer.
func appendMounts(img v1.Image, mounts []engine.Mount, work string) (v1.Image, error) {
	staged := filepath.Join(work, "mounts")
	if err := stageMounts(staged, mounts); err != nil {
		return nil, err
	}
	blob := filepath.Join(work, "mounts.tar.gz")
	f, err := os.Create(blob)
	if err != nil {
		return nil, err
	}
	_, err = layer.Gzip(f, func(w io.Writer) error { return layer.WriteTar(staged, w, layer.Options{}) })
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromFile(blob, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	var targets []string
	for _, m := range mounts {
		targets = append(targets, m.Target)
	}
	return mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "strata export --include-mounts: " + strings.Join(targets, " ")}})
}

// lastCompression is the compression the named image's last push or export asked for.
func (e *Engine) lastCompression(img *engine.Image) string {
	if si, err := e.store.Image(img.Name); err == nil && img.Name != "" && si.Manifest == img.Manifest {
		return si.Compression
	}
	return ""
}

// usedCompression remembers the compression a push or export of the named image asked for.
func (e *Engine) usedCompression(img *engine.Image, comp string) {
	if comp == "" || img.Name == "" {
		return
	}
	lock, err := e.lockName(img.Name)
	if err != nil {
		return
	}
	defer lock.Unlock()
	if si, err := e.store.Image(img.Name); err == nil && si.Manifest == img.Manifest && si.Compression != comp {
		si.Compression = comp
		_ = e.store.PutImage(si)
	}
}

// Inspect describes an image.
func (e *Engine) Inspect(ctx context.Context, img *engine.Image) (*engine.Inspect, error) {
	use, err := e.store.Use() // it may write the layers' compressed blobs
	if err != nil {
		return nil, err
	}
	defer use.Unlock()
	cfg, err := e.config(img.Manifest)
	if err != nil {
		return nil, err
	}
	// The blobs and manifest are the image's as it is pushed and exported in the compression
	// last asked for, or gzip: made now if no push or export has made them yet.
	stored, err := e.manifest(img.Manifest)
	if err != nil {
		return nil, err
	}
	pi, err := e.pushImage(ctx, img.Manifest, engine.PushOptions{Compression: e.lastCompression(img)})
	if err != nil {
		return nil, err
	}
	manifest, err := pi.digest()
	if err != nil {
		return nil, err
	}
	blob := map[string]engine.Blob{}
	for i, l := range pi.layers {
		blob[stored[i].DiffID] = engine.Blob{Digest: l.Digest, DiffID: l.DiffID, Size: l.Size, MediaType: l.MediaType}
	}
	id, err := e.configDigest(img.Manifest)
	if err != nil {
		return nil, err
	}
	out := &engine.Inspect{Name: img.Name, ID: id, Manifest: manifest, Config: cfg, Mounts: img.Mounts}
	var below []store.LayerDesc
	if img.Engine != "" {
		// Built by another engine, whose layers do not follow the plan's: each layer of the
		// manifest, with the packages it changed, listed from its snapshot.
		for _, l := range stored {
			il := engine.LayerInfo{Method: img.Engine, Blobs: []engine.Blob{blob[l.DiffID]}}
			if il.Packages, err = e.scanPackages(below, []store.LayerDesc{l}); err != nil {
				return nil, fmt.Errorf("layer %s: its packages: %w", l.Digest, err)
			}
			below = append(below, l)
			out.Layers = append(out.Layers, il)
		}
		return out, nil
	}
	for i, k := range img.Keys {
		il := engine.LayerInfo{Key: k, Method: img.Methods[i]}
		if r, err := e.store.Record(k); err == nil {
			for _, l := range r.Layers {
				il.Blobs = append(il.Blobs, blob[l.DiffID])
			}
			if r.Packages == nil {
				// Made before strata listed packages: list them now, once.
				e.addPackages(r, below)
			}
			il.Packages = r.Packages
			below = append(below, r.Layers...)
		}
		out.Layers = append(out.Layers, il)
	}
	return out, nil
}
