package local

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"golang.org/x/sync/errgroup"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// pushJobs is how many blobs upload at once.
const pushJobs = 4

// Push writes an image to a registry: its layers in the compression asked for (made once
// per layer and kept in the store, so a second push compresses nothing), blobs the
// registry has skipped, blobs known to be in another of its repositories mounted.
func (e *Engine) Push(ctx context.Context, img *engine.Image, ref string, o engine.PushOptions) (_ string, err error) {
	defer func() { err = e.explainFull(err, false) }()
	use, err := e.store.Use()
	if err != nil {
		return "", err
	}
	defer use.Unlock()
	r, err := e.reg.ParseReference(ref)
	if err != nil {
		return "", err
	}
	pi, err := e.pushImage(ctx, img.Manifest, o)
	if err != nil {
		return "", err
	}
	pi.repo, pi.progress = r.Context(), o.Progress
	v, err := partial.CompressedToImage(pi)
	if err != nil {
		return "", err
	}
	opts, err := e.reg.Options(ctx, r.Context().Registry, nil)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, &mountable{Image: v, pi: pi}, append(opts, remote.WithJobs(pushJobs))...); err != nil {
		return "", registry.Explain(err, ref)
	}
	e.usedCompression(img, o.Compression)
	// Blobs the push did not read were already there, or mounted.
	for _, l := range pi.layers {
		if !pi.read(l.Digest) && o.Progress != nil {
			o.Progress(engine.Transfer{Digest: l.Digest, Size: l.Size, Done: l.Size, Status: "exists"})
		}
		_ = e.store.AddSource(l.Digest, r.Context().Name())
	}
	d, err := pi.digest()
	if err != nil || len(o.Referrers) == 0 {
		return d, err
	}
	mt, err := pi.MediaType()
	if err != nil {
		return "", err
	}
	h, err := v1.NewHash(d)
	if err != nil {
		return "", err
	}
	subject := v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(pi.manifest))}
	return d, e.pushReferrers(ctx, r.Context(), subject, o.Referrers, opts)
}

// pushImage assembles the image as it is pushed: the stored manifest and config when the
// layers are already in the compression and media types asked for (so a push is
// byte-identical to an export), otherwise a new manifest over the layers' variants, with the
// config's diff IDs of the variants (an eStargz layer has its own).
func (e *Engine) pushImage(ctx context.Context, manifest string, o engine.PushOptions) (*pushed, error) {
	comp, docker := o.Compression, o.MediaTypes == "docker"
	if comp == "" {
		comp = "gzip"
	}
	switch {
	case comp != "gzip" && comp != "zstd" && comp != "estargz":
		return nil, fmt.Errorf("unknown compression %q: use gzip, zstd or estargz", comp)
	case o.MediaTypes != "" && o.MediaTypes != "oci" && o.MediaTypes != "docker":
		return nil, fmt.Errorf("unknown media types %q: use oci or docker", o.MediaTypes)
	case docker && comp == "zstd":
		return nil, fmt.Errorf("zstd layers need OCI media types: Docker's manifest format has no zstd layer type")
	case docker && comp == "estargz":
		return nil, fmt.Errorf("eStargz needs OCI media types: its table of contents is a layer annotation, which Docker's manifest format cannot hold")
	}
	rawManifest, err := e.store.ReadBlob(manifest)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, err
	}
	rawConfig, err := e.store.ReadBlob(m.Config.Digest.String())
	if err != nil {
		return nil, err
	}
	layers, err := e.manifest(manifest)
	if err != nil {
		return nil, err
	}
	p := &pushed{s: e.store, reads: map[string]bool{}}
	if p.layers, err = e.variants(ctx, layers, comp); err != nil {
		return nil, err
	}
	same, sameDiffs := !docker && (m.MediaType == "" || m.MediaType == types.OCIManifestSchema1), true
	for i, v := range p.layers {
		same = same && v.Digest == layers[i].Digest
		sameDiffs = sameDiffs && v.DiffID == layers[i].DiffID
	}
	if same {
		p.manifest, p.config = rawManifest, rawConfig
		return p, nil
	}
	p.config = rawConfig
	if !sameDiffs {
		// eStargz layers have diff IDs of their own.
		var cfg v1.ConfigFile
		if err := json.Unmarshal(rawConfig, &cfg); err != nil {
			return nil, err
		}
		cfg.RootFS.DiffIDs = nil
		for _, l := range p.layers {
			h, err := v1.NewHash(l.DiffID)
			if err != nil {
				return nil, err
			}
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, h)
		}
		if p.config, err = json.Marshal(cfg); err != nil {
			return nil, err
		}
	}
	out := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(p.config)), Digest: sha256Hash(p.config)}}
	if docker {
		out.MediaType, out.Config.MediaType = types.DockerManifestSchema2, types.DockerConfigJSON
	}
	for _, l := range p.layers {
		h, err := v1.NewHash(l.Digest)
		if err != nil {
			return nil, err
		}
		mt := types.MediaType(l.MediaType)
		if docker {
			mt = types.DockerLayer
		}
		out.Layers = append(out.Layers, v1.Descriptor{MediaType: mt, Size: l.Size, Digest: h, Annotations: l.Annotations})
	}
	if p.manifest, err = json.Marshal(out); err != nil {
		return nil, err
	}
	return p, nil
}

func sha256Hash(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}

// compressionOf says how a stored layer blob is compressed.
func compressionOf(l store.LayerDesc) string {
	switch {
	case l.Annotations[estargz.TOCJSONDigestAnnotation] != "":
		return "estargz"
	case strings.Contains(l.MediaType, "zstd"):
		return "zstd"
	case strings.Contains(l.MediaType, "gzip"):
		return "gzip"
	}
	return "none"
}

// variants returns the layers' blobs in a compression, made in parallel where they are
// missing: a layer kept as its snapshot alone is compressed here, on its first export or
// push, and never again.
func (e *Engine) variants(ctx context.Context, layers []store.LayerDesc, comp string) ([]store.LayerDesc, error) {
	out := make([]store.LayerDesc, len(layers))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, l := range layers {
		g.Go(func() error {
			v, err := e.variant(ctx, l, comp)
			if err != nil {
				return fmt.Errorf("layer %d (%s) as %s: %w", i+1, l.Digest, comp, err)
			}
			out[i] = v
			return nil
		})
	}
	return out, g.Wait()
}

// variant returns the layer's blob in a compression, making it on first use. Variants are
// kept in the store by the layer's diff ID, so each is made once.
func (e *Engine) variant(ctx context.Context, l store.LayerDesc, comp string) (store.LayerDesc, error) {
	if compressionOf(l) == comp {
		return l, nil
	}
	if v, err := e.store.Variant(l.DiffID, comp); err == nil {
		return *v, nil
	}
	lock, err := e.store.Lock("variant-" + strings.TrimPrefix(l.DiffID, "sha256:"))
	if err != nil {
		return store.LayerDesc{}, err
	}
	defer lock.Unlock()
	if v, err := e.store.Variant(l.DiffID, comp); err == nil {
		return *v, nil
	}
	src, err := e.openLayer(l)
	if err != nil {
		return store.LayerDesc{}, err
	}
	defer src.Close()
	blob, err := e.store.NewBlob()
	if err != nil {
		return store.LayerDesc{}, err
	}
	defer blob.Close()
	v := store.LayerDesc{DiffID: l.DiffID}
	switch comp {
	case "estargz":
		sr, done, err := e.sectionReader(src)
		if err != nil {
			return store.LayerDesc{}, err
		}
		defer done()
		// estargz reads gzip, zstd or plain tar, and rewrites it with a table of contents that
		// lets lazy-pulling runtimes fetch files on demand.
		eb, err := estargz.Build(sr, estargz.WithContext(ctx), estargz.WithCompressionLevel(gzip.DefaultCompression))
		if err != nil {
			return store.LayerDesc{}, err
		}
		if _, err := io.Copy(blob, eb); err != nil {
			eb.Close()
			return store.LayerDesc{}, err
		}
		if err := eb.Close(); err != nil {
			return store.LayerDesc{}, err
		}
		size, err := eb.UncompressedSize()
		if err != nil {
			return store.LayerDesc{}, err
		}
		v.DiffID, v.MediaType = eb.DiffID().String(), string(types.OCILayer)
		v.Annotations = map[string]string{
			estargz.TOCJSONDigestAnnotation:         eb.TOCDigest().String(),
			estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(size, 10),
		}
	default:
		plain, closeFn, err := decompress(src, l.MediaType)
		if err != nil {
			return store.LayerDesc{}, err
		}
		defer closeFn()
		var w io.WriteCloser
		if comp == "zstd" {
			w, err = zstd.NewWriter(blob, zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
			v.MediaType = string(types.OCILayerZStd)
		} else {
			var gz *pgzip.Writer
			if gz, err = pgzip.NewWriterLevel(blob, pgzip.DefaultCompression); err == nil {
				err = gz.SetConcurrency(1<<20, runtime.GOMAXPROCS(0))
			}
			w, v.MediaType = gz, string(types.OCILayer)
		}
		if err != nil {
			return store.LayerDesc{}, err
		}
		if _, err := io.Copy(w, plain); err != nil {
			return store.LayerDesc{}, err
		}
		if err := w.Close(); err != nil {
			return store.LayerDesc{}, err
		}
	}
	v.Size = blob.Size()
	if v.Digest, err = blob.Commit(""); err != nil {
		return store.LayerDesc{}, err
	}
	if err := e.store.PutVariant(l.DiffID, comp, v); err != nil {
		return store.LayerDesc{}, err
	}
	return v, nil
}

// sectionReader gives random access to a layer's bytes, which estargz needs: the blob's
// file, or a spool file in the store's tmp for a tar written from a snapshot.
func (e *Engine) sectionReader(src io.Reader) (*io.SectionReader, func(), error) {
	done := func() {}
	f, ok := src.(*os.File)
	if !ok {
		w, err := e.store.NewWorkDir("estargz-")
		if err != nil {
			return nil, nil, err
		}
		if f, err = os.Create(filepath.Join(w.Path, "layer.tar")); err != nil {
			w.Remove()
			return nil, nil, err
		}
		done = func() { f.Close(); w.Remove() }
		if _, err := io.Copy(f, src); err != nil {
			done()
			return nil, nil, err
		}
	}
	info, err := f.Stat()
	if err != nil {
		done()
		return nil, nil, err
	}
	return io.NewSectionReader(f, 0, info.Size()), done, nil
}

// decompress reads a layer blob as a plain tar.
func decompress(r io.Reader, mediaType string) (io.Reader, func(), error) {
	switch {
	case strings.Contains(mediaType, "zstd"):
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	case strings.Contains(mediaType, "gzip"):
		gz, err := pgzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return gz, func() { gz.Close() }, nil
	}
	return r, func() {}, nil
}

// pushed is an image being pushed, read from the store's blobs.
type pushed struct {
	s        *store.Store
	manifest []byte
	config   []byte
	layers   []store.LayerDesc
	repo     name.Repository
	progress func(engine.Transfer)

	mu    sync.Mutex
	reads map[string]bool
}

func (p *pushed) RawManifest() ([]byte, error)   { return p.manifest, nil }
func (p *pushed) RawConfigFile() ([]byte, error) { return p.config, nil }
func (p *pushed) MediaType() (types.MediaType, error) {
	m, err := v1.ParseManifest(bytes.NewReader(p.manifest))
	if err != nil {
		return "", err
	}
	if m.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return m.MediaType, nil
}

func (p *pushed) digest() (string, error) {
	h, _, err := v1.SHA256(bytes.NewReader(p.manifest))
	return h.String(), err
}

func (p *pushed) read(digest string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reads[digest]
}

func (p *pushed) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytes.NewReader(p.manifest))
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Digest == h {
			return &pushedLayer{p: p, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("layer %s is not in the image", h)
}

type pushedLayer struct {
	p    *pushed
	desc v1.Descriptor
}

func (l *pushedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *pushedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *pushedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

// Compressed opens the blob; each read is reported as this layer's progress.
func (l *pushedLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.p.s.BlobPath(l.desc.Digest.String()))
	if err != nil {
		return nil, err
	}
	d := l.desc.Digest.String()
	l.p.mu.Lock()
	l.p.reads[d] = true
	l.p.mu.Unlock()
	if l.p.progress == nil {
		return f, nil
	}
	report := func(n int64) {
		status := "pushing"
		if n == l.desc.Size {
			status = "done"
		}
		l.p.progress(engine.Transfer{Digest: d, Size: l.desc.Size, Done: n, Status: status})
	}
	return struct {
		io.Reader
		io.Closer
	}{&counter{r: f, report: report}, f}, nil
}

// mountable presents the image's layers to go-containerregistry as mountable from another
// repository of the same registry where the store knows them to be, so that the push asks
// the registry to mount them instead of sending them.
type mountable struct {
	v1.Image
	pi *pushed
}

func (m *mountable) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = l
		d, err := l.Digest()
		if err != nil {
			continue
		}
		for _, src := range m.pi.s.Sources(d.String()) {
			repo, err := name.NewRepository(src, name.Insecure)
			if err != nil || repo.RegistryStr() != m.pi.repo.RegistryStr() || repo.Name() == m.pi.repo.Name() {
				continue
			}
			out[i] = &remote.MountableLayer{Layer: l, Reference: repo.Digest(d.String())}
			break
		}
	}
	return out, nil
}
