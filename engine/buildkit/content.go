package buildkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/store"
)

// contentStore is strata's store as a containerd content store, which buildkitd reaches
// through the session: it reads the base images from it (llb.OCILayout), and the OCI
// exporter writes the built image into it. A blob the store has is not sent again (the
// exporter is told it exists), so a build whose layers are all in the store transfers its
// manifest and config only. A written blob is checked against its digest before it is
// renamed into place (store.BlobWriter.Commit).
type contentStore struct {
	root    string
	newBlob func() (*store.BlobWriter, error)
	mu      sync.Mutex
	extra   map[digest.Digest][]byte // made in memory: layersOnly's manifests and configs
}

func newContentStore(s Store) *contentStore {
	quietLogs()
	return &contentStore{root: s.BlobRoot(), newBlob: s.NewBlob, extra: map[digest.Digest][]byte{}}
}

func (s *contentStore) path(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

// layersOnly returns the digest of a manifest of the image's layers whose config holds
// nothing but the layers' diff IDs, served from memory. BuildKit keys an OCI layout source
// by its manifest, and the stored image's config has the time it was built: two stores
// that bootstrapped the same base bytes would otherwise share no cache on one buildkitd.
// The config that the engine gives the exported image is the full one.
func (s *contentStore) layersOnly(in *engine.Inspect) (string, error) {
	cfg := v1.ConfigFile{Architecture: in.Config.Architecture, OS: in.Config.OS, Variant: in.Config.Variant, RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}}}
	m := ocispecs.Manifest{MediaType: ocispecs.MediaTypeImageManifest, Layers: []ocispecs.Descriptor{}}
	m.SchemaVersion = 2
	for _, l := range in.Layers {
		for _, bl := range l.Blobs {
			h, err := v1.NewHash(bl.DiffID)
			if err != nil {
				return "", err
			}
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, h)
			m.Layers = append(m.Layers, ocispecs.Descriptor{MediaType: bl.MediaType, Digest: digest.Digest(bl.Digest), Size: bl.Size})
		}
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	m.Config = ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	mb, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	md := digest.FromBytes(mb)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extra[digest.FromBytes(cb)] = cb
	s.extra[md] = mb
	return md.String(), nil
}

func (s *contentStore) memory(d digest.Digest) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.extra[d]
	return b, ok
}

func (s *contentStore) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	if b, ok := s.memory(d); ok {
		return content.Info{Digest: d, Size: int64(len(b))}, nil
	}
	if d.Validate() != nil {
		return content.Info{}, fmt.Errorf("%w: %q is not a digest", errdefs.ErrInvalidArgument, d)
	}
	fi, err := os.Stat(s.path(d))
	if err != nil {
		return content.Info{}, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	return content.Info{Digest: d, Size: fi.Size(), CreatedAt: fi.ModTime(), UpdatedAt: fi.ModTime()}, nil
}

func (s *contentStore) ReaderAt(ctx context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	if b, ok := s.memory(desc.Digest); ok {
		return bytesReaderAt{bytes.NewReader(b)}, nil
	}
	if desc.Digest.Validate() != nil {
		return nil, fmt.Errorf("%w: %q is not a digest", errdefs.ErrInvalidArgument, desc.Digest)
	}
	f, err := os.Open(s.path(desc.Digest))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return fileReaderAt{f, fi.Size()}, nil
}

// Update changes nothing: the store keeps no labels.
func (s *contentStore) Update(ctx context.Context, info content.Info, _ ...string) (content.Info, error) {
	return s.Info(ctx, info.Digest)
}

func (s *contentStore) Walk(context.Context, content.WalkFunc, ...string) error { return nil }

func (s *contentStore) Delete(_ context.Context, d digest.Digest) error {
	return fmt.Errorf("%w: buildkitd may not delete %s from strata's store", errdefs.ErrNotImplemented, d)
}

func (s *contentStore) Status(_ context.Context, ref string) (content.Status, error) {
	return content.Status{}, fmt.Errorf("%s: %w", ref, errdefs.ErrNotFound)
}

func (s *contentStore) ListStatuses(context.Context, ...string) ([]content.Status, error) {
	return nil, nil
}

func (s *contentStore) Abort(context.Context, string) error { return nil }

// Writer writes a blob, or says that the store has it already.
func (s *contentStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var o content.WriterOpts
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.Desc.Digest != "" {
		if _, err := s.Info(ctx, o.Desc.Digest); err == nil {
			return nil, fmt.Errorf("blob %s: %w", o.Desc.Digest, errdefs.ErrAlreadyExists)
		}
	}
	w, err := s.newBlob()
	if err != nil {
		return nil, err
	}
	return &blobWriter{w: w, ref: o.Ref, desc: o.Desc}, nil
}

type blobWriter struct {
	w    *store.BlobWriter
	ref  string
	desc ocispecs.Descriptor
}

func (b *blobWriter) Write(p []byte) (int, error) { return b.w.Write(p) }
func (b *blobWriter) Close() error                { return b.w.Close() }
func (b *blobWriter) Digest() digest.Digest       { return digest.Digest(b.w.Digest()) }

func (b *blobWriter) Commit(_ context.Context, size int64, expected digest.Digest, _ ...content.Opt) error {
	if expected == "" {
		expected = b.desc.Digest
	}
	if size > 0 && size != b.w.Size() {
		b.w.Close()
		return fmt.Errorf("%w: blob %s: %d bytes written, %d expected", errdefs.ErrFailedPrecondition, expected, b.w.Size(), size)
	}
	_, err := b.w.Commit(expected.String())
	return err
}

func (b *blobWriter) Status() (content.Status, error) {
	return content.Status{Ref: b.ref, Offset: b.w.Size(), Total: b.desc.Size, Expected: b.desc.Digest}, nil
}

func (b *blobWriter) Truncate(size int64) error {
	if size == b.w.Size() {
		return nil
	}
	return fmt.Errorf("%w: a blob of strata's store is written once, from its start", errdefs.ErrNotImplemented)
}

type bytesReaderAt struct{ *bytes.Reader }

func (bytesReaderAt) Close() error { return nil }

type fileReaderAt struct {
	*os.File
	size int64
}

func (f fileReaderAt) Size() int64 { return f.size }
