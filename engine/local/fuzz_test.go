package local

import (
	"bytes"
	"context"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/internal/fuzzing"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// fuzzImage is an image as a registry could serve it: any manifest, config and layer bytes.
type fuzzImage struct{ manifest, config, layer []byte }

func (i *fuzzImage) RawManifest() ([]byte, error)   { return i.manifest, nil }
func (i *fuzzImage) RawConfigFile() ([]byte, error) { return i.config, nil }
func (i *fuzzImage) MediaType() (types.MediaType, error) {
	m, err := v1.ParseManifest(bytes.NewReader(i.manifest))
	if err != nil {
		return "", err
	}
	return m.MediaType, nil
}
func (i *fuzzImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	return &fuzzLayer{h: h, b: i.layer}, nil
}

type fuzzLayer struct {
	h v1.Hash
	b []byte
}

func (l *fuzzLayer) Digest() (v1.Hash, error) { return l.h, nil }
func (l *fuzzLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.b)), nil
}
func (l *fuzzLayer) Size() (int64, error) { return int64(len(l.b)), nil }
func (l *fuzzLayer) MediaType() (types.MediaType, error) {
	return types.OCILayer, nil
}

// FuzzPull: any manifest, config and layer bytes a registry serves are pulled or refused
// with an error, never a panic or a hang, and leave a store that strata check finds whole:
// nothing half-pulled is recorded.
func FuzzPull(f *testing.F) {
	const d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"`+d1+`","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"`+d1+`","size":3}]}`),
		[]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["`+d1+`"]}}`), []byte("\x1f\x8b\x08\x00"))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"`+d1+`"},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"`+d1+`"}]}`),
		[]byte(`{"rootfs":{"diff_ids":["`+d1+`","`+d1+`"]},"history":[{"created_by":"x"}]}`), []byte("\x28\xb5\x2f\xfd"))
	f.Add([]byte(`{"manifests":[{"digest":"`+d1+`","platform":{"os":"linux"}}]}`), []byte(`{}`), []byte{})
	f.Fuzz(func(t *testing.T, manifest, config, layer []byte) {
		s, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		e := &Engine{store: s, reg: registry.New(registry.Options{})}
		img, err := partial.CompressedToImage(&fuzzImage{manifest: manifest, config: config, layer: layer})
		if err != nil {
			return
		}
		fuzzing.Within(t, manifest, func() { _, _ = e.fetch(context.Background(), img, "127.0.0.1:5000/fuzz:1", "", nil) })
		r, err := e.Check(context.Background(), engine.CheckOptions{})
		if err != nil || len(r.Problems) > 0 {
			t.Fatalf("the store after the pull: %v %+v", err, r)
		}
	})
}
