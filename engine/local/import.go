package local

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// BlobRoot is the folder that holds the store's blobs as an OCI content store does
// (blobs/sha256/<hex>): another engine reads the store's images from it.
func (e *Engine) BlobRoot() string { return e.store.Root() }

// NewBlob starts writing a blob into the store, for another engine to export an image
// into it: the blob is verified against the digest that Commit is given before it is
// renamed into place, and an uncommitted one is removed.
func (e *Engine) NewBlob() (*store.BlobWriter, error) { return e.store.NewBlob() }

// Hold keeps the store's shared lock until release is called, so that no prune runs while
// another engine writes blobs that no record names yet.
func (e *Engine) Hold() (release func(), err error) {
	use, err := e.store.Use()
	if err != nil {
		return nil, err
	}
	return func() { use.Unlock() }, nil
}

// SecretEnv returns the named local secrets as KEY=VALUE pairs, for another engine to pass
// to its steps as the local engine does.
func (e *Engine) SecretEnv(names []string) ([]string, error) { return e.secretEnv(names) }

// ArtifactFiles fetches a layer's artifacts into the store, as the local engine does (each
// checked against its pinned digest), and unpacks them into a new work folder of the store:
// the context files they add to the layer, for another engine to send as the local engine
// reads them. release removes the folder.
func (e *Engine) ArtifactFiles(ctx context.Context, artifacts []spec.Artifact, log io.Writer) (files []spec.ContextFile, release func(), err error) {
	dir, err := e.store.NewWorkDir("artifacts-")
	if err != nil {
		return nil, nil, err
	}
	files, err = e.artifactFiles(ctx, artifacts, dir.Path, log)
	if err != nil {
		dir.Remove()
		return nil, nil, err
	}
	return files, func() { dir.Remove() }, nil
}

// Import records an image that another engine (engineName) built for the plan p and exported into the
// store (NewBlob): it makes its layers' snapshots (so that Run, Export and Push work on it as
// on a local build), then the record that names it with the plan's keys, methods and
// runtime mounts. The manifest is the one the engine wrote, so the image keeps its digest.
func (e *Engine) Import(ctx context.Context, engineName, manifest string, p engine.Plan, name string) (*engine.Image, error) {
	use, err := e.store.Use()
	if err != nil {
		return nil, err
	}
	defer use.Unlock()
	img, err := e.v1Image(manifest)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", manifest, err)
	}
	st, err := e.fetch(ctx, img, "the built image", manifest, nil)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", manifest, err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	size := int64(len(raw))
	for _, l := range st.layers {
		size += l.Size
	}
	si, err := e.recordImage(&store.Image{Manifest: manifest, Config: cfg.String(), Size: size, Engine: engineName}, p, name)
	if err != nil {
		return nil, err
	}
	return e.describe(si)
}
