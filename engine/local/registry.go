package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// pullJobs is how many layers download and extract at once.
const pullJobs = 4

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
	img, err := e.remoteImage(ctx, ref, o.Auth)
	if err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", registry.Explain(err, ref)
	}
	if err := e.store.PutPin(&store.Pin{Ref: ref, Platform: platform, Digest: d.String(), Resolved: time.Now().UTC()}); err != nil {
		return "", err
	}
	return d.String(), nil
}

// ImageConfig returns the config of ref's image with manifest digest: the stored one, or
// else the config blob alone from ref's registry.
func (e *Engine) ImageConfig(ctx context.Context, ref, digest string, o engine.ResolveOptions) (*v1.ConfigFile, error) {
	if cfg, err := e.config(digest); err == nil {
		return cfg, nil
	}
	if o.Offline {
		return nil, fmt.Errorf("%s@%s is not in the store: %w", ref, digest, engine.ErrNotFound)
	}
	r, err := e.reg.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	img, err := e.remoteImage(ctx, r.Context().Digest(digest).String(), o.Auth)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, registry.Explain(err, ref)
	}
	return cfg, nil
}

// remoteImage opens a registry image for this machine's platform (its manifest, not yet its
// layers).
func (e *Engine) remoteImage(ctx context.Context, ref string, a *spec.RegistryAuth) (v1.Image, error) {
	r, err := e.reg.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	opts, err := e.remoteOptions(ctx, r, a)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(r, append(opts, remote.WithPlatform(e.platform))...)
	if err != nil {
		var big *registry.TooLargeError
		if errors.As(err, &big) {
			return nil, &engine.LimitError{What: ref, Past: big.Error()}
		}
		return nil, registry.Explain(err, ref)
	}
	return img, nil
}

// remoteOptions reach a reference's registry with the credentials a definition names, or the
// user's docker config.
func (e *Engine) remoteOptions(ctx context.Context, r name.Reference, a *spec.RegistryAuth) ([]remote.Option, error) {
	auth, err := e.registryAuth(ctx, r.Context().RegistryStr(), a)
	if err != nil {
		return nil, err
	}
	return e.reg.Options(ctx, r.Context().Registry, auth)
}

// registryAuth turns a definition's registry credentials into an authenticator: static ones
// from a secret, or tokens from AWS ECR or Google Cloud for the secret's credentials. nil
// means the user's docker config and credential helpers.
func (e *Engine) registryAuth(ctx context.Context, host string, a *spec.RegistryAuth) (authn.Authenticator, error) {
	if a == nil {
		return nil, nil
	}
	vals, err := e.secrets.Get(a.Secret)
	if err != nil {
		return nil, err
	}
	switch a.Type {
	case "static":
		user, pass := vals["REGISTRY_USERNAME"], vals["REGISTRY_PASSWORD"]
		if user == "" || pass == "" {
			return nil, fmt.Errorf("secret %q needs REGISTRY_USERNAME and REGISTRY_PASSWORD for %s", a.Secret, host)
		}
		return &authn.Basic{Username: user, Password: pass}, nil
	case "aws":
		if !registry.IsECRHost(host) && !registry.ECREndpointOverridden(vals) {
			return nil, fmt.Errorf("%s is not an ECR registry (ACCOUNT.dkr.ecr.REGION.amazonaws.com); use from_registry for other registries, or set AWS_ENDPOINT_URL_ECR in secret %q for an ECR-compatible endpoint", host, a.Secret)
		}
		auth, err := registry.ECR(ctx, host, vals)
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", a.Secret, err)
		}
		return auth, nil
	case "gcp":
		if !registry.IsGCPHost(host) && !registry.GCPEndpointOverridden(vals) {
			return nil, fmt.Errorf("%s is not Google Artifact Registry (REGION-docker.pkg.dev) or gcr.io; use from_registry for other registries", host)
		}
		auth, err := registry.GCP(ctx, host, vals)
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", a.Secret, err)
		}
		return auth, nil
	}
	return nil, fmt.Errorf("unknown registry login %q for %s", a.Type, host)
}

// imageState returns the state of an image by digest: from the store when its manifest,
// config and layers are there (no network), else pulled from ref's registry.
func (e *Engine) imageState(ctx context.Context, ref, digest string, auth *spec.RegistryAuth, log io.Writer) (*state, error) {
	if digest == "" {
		return nil, fmt.Errorf("%s was not resolved to a digest before the build", ref)
	}
	if st, err := e.localState(digest); err == nil {
		return st, nil
	}
	r, err := e.reg.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "pulling %s\n", r.Context().Digest(digest))
	img, err := e.remoteImage(ctx, r.Context().Digest(digest).String(), auth)
	if err != nil {
		return nil, err
	}
	return e.fetch(ctx, img, ref, digest, nil)
}

// localState reads an image's state from the store, extracting any snapshot that is missing.
func (e *Engine) localState(digest string) (*state, error) {
	layers, err := e.manifest(digest)
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		if !e.store.HasLayer(l) {
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

// fetch brings a registry image into the store: its layers download and extract
// concurrently, each checked against its digest and diff ID, then its config and manifest
// are kept, so that the store has the image whole.
func (e *Engine) fetch(ctx context.Context, img v1.Image, ref, digest string, progress func(engine.Transfer)) (*state, error) {
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, registry.Explain(err, ref)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("pulling %s: config: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, registry.Explain(err, ref)
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("pulling %s: its manifest has %d layers and its config %d", ref, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	if len(m.Layers) > container.MaxOverlayLowers {
		return nil, &engine.LimitError{What: "image " + ref, Past: fmt.Sprintf("has %d layers; overlayfs stacks at most %d, so strata cannot run it (nothing was downloaded)", len(m.Layers), container.MaxOverlayLowers)}
	}
	descs := make([]store.LayerDesc, len(m.Layers))
	for i, l := range m.Layers {
		descs[i] = store.LayerDesc{Digest: l.Digest.String(), DiffID: cfg.RootFS.DiffIDs[i].String(), Size: l.Size, MediaType: ociMediaType(l.MediaType), Annotations: l.Annotations}
	}
	if err := e.fetchLayers(ctx, nil, descs, func(d store.LayerDesc) (io.ReadCloser, error) {
		h, err := v1.NewHash(d.Digest)
		if err != nil {
			return nil, err
		}
		l, err := img.LayerByDigest(h)
		if err != nil {
			return nil, err
		}
		return l.Compressed()
	}, progress); err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, registry.Explain(err, ref))
	}
	// A push to another repository of this registry can mount these blobs from here.
	if r, err := e.reg.ParseReference(ref); err == nil {
		for _, d := range descs {
			_ = e.store.AddSource(d.Digest, r.Context().Name())
		}
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	if _, err := e.store.PutBlob(rawCfg); err != nil {
		return nil, err
	}
	if got, err := e.store.PutBlob(rawManifest); err != nil {
		return nil, err
	} else if digest != "" && got != digest {
		return nil, fmt.Errorf("pulling %s: the registry served manifest %s for %s", ref, got, digest)
	}
	return &state{layers: descs, config: v1.ConfigFile{Architecture: cfg.Architecture, OS: cfg.OS, Variant: cfg.Variant, Config: cfg.Config}, history: cfg.History}, nil
}

// fetchLayers makes every layer's blob and snapshot present, downloading what is missing
// with open, pullJobs at a time. A layer downloads and extracts in one pass; it waits for
// the layers below it only if it hard-links to one of their files. below are the layers
// under descs, already present.
func (e *Engine) fetchLayers(ctx context.Context, below, descs []store.LayerDesc, open func(store.LayerDesc) (io.ReadCloser, error), progress func(engine.Transfer)) error {
	done := make([]chan struct{}, len(descs))
	errs := make([]error, len(descs))
	for i := range done {
		done[i] = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, pullJobs)
	var wg sync.WaitGroup
	for i, d := range descs {
		// Layers take their turn in order, so a layer waiting for those below it never holds
		// a turn they need.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			close(done[i])
			continue
		}
		wg.Add(1)
		go func(i int, d store.LayerDesc) {
			defer wg.Done()
			defer func() { <-sem }()
			defer close(done[i])
			lowers := func() ([]string, error) {
				out := make([]string, 0, i)
				for j := i - 1; j >= 0; j-- {
					<-done[j]
					if errs[j] != nil {
						return nil, fmt.Errorf("a layer below failed")
					}
					out = append(out, e.store.SnapshotPath(descs[j].DiffID))
				}
				for j := len(below) - 1; j >= 0; j-- {
					out = append(out, e.store.SnapshotPath(below[j].DiffID))
				}
				return out, nil
			}
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return
			}
			errs[i] = e.fetchLayer(d, lowers, open, progress)
			if errs[i] != nil {
				cancel()
			}
		}(i, d)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("layer %d (%s): %w", i+1, descs[i].Digest, err)
		}
	}
	return ctx.Err()
}

// fetchLayer makes one layer's blob and snapshot present.
func (e *Engine) fetchLayer(d store.LayerDesc, lowers func() ([]string, error), open func(store.LayerDesc) (io.ReadCloser, error), progress func(engine.Transfer)) error {
	report := func(t engine.Transfer) {
		if progress != nil {
			progress(t)
		}
	}
	if e.store.HasBlob(d.Digest) {
		report(engine.Transfer{Digest: d.Digest, Size: d.Size, Done: d.Size, Status: "exists"})
		if e.store.HasSnapshot(d.DiffID) {
			return nil
		}
		f, err := os.Open(e.store.BlobPath(d.Digest))
		if err != nil {
			return err
		}
		defer f.Close()
		work, root, err := e.unpack(f, d, lowers)
		if work != nil {
			defer work.Remove()
		}
		if err != nil {
			return err
		}
		return e.store.CommitSnapshot(root, d.DiffID)
	}
	rc, err := open(d)
	if err != nil {
		return err
	}
	defer rc.Close()
	blob, err := e.store.NewBlob()
	if err != nil {
		return err
	}
	defer blob.Close()
	pr, pw := io.Pipe()
	type result struct {
		work *store.WorkDir
		root string
		err  error
	}
	unpacked := make(chan result, 1)
	go func() {
		work, root, err := e.unpack(pr, d, lowers)
		pr.CloseWithError(err)
		unpacked <- result{work, root, err}
	}()
	src := io.Reader(rc)
	if progress != nil {
		src = &counter{r: rc, report: func(n int64) {
			progress(engine.Transfer{Digest: d.Digest, Size: d.Size, Done: n, Status: "pulling"})
		}}
	}
	_, err = io.Copy(io.MultiWriter(blob, pw), src)
	pw.CloseWithError(err)
	res := <-unpacked
	if res.work != nil {
		defer res.work.Remove()
	}
	if err != nil {
		return err
	}
	if res.err != nil {
		return res.err
	}
	// The blob must be what the manifest names before its snapshot is trusted.
	if _, err := blob.Commit(d.Digest); err != nil {
		return err
	}
	report(engine.Transfer{Digest: d.Digest, Size: d.Size, Done: d.Size, Status: "done"})
	return e.store.CommitSnapshot(res.root, d.DiffID)
}

// unpack extracts a compressed layer stream into a new folder, checking that the
// uncompressed stream has the layer's diff ID; the caller commits it as the snapshot.
func (e *Engine) unpack(r io.Reader, d store.LayerDesc, lowers func() ([]string, error)) (*store.WorkDir, string, error) {
	plain, closeFn, err := decompress(r, d.MediaType)
	if err != nil {
		return nil, "", err
	}
	defer closeFn()
	diff := sha256.New()
	tee := io.TeeReader(&capped{r: plain, left: e.limits.LayerBytes, max: e.limits.LayerBytes, layer: d.Digest}, diff)
	work, err := e.store.NewWorkDir("snap-")
	if err != nil {
		return nil, "", err
	}
	root := work.Path + "/root"
	if err := os.Mkdir(root, 0o755); err != nil {
		return work, "", err
	}
	o := layer.ExtractOptions{Lowers: lowers, MaxEntries: e.limits.LayerFiles, Limit: engine.EnvMaxLayerFiles + " sets the limit"}
	if _, ok := d.Annotations[estargz.TOCJSONDigestAnnotation]; ok {
		o.Skip = map[string]bool{estargz.TOCTarName: true, estargz.PrefetchLandmark: true, estargz.NoPrefetchLandmark: true}
	}
	if err := layer.Extract(tee, root, o); err != nil {
		var le *layer.LimitError
		if errors.As(err, &le) {
			err = &engine.LimitError{What: "layer " + d.Digest, Past: le.Error()}
		}
		return work, "", err
	}
	// What follows the tar's end (padding) is part of the diff ID too.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return work, "", err
	}
	if got := "sha256:" + hex.EncodeToString(diff.Sum(nil)); got != d.DiffID {
		return work, "", fmt.Errorf("layer %s uncompresses to %s, but the image config says %s", d.Digest, got, d.DiffID)
	}
	return work, root, nil
}

// ensureSnapshot extracts a layer from its blob if its snapshot is missing. below are the
// layers under it, bottom first.
func (e *Engine) ensureSnapshot(below []store.LayerDesc, l store.LayerDesc) error {
	if e.store.HasSnapshot(l.DiffID) {
		return nil
	}
	return e.fetchLayer(l, func() ([]string, error) {
		var lowers []string
		for i := len(below) - 1; i >= 0; i-- {
			lowers = append(lowers, e.store.SnapshotPath(below[i].DiffID))
		}
		return lowers, nil
	}, func(store.LayerDesc) (io.ReadCloser, error) {
		return nil, fmt.Errorf("blob %s: %w", l.Digest, store.ErrNotFound)
	}, nil)
}

// capped is a layer's uncompressed stream, which may hold at most left bytes more.
type capped struct {
	r     io.Reader
	left  int64
	layer string
	max   int64
}

func (c *capped) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.left -= int64(n); c.left < 0 {
		return n, &engine.LimitError{What: "layer " + c.layer, Past: fmt.Sprintf("uncompresses to more than %s: a decompression bomb, or a layer larger than strata takes (%s sets the limit)", engine.HumanBytes(c.max), engine.EnvMaxLayerSize)}
	}
	return n, err
}

// counter reports how many bytes were read, every mebibyte and at the end.
type counter struct {
	r      io.Reader
	n      int64
	last   int64
	report func(int64)
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n-c.last >= 1<<20 || (err == io.EOF && c.n != c.last) {
		c.last = c.n
		c.report(c.n)
	}
	return n, err
}

// Pull fetches an image from a registry, pinning a tag to its digest, and names it.
func (e *Engine) Pull(ctx context.Context, ref string, o engine.PullOptions) (_ *engine.Image, err error) {
	defer func() { err = e.explainFull(err, false) }()
	use, err := e.store.Use()
	if err != nil {
		return nil, err
	}
	defer use.Unlock()
	digest, err := e.ResolveImage(ctx, ref, engine.ResolveOptions{Pull: o.Pull})
	if err != nil {
		return nil, err
	}
	if _, err := e.localState(digest); err != nil {
		r, err := e.reg.ParseReference(ref)
		if err != nil {
			return nil, err
		}
		img, err := e.remoteImage(ctx, r.Context().Digest(digest).String(), nil)
		if err != nil {
			return nil, err
		}
		if _, err := e.fetch(ctx, img, ref, digest, o.Progress); err != nil {
			return nil, err
		}
	}
	var m v1.Manifest
	if err := e.readJSONBlob(digest, &m); err != nil {
		return nil, err
	}
	var size int64
	for _, l := range m.Layers {
		size += l.Size
	}
	n := o.Name
	if n == "" {
		n = ref
	}
	si := &store.Image{Name: n, Manifest: digest, Config: m.Config.Digest.String(), Size: size + m.Config.Size, Created: time.Now().UTC(), Source: ref}
	if err := e.store.PutImage(si); err != nil {
		return nil, err
	}
	return e.describe(si)
}

// Tag gives an image another name.
func (e *Engine) Tag(ctx context.Context, img *engine.Image, name string) error {
	if name == "" {
		return fmt.Errorf("the new name is empty")
	}
	var m v1.Manifest
	if err := e.readJSONBlob(img.Manifest, &m); err != nil {
		return err
	}
	si := &store.Image{Manifest: img.Manifest, Config: m.Config.Digest.String(), Keys: img.Keys, Methods: img.Methods, Size: img.Size, Engine: img.Engine}
	if img.Name != "" {
		if old, err := e.store.Image(img.Name); err == nil {
			si = old
		}
	}
	cp := *si
	cp.Name, cp.Created = name, time.Now().UTC()
	return e.store.PutImage(&cp)
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
