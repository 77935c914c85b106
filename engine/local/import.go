package local

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/store"
)

// BlobRoot is the folder that holds the store's blobs as an OCI content store does
// (blobs/sha256/<hex>): another engine reads the store's images from it.
func (e *Engine) BlobRoot() string { return e.store.Root() }

// SecretEnv returns the named local secrets as KEY=VALUE pairs, for another engine to pass
// to its steps as the local engine does.
func (e *Engine) SecretEnv(names []string) ([]string, error) { return e.secretEnv(names) }

// Import stores an image that another engine built for the plan p: its blobs and layer
// snapshots (so that Run, Export and Push work on it as on a local build), then the
// record that names it with the plan's keys, methods and runtime mounts. The manifest is
// kept byte for byte, so the image keeps the digest its engine gave it.
func (e *Engine) Import(ctx context.Context, img v1.Image, p engine.Plan, name string) (*engine.Image, error) {
	use, err := e.store.Use()
	if err != nil {
		return nil, err
	}
	defer use.Unlock()
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	st, err := e.fetch(ctx, img, "the built image", digest.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", digest, err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	size := int64(len(raw))
	for _, l := range st.layers {
		size += l.Size
	}
	si, err := e.recordImage(&store.Image{Manifest: digest.String(), Config: cfg.String(), Size: size}, p, name)
	if err != nil {
		return nil, err
	}
	return e.describe(si)
}
