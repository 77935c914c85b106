package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// commitImage writes the config and manifest of a built state and names the image.
func (e *Engine) commitImage(st *state, layers []*spec.Layer, o BuildOptions) (*store.Image, error) {
	cfg := st.config
	cfg.Created = v1.Time{Time: st.created}
	cfg.History = st.history
	cfg.RootFS = v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Layers: []v1.Descriptor{}}
	var total int64
	for _, l := range st.layers {
		diffID, err := v1.NewHash(l.DiffID)
		if err != nil {
			return nil, err
		}
		digest, err := v1.NewHash(l.Digest)
		if err != nil {
			return nil, err
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.MediaType(l.MediaType), Size: l.Size, Digest: digest})
		total += l.Size
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cd, err := e.Store.PutBlob(cb)
	if err != nil {
		return nil, err
	}
	ch, _ := v1.NewHash(cd)
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cb)), Digest: ch}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	md, err := e.Store.PutBlob(mb)
	if err != nil {
		return nil, err
	}
	img := &store.Image{Name: o.Name, Manifest: md, Config: cd, Size: total + int64(len(cb)), Created: time.Now().UTC()}
	for _, l := range layers {
		img.Keys = append(img.Keys, l.Key)
		img.Methods = append(img.Methods, l.Method)
	}
	for _, m := range o.Mounts {
		sm := store.Mount{Method: m.Method, Target: m.Target, Sources: m.Sources}
		for _, f := range m.Files {
			sm.Files = append(sm.Files, store.MountFile{Path: f.Path, Source: f.Source, Mode: f.Mode, Link: f.Link})
		}
		img.Mounts = append(img.Mounts, sm)
	}
	if o.Name != "" {
		// A rebuild that changed nothing keeps the record (and its time) as it is.
		if old, err := e.Store.Image(o.Name); err == nil && sameImage(old, img) {
			return old, nil
		}
		if err := e.Store.PutImage(img); err != nil {
			return nil, err
		}
	}
	return img, nil
}

func sameImage(a, b *store.Image) bool {
	ac, bc := *a, *b
	ac.Created, bc.Created = time.Time{}, time.Time{}
	ja, _ := json.Marshal(ac)
	jb, _ := json.Marshal(bc)
	return bytes.Equal(ja, jb)
}

// manifest returns an image's layers as recorded in its manifest and config.
func (e *Engine) manifest(img *store.Image) ([]store.LayerDesc, error) {
	var m v1.Manifest
	b, err := e.Store.ReadBlob(img.Manifest)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var cfg v1.ConfigFile
	if b, err = e.Store.ReadBlob(m.Config.Digest.String()); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: config and manifest disagree on the layers", img.Name)
	}
	out := make([]store.LayerDesc, len(m.Layers))
	for i, l := range m.Layers {
		out[i] = store.LayerDesc{Digest: l.Digest.String(), DiffID: cfg.RootFS.DiffIDs[i].String(), Size: l.Size, MediaType: string(l.MediaType)}
	}
	return out, nil
}

// Config returns an image's config file.
func (e *Engine) Config(img *store.Image) (*v1.ConfigFile, error) {
	b, err := e.Store.ReadBlob(img.Config)
	if err != nil {
		return nil, err
	}
	var cfg v1.ConfigFile
	return &cfg, json.Unmarshal(b, &cfg)
}

// Image returns a stored image as a go-containerregistry image, for export and push.
func (e *Engine) Image(img *store.Image) (v1.Image, error) {
	return partial.CompressedToImage(&storeImage{s: e.Store, manifest: img.Manifest})
}

// storeImage reads an image straight from the store's blobs.
type storeImage struct {
	s        *store.Store
	manifest string
}

func (i *storeImage) RawConfigFile() ([]byte, error) {
	m, err := i.Manifest()
	if err != nil {
		return nil, err
	}
	return i.s.ReadBlob(m.Config.Digest.String())
}

func (i *storeImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func (i *storeImage) RawManifest() ([]byte, error) { return i.s.ReadBlob(i.manifest) }

func (i *storeImage) Manifest() (*v1.Manifest, error) {
	b, err := i.RawManifest()
	if err != nil {
		return nil, err
	}
	return v1.ParseManifest(bytes.NewReader(b))
}

func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := i.Manifest()
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Digest == h {
			return &storeLayer{s: i.s, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("layer %s is not in the image", h)
}

type storeLayer struct {
	s    *store.Store
	desc v1.Descriptor
}

func (l *storeLayer) Digest() (v1.Hash, error) { return l.desc.Digest, nil }
func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	return os.Open(l.s.BlobPath(l.desc.Digest.String()))
}
func (l *storeLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
