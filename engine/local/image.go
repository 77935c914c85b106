package local

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/store"
)

// commitImage writes the config and manifest of a built state, with the plan's runtime
// mounts, and names the image.
func (e *Engine) commitImage(st *state, p engine.Plan, name string) (*store.Image, error) {
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
	cd, err := e.store.PutBlob(cb)
	if err != nil {
		return nil, err
	}
	ch, _ := v1.NewHash(cd)
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cb)), Digest: ch}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	md, err := e.store.PutBlob(mb)
	if err != nil {
		return nil, err
	}
	return e.recordImage(&store.Image{Manifest: md, Config: cd, Size: total + int64(len(cb))}, p, name)
}

// recordImage records an image of the plan p with the plan's keys, methods and runtime
// mounts, and names it.
func (e *Engine) recordImage(img *store.Image, p engine.Plan, name string) (*store.Image, error) {
	img.Name, img.Created = name, time.Now().UTC()
	for _, l := range p.Layers {
		img.Keys = append(img.Keys, l.Key)
		img.Methods = append(img.Methods, l.Method)
	}
	if len(p.Mounts) > 0 {
		b, err := json.Marshal(engine.MountsOf(p.Mounts))
		if err != nil {
			return nil, err
		}
		if img.Mounts, err = e.store.PutBlob(b); err != nil {
			return nil, err
		}
	}
	if name != "" {
		// A rebuild that changed nothing keeps the record (and its time) as it is, and a
		// cache hit takes no lock: only a write does, and looks again under it.
		if old, ok := e.unchanged(name, img); ok {
			return old, nil
		}
		lock, err := e.lockName(name)
		if err != nil {
			return nil, err
		}
		defer lock.Unlock()
		if old, ok := e.unchanged(name, img); ok {
			return old, nil
		}
		if err := e.store.PutImage(img); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// unchanged returns the named image's record if img would write the same one (keeping the
// compression its last push or export asked for when the manifest is the same).
func (e *Engine) unchanged(name string, img *store.Image) (*store.Image, bool) {
	old, err := e.store.Image(name)
	if err != nil {
		return nil, false
	}
	if old.Manifest == img.Manifest {
		img.Compression = old.Compression
	}
	return old, sameImage(old, img)
}

// lockName serialises the writes of an image's record (a build naming it, a push recording
// its compression).
func (e *Engine) lockName(name string) (*store.Lock, error) {
	sum := sha256.Sum256([]byte(name))
	return e.store.Lock("image-" + hex.EncodeToString(sum[:8]))
}

func sameImage(a, b *store.Image) bool {
	ac, bc := *a, *b
	ac.Created, bc.Created = time.Time{}, time.Time{}
	ja, _ := json.Marshal(ac)
	jb, _ := json.Marshal(bc)
	return bytes.Equal(ja, jb)
}

// manifest returns the layers of the image whose manifest has the given digest, as its
// manifest and config record them.
func (e *Engine) manifest(digest string) ([]store.LayerDesc, error) {
	var m v1.Manifest
	if err := e.readJSONBlob(digest, &m); err != nil {
		return nil, err
	}
	if m.Config.Digest.Hex == "" {
		return nil, fmt.Errorf("%s is not an image manifest", digest)
	}
	var cfg v1.ConfigFile
	if err := e.readJSONBlob(m.Config.Digest.String(), &cfg); err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: config and manifest disagree on the layers", digest)
	}
	out := make([]store.LayerDesc, len(m.Layers))
	for i, l := range m.Layers {
		out[i] = store.LayerDesc{Digest: l.Digest.String(), DiffID: cfg.RootFS.DiffIDs[i].String(), Size: l.Size, MediaType: ociMediaType(l.MediaType)}
	}
	return out, nil
}

// configDigest returns the digest of the config of the image whose manifest has the given
// digest: its ID.
func (e *Engine) configDigest(digest string) (string, error) {
	var m v1.Manifest
	if err := e.readJSONBlob(digest, &m); err != nil {
		return "", err
	}
	return m.Config.Digest.String(), nil
}

// config returns the config file of the image whose manifest has the given digest.
func (e *Engine) config(digest string) (*v1.ConfigFile, error) {
	var m v1.Manifest
	if err := e.readJSONBlob(digest, &m); err != nil {
		return nil, err
	}
	var cfg v1.ConfigFile
	return &cfg, e.readJSONBlob(m.Config.Digest.String(), &cfg)
}

// v1Image returns a stored image as a go-containerregistry image, for export and push.
func (e *Engine) v1Image(manifest string) (v1.Image, error) {
	return partial.CompressedToImage(&storeImage{s: e.store, manifest: manifest})
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

func (i *storeImage) MediaType() (types.MediaType, error) {
	m, err := i.Manifest()
	if err != nil {
		return "", err
	}
	if m.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return m.MediaType, nil
}

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
