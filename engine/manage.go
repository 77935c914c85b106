package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/strata-build/strata/store"
)

// PruneReport says what prune removed.
type PruneReport struct {
	Records   int
	Blobs     int
	Snapshots int
	Bytes     int64
}

// Prune removes cache entries that no named image uses, then the blobs, snapshots and logs
// that nothing references any more. It waits for builds and runs under way to finish.
func (e *Engine) Prune() (*PruneReport, error) {
	lock, err := e.Store.Exclusive()
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	rep := &PruneReport{}
	images, err := e.Store.Images()
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	blobs := map[string]bool{}
	diffs := map[string]bool{}
	for _, img := range images {
		for _, k := range img.Keys {
			keys[k] = true
		}
		blobs[img.Manifest], blobs[img.Config] = true, true
		layers, err := e.manifest(img)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w; remove it with strata rm before pruning", img.Name, err)
		}
		for _, l := range layers {
			blobs[l.Digest], diffs[l.DiffID] = true, true
		}
	}
	records, err := e.Store.Records()
	if err != nil {
		return nil, err
	}
	for _, r := range records {
		if !keys[r.Key] {
			if err := e.Store.DeleteRecord(r.Key); err != nil {
				return nil, err
			}
			os.Remove(e.Store.LogPath(r.Key))
			rep.Records++
			continue
		}
		for _, l := range r.Layers {
			blobs[l.Digest], diffs[l.DiffID] = true, true
		}
	}
	entries, err := os.ReadDir(e.Store.Path("blobs", "sha256"))
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
		if err := os.Remove(e.Store.BlobPath(d)); err != nil {
			return nil, err
		}
		rep.Blobs++
	}
	snaps, err := os.ReadDir(e.Store.Path("snapshots"))
	if err != nil {
		return nil, err
	}
	for _, ent := range snaps {
		if diffs["sha256:"+ent.Name()] {
			continue
		}
		p := e.Store.Path("snapshots", ent.Name())
		rep.Bytes += duBytes(p)
		if err := store.RemoveAll(p); err != nil {
			return nil, err
		}
		rep.Snapshots++
	}
	return rep, nil
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
func (e *Engine) Export(img *store.Image, format, out string) error {
	vimg, err := e.Image(img)
	if err != nil {
		return err
	}
	tag := img.Name
	if tag == "" {
		tag = "strata/image"
	}
	if !strings.Contains(tag[strings.LastIndex(tag, "/")+1:], ":") {
		tag += ":latest"
	}
	switch format {
	case "oci":
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("%s exists: export into a new folder", out)
		}
		p, err := layout.Write(out, empty.Index)
		if err != nil {
			return err
		}
		return p.AppendImage(vimg, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
	case "docker":
		ref, err := name.NewTag(tag)
		if err != nil {
			return fmt.Errorf("image name %q is not a valid tag for a docker archive: %w", tag, err)
		}
		return tarball.WriteToFile(out, ref, vimg)
	}
	return fmt.Errorf("unknown export format %q: use oci or docker", format)
}

// Inspect is what strata inspect shows.
type Inspect struct {
	Name     string         `json:"name"`
	Manifest string         `json:"manifest"`
	Config   *v1.ConfigFile `json:"config"`
	Layers   []InspectLayer `json:"layers"`
	Mounts   []store.Mount  `json:"mounts,omitempty"`
}

// InspectLayer is one chain step of an image with its blobs.
type InspectLayer struct {
	Method string            `json:"method"`
	Key    string            `json:"key"`
	Blobs  []store.LayerDesc `json:"blobs"`
}

// Inspect describes an image.
func (e *Engine) Inspect(img *store.Image) (*Inspect, error) {
	cfg, err := e.Config(img)
	if err != nil {
		return nil, err
	}
	out := &Inspect{Name: img.Name, Manifest: img.Manifest, Config: cfg, Mounts: img.Mounts}
	for i, k := range img.Keys {
		il := InspectLayer{Key: k, Method: img.Methods[i]}
		if r, err := e.Store.Record(k); err == nil {
			il.Blobs = r.Layers
		}
		out.Layers = append(out.Layers, il)
	}
	return out, nil
}
