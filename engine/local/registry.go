package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// PlatformString writes a platform as "os/arch[/variant]".
func PlatformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ResolveImage returns the manifest digest of a local image by name, or of a registry
// reference for this machine's platform: its pin, or, on first use or with Pull, what its
// registry serves now (which becomes its pin).
func (e *Engine) ResolveImage(ctx context.Context, ref string, o engine.ResolveOptions) (string, error) {
	if si, err := e.store.Image(ref); err == nil {
		return si.Manifest, nil
	}
	platform := PlatformString(e.platform)
	if o.Platform != "" && o.Platform != platform {
		return "", fmt.Errorf("%s: platform %s: the local engine builds for this machine's platform, %s", ref, o.Platform, platform)
	}
	if !o.Pull {
		if pin, err := e.store.Pin(ref, platform); err == nil {
			return pin.Digest, nil
		}
	}
	if o.Offline {
		return "", fmt.Errorf("%s has not been pulled yet: %w", ref, engine.ErrNotFound)
	}
	r, err := e.parseRef(ref)
	if err != nil {
		return "", err
	}
	auth, err := e.registryAuth(ref, o.Auth)
	if err != nil {
		return "", err
	}
	img, err := remote.Image(r, remote.WithContext(ctx), auth, remote.WithPlatform(e.platform))
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", ref, err)
	}
	if err := e.store.PutPin(&store.Pin{Ref: ref, Platform: platform, Digest: d.String(), Resolved: time.Now().UTC()}); err != nil {
		return "", err
	}
	return d.String(), nil
}

func (e *Engine) parseRef(ref string) (name.Reference, error) {
	var opts []name.Option
	if e.insecureRegistry(ref) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("%q is not an image reference: %w", ref, err)
	}
	return r, nil
}

// insecureRegistry reports whether a reference's registry is reached over plain http:
// loopback addresses, and those the engine was given.
func (e *Engine) insecureRegistry(ref string) bool {
	host := strings.SplitN(ref, "/", 2)[0]
	h := host
	if i := strings.LastIndex(h, ":"); i > 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	if h == "localhost" || strings.HasPrefix(h, "127.") || h == "[::1]" {
		return true
	}
	for _, r := range e.insecure {
		if r != "" && (r == host || r == h) {
			return true
		}
	}
	return false
}

// registryAuth returns the credentials for a registry: from the named secret, or the user's
// docker config and credential helpers.
func (e *Engine) registryAuth(ref string, auth *spec.RegistryAuth) (remote.Option, error) {
	if auth == nil {
		return remote.WithAuthFromKeychain(authn.DefaultKeychain), nil
	}
	vals, err := e.secrets.Get(auth.Secret)
	if err != nil {
		return nil, err
	}
	switch auth.Type {
	case "static":
		user, pass := vals["REGISTRY_USERNAME"], vals["REGISTRY_PASSWORD"]
		if user == "" || pass == "" {
			return nil, fmt.Errorf("secret %q needs REGISTRY_USERNAME and REGISTRY_PASSWORD for %s", auth.Secret, ref)
		}
		return remote.WithAuth(&authn.Basic{Username: user, Password: pass}), nil
	}
	return nil, fmt.Errorf("%s registry login for %s is not available in the local engine; pull with from_registry and static credentials (REGISTRY_USERNAME, REGISTRY_PASSWORD) instead", auth.Type, ref)
}

// imageState returns the state of an image by digest: from the store when its manifest,
// config and layers are there (no network), else pulled from ref's registry. Pulled layers
// are extracted, and the manifest and config kept, so the next use needs no network.
func (e *Engine) imageState(ctx context.Context, ref, digest string, auth *spec.RegistryAuth, log io.Writer) (*state, error) {
	if digest == "" {
		return nil, fmt.Errorf("%s was not resolved to a digest before the build", ref)
	}
	if st, err := e.localState(digest); err == nil {
		return st, nil
	}
	return e.pull(ctx, ref, digest, auth, log)
}

// localState reads an image's state from the store, extracting any snapshot that is missing.
func (e *Engine) localState(digest string) (*state, error) {
	layers, err := e.manifest(digest)
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		if !e.store.HasBlob(l.Digest) {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, store.ErrNotFound)
		}
	}
	cfg, err := e.config(digest)
	if err != nil {
		return nil, err
	}
	for i, l := range layers {
		if err := e.ensureSnapshot(layers[:i], l); err != nil {
			return nil, err
		}
	}
	return &state{layers: layers, config: v1.ConfigFile{Architecture: cfg.Architecture, OS: cfg.OS, Variant: cfg.Variant, Config: cfg.Config}, history: cfg.History}, nil
}

// pull fetches an image by digest from ref's registry into the store and extracts it.
func (e *Engine) pull(ctx context.Context, ref, digest string, auth *spec.RegistryAuth, log io.Writer) (*state, error) {
	r, err := e.parseRef(ref)
	if err != nil {
		return nil, err
	}
	r = r.Context().Digest(digest)
	opt, err := e.registryAuth(ref, auth)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "pulling %s\n", r)
	img, err := remote.Image(r, remote.WithContext(ctx), opt, remote.WithPlatform(e.platform))
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pulling %s: config: %w", ref, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("pulling %s: config: %w", ref, err)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(ls) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("pulling %s: its manifest has %d layers and its config %d", ref, len(ls), len(cfg.RootFS.DiffIDs))
	}
	st := &state{config: v1.ConfigFile{Architecture: cfg.Architecture, OS: cfg.OS, Variant: cfg.Variant, Config: cfg.Config}, history: cfg.History}
	for i, l := range ls {
		desc, err := layerDesc(l)
		if err != nil {
			return nil, err
		}
		if !e.store.HasBlob(desc.Digest) {
			fmt.Fprintf(log, "layer %d/%d %s (%d bytes)\n", i+1, len(ls), desc.Digest, desc.Size)
			if err := e.fetchBlob(l, desc.Digest); err != nil {
				return nil, fmt.Errorf("pulling %s layer %s: %w", ref, desc.Digest, err)
			}
		}
		if err := e.ensureSnapshot(st.layers, desc); err != nil {
			return nil, fmt.Errorf("%s layer %d (%s): %w", ref, i+1, desc.Digest, err)
		}
		st.layers = append(st.layers, desc)
	}
	// The manifest and config last: their presence says the image is whole in the store.
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	if _, err := e.store.PutBlob(rawCfg); err != nil {
		return nil, err
	}
	if got, err := e.store.PutBlob(rawManifest); err != nil {
		return nil, err
	} else if got != digest {
		return nil, fmt.Errorf("pulling %s: the registry served manifest %s for %s", ref, got, digest)
	}
	return st, nil
}

func layerDesc(l v1.Layer) (store.LayerDesc, error) {
	digest, err := l.Digest()
	if err != nil {
		return store.LayerDesc{}, err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return store.LayerDesc{}, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return store.LayerDesc{}, err
	}
	size, err := l.Size()
	if err != nil {
		return store.LayerDesc{}, err
	}
	return store.LayerDesc{Digest: digest.String(), DiffID: diffID.String(), Size: size, MediaType: ociMediaType(mt)}, nil
}

// fetchBlob downloads a layer's compressed blob into the store, verifying its digest.
func (e *Engine) fetchBlob(l v1.Layer, digest string) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	w, err := e.store.NewBlob()
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return err
	}
	_, err = w.Commit(digest)
	return err
}

func ociMediaType(mt types.MediaType) string {
	switch mt {
	case types.DockerLayer:
		return string(types.OCILayer)
	case types.DockerUncompressedLayer:
		return string(types.OCIUncompressedLayer)
	}
	return string(mt)
}

// readJSONBlob decodes a JSON blob of the store.
func (e *Engine) readJSONBlob(digest string, v any) error {
	b, err := e.store.ReadBlob(digest)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	return nil
}
