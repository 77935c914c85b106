package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/registry"
)

// emptyConfig is OCI 1.1's empty descriptor content, the config of an artifact manifest.
var emptyConfig = []byte("{}")

// artifact is an OCI 1.1 artifact manifest: one blob of the artifact's type, an empty
// config, and the image it is about as its subject.
type artifact struct {
	manifest []byte
	blob     v1.Layer
}

func newArtifact(a engine.Referrer, subject v1.Descriptor) (*artifact, error) {
	data, err := a.Document(subject.Digest.String())
	if err != nil {
		return nil, err
	}
	blob := static.NewLayer(data, types.MediaType(a.ArtifactType))
	d, err := blob.Digest()
	if err != nil {
		return nil, err
	}
	cfg, _, err := v1.SHA256(bytes.NewReader(emptyConfig))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  a.ArtifactType,
		Config:        v1.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: cfg, Size: int64(len(emptyConfig)), Data: emptyConfig},
		Layers:        []v1.Descriptor{{MediaType: types.MediaType(a.ArtifactType), Digest: d, Size: int64(len(data))}},
		Subject:       &subject,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &artifact{manifest: b, blob: blob}, nil
}

func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *artifact) RawConfigFile() ([]byte, error)      { return emptyConfig, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, _ := a.blob.Digest(); d == h {
		return a.blob, nil
	}
	return nil, fmt.Errorf("the artifact has no blob %s", h)
}

// pushReferrers pushes each referrer as an artifact whose subject is the pushed manifest.
// go-containerregistry's writer updates the registry's referrers: through the referrers API
// where the registry has it, or the sha256-<digest> tag of OCI 1.1's fallback otherwise.
func (e *Engine) pushReferrers(ctx context.Context, repo name.Repository, subject v1.Descriptor, refs []engine.Referrer, opts []remote.Option) error {
	for _, a := range refs {
		art, err := newArtifact(a, subject)
		if err != nil {
			return err
		}
		img, err := partial.CompressedToImage(art)
		if err != nil {
			return err
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		if err := remote.Write(repo.Digest(d.String()), img, opts...); err != nil {
			return fmt.Errorf("attaching the %s to %s: %w", a.ArtifactType, subject.Digest, registry.Explain(err, repo.Name()))
		}
	}
	return nil
}
