package strata

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/sbom"
)

// Build resolves the image and builds it with the engine the options name (the local
// engine on Home() by default), reusing every cached layer. The returned image keeps that
// engine open for its methods.
func (img Image) Build(ctx context.Context, opts ...Option) (*Built, error) {
	c, err := Open(opts...)
	if err != nil {
		return nil, err
	}
	b, err := c.Build(ctx, img, opts...)
	if err != nil {
		c.Close()
		return nil, err
	}
	return b, nil
}

// Run builds the image (reusing the cache) and runs args in a container of it, with stdout
// and stderr going to the process's own unless o says otherwise.
func (img Image) Run(ctx context.Context, args []string, o RunOptions, opts ...Option) error {
	b, err := img.Build(ctx, opts...)
	if err != nil {
		return err
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	o.Args = args
	return b.Run(ctx, o)
}

// RunOptions say how to run a process in a container of an image.
type RunOptions struct {
	// Entrypoint, when set, replaces the image's entrypoint, and its CMD.
	Entrypoint []string
	// Args replace the image's CMD (after its entrypoint); empty runs the CMD.
	Args []string
	// User runs the process as this user ("name", "uid", "uid:gid") instead of the image's.
	User string
	// NoNetwork gives the container only a loopback interface instead of the host's network.
	NoNetwork bool
	// Volumes mount named volumes by absolute path: {"/data": "my-volume"}.
	Volumes map[string]string
	// GPU asks for accelerators: "H100", "a10g:2", "any".
	GPU string
	// Env are extra KEY=VALUE variables.
	Env []string
	// Secrets name secrets whose pairs the process gets as environment.
	Secrets []string
	// Binds mount local files or folders into the container.
	Binds []Bind
	// Workdir overrides the image's working folder.
	Workdir string
	// Terminal gives the process a pseudo-terminal.
	Terminal bool
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	// Signals are forwarded to the process.
	Signals <-chan os.Signal
}

// Bind mounts a local file or folder (read-write unless ReadOnly) into a container.
type Bind struct {
	// Source is the local path; a relative one is taken from the working folder.
	Source string
	// Target is the absolute path in the container.
	Target   string
	ReadOnly bool
}

// Run runs a process in a new container of the image, with its runtime mounts in place, and
// removes the container after. A process that exits non-zero gives an *ExitError.
func (b *Built) Run(ctx context.Context, o RunOptions) error {
	eo, err := b.engineRunOptions(o)
	if err != nil {
		return err
	}
	return fromEngine(b.c.eng.Run(ctx, b.img, eo))
}

// engineRunOptions checks run options and turns them into the engine's.
func (b *Built) engineRunOptions(o RunOptions) (engine.RunOptions, error) {
	eo := engine.RunOptions{
		Entrypoint: o.Entrypoint, Args: o.Args, User: o.User, NoNetwork: o.NoNetwork,
		Env: o.Env, Secrets: o.Secrets, Workdir: o.Workdir, Terminal: o.Terminal,
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Signals: o.Signals,
	}
	var err error
	if eo.Volumes, err = volumeMounts(o.Volumes); err != nil {
		return eo, err
	}
	if eo.GPU, err = ParseGPU(o.GPU); err != nil {
		return eo, fmt.Errorf("gpu: %w", err)
	}
	for _, bind := range o.Binds {
		src, err := absPath(bind.Source)
		if err != nil {
			return eo, err
		}
		eo.Binds = append(eo.Binds, engine.Bind{Source: src, Target: bind.Target, ReadOnly: bind.ReadOnly})
	}
	return eo, nil
}

// ExportOptions say how to write an image out.
type ExportOptions struct {
	// Format is "oci" (an OCI image layout folder, the default) or "docker" (a
	// docker-archive tarball that docker load and podman load read).
	Format string
	// IncludeMounts adds the image's runtime-mounted files (add_local_* without copy), as
	// they are now, as a last layer. Without it they are not in the export: see Mounts.
	IncludeMounts bool
	// Compression is the layers' compression: "gzip" (the default), "zstd" or "estargz"
	// (OCI layouts only). Each layer is compressed once and kept, as for a push.
	Compression string
}

// Export writes the image to path, which must not exist.
func (b *Built) Export(ctx context.Context, path string, o ExportOptions) error {
	if o.Format == "" {
		o.Format = "oci"
	}
	return fromEngine(b.c.eng.Export(ctx, b.img, engine.ExportOptions{Format: o.Format, Path: path, IncludeMounts: o.IncludeMounts, Compression: o.Compression}))
}

// PushOptions say how to push an image.
type PushOptions struct {
	// Compression of the layers: "gzip" (the default), "zstd", or "estargz" (gzip with a
	// table of contents, which lazy-pulling runtimes use to start before the whole image is
	// there). Each layer is recompressed once and kept, so pushing again compresses nothing.
	Compression string
	// MediaTypes are "oci" (the default) or "docker", for registries that predate OCI.
	MediaTypes string
	// Progress receives each layer's transfer.
	Progress func(Transfer)
	// SBOM, "spdx" or "cyclonedx", attaches the image's SBOM (as Built.SBOM writes it) to
	// the pushed image as an OCI referrer: an artifact of type application/spdx+json or
	// application/vnd.cyclonedx+json whose subject is the image's manifest.
	SBOM string
}

// Push writes the image to a registry reference and returns the pushed manifest's digest.
// Layers the registry already has are not sent; layers it has in another repository are
// mounted from there.
func (b *Built) Push(ctx context.Context, ref string, o PushOptions) (string, error) {
	eo := engine.PushOptions{Compression: o.Compression, MediaTypes: o.MediaTypes, Progress: transferFunc(o.Progress)}
	if o.SBOM != "" {
		// Checked before the push: a format or an image strata cannot describe fails it.
		if _, err := b.SBOM(ctx, o.SBOM); err != nil {
			return "", err
		}
		eo.Referrers = append(eo.Referrers, engine.Referrer{ArtifactType: sbom.Formats[o.SBOM], Document: func(subject string) ([]byte, error) {
			return b.sbom(ctx, o.SBOM, subject)
		}})
	}
	d, err := b.c.eng.Push(ctx, b.img, ref, eo)
	return d, fromEngine(err)
}

// Tag gives the image another name in the store.
func (b *Built) Tag(ctx context.Context, name string) error {
	return fromEngine(b.c.eng.Tag(ctx, b.img, name))
}

// Transfer is the progress of one layer going to or coming from a registry.
type Transfer struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// Done is how many bytes have gone so far.
	Done int64 `json:"done"`
	// Status is "pushing", "pulling", "exists" (the registry or the store had it), or "done".
	Status string `json:"status"`
}

func transferFunc(f func(Transfer)) func(engine.Transfer) {
	if f == nil {
		return nil
	}
	return func(t engine.Transfer) { f(Transfer(t)) }
}

// Inspect is what strata inspect shows of an image.
type Inspect struct {
	Name string `json:"name"`
	// ID is the digest of the image's config: its content, whatever the compression.
	ID string `json:"id"`
	// Manifest is the manifest's digest as a push or export gives it, in the compression the
	// last of them asked for (gzip if none did). Layers built here are kept uncompressed, as
	// their snapshots; their compressed blobs are made on first need and kept.
	Manifest string         `json:"manifest"`
	Config   *v1.ConfigFile `json:"config"`
	Layers   []InspectLayer `json:"layers"`
	Mounts   []MountInfo    `json:"mounts,omitempty"`
}

// InspectLayer is one layer of an image's definition with the OCI layers it added.
type InspectLayer struct {
	Method string `json:"method"`
	Key    string `json:"key"`
	Blobs  []Blob `json:"blobs"`
	// Packages are the packages the layer installed, changed or removed (Debian packages,
	// Python distributions, conda packages): what its requirements resolved to when it was
	// built.
	Packages *sbom.Changes `json:"packages,omitempty"`
}

// Blob is one OCI layer blob.
type Blob struct {
	Digest    string `json:"digest"`
	DiffID    string `json:"diff_id"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
}

// Inspect describes the image: its config, and the blobs of each layer.
func (b *Built) Inspect(ctx context.Context) (*Inspect, error) {
	in, err := b.c.eng.Inspect(ctx, b.img)
	if err != nil {
		return nil, fromEngine(err)
	}
	out := &Inspect{Name: in.Name, ID: in.ID, Manifest: in.Manifest, Config: in.Config, Mounts: b.Mounts}
	for _, l := range in.Layers {
		il := InspectLayer{Method: l.Method, Key: l.Key, Packages: l.Packages}
		for _, bl := range l.Blobs {
			il.Blobs = append(il.Blobs, Blob(bl))
		}
		out.Layers = append(out.Layers, il)
	}
	return out, nil
}

// SBOM writes the image's packages, as the metadata of their package managers in its
// layers lists them, as an SPDX 2.3 ("spdx") or CycloneDX 1.6 ("cyclonedx") JSON document.
// The same image always gives the same document.
func (b *Built) SBOM(ctx context.Context, format string) ([]byte, error) {
	return b.sbom(ctx, format, "")
}

// sbom writes the SBOM for the image as stored, or as pushed with the manifest digest given.
func (b *Built) sbom(ctx context.Context, format, digest string) ([]byte, error) {
	in, err := b.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	var layers []sbom.Changes
	for i, l := range in.Layers {
		if l.Packages == nil {
			return nil, fmt.Errorf("layer %d (%s, %s): its packages could not be listed (see strata logs for the layer); rebuild it with force_build to list them", i, l.Method, l.Key)
		}
		layers = append(layers, *l.Packages)
	}
	if digest == "" {
		digest = in.Manifest
	}
	return sbom.Document(format, sbom.Image{
		Name:     in.Name,
		Digest:   digest,
		Created:  in.Config.Created.Time,
		Tool:     "strata " + BuilderVersion,
		Packages: sbom.Fold(layers),
	})
}

// Status is the state of a layer in a build.
type Status string

// The statuses a layer goes through.
const (
	StatusCached Status = "cached"
	// StatusFetched is a layer taken from a registry cache (WithCacheFrom).
	StatusFetched  Status = "fetched"
	StatusBuilding Status = "building"
	StatusDone     Status = "done"
	StatusFailed   Status = "failed"
	StatusLog      Status = "log"
)

// Event is one step of a build's progress; see WithProgress.
type Event struct {
	Time   time.Time `json:"time"`
	Index  int       `json:"layer"`
	Total  int       `json:"total"`
	Method string    `json:"method"`
	// Title says what the layer does when its method does not (a Dockerfile instruction).
	Title  string `json:"title,omitempty"`
	Key    string `json:"key"`
	Status Status `json:"status"`
	// Size is the compressed size of the layer's blobs (done, cached).
	Size int64 `json:"size,omitempty"`
	// Seconds is how long the layer took (done, failed).
	Seconds float64 `json:"seconds,omitempty"`
	// Line is a line of build output (log).
	Line string `json:"line,omitempty"`
}

func eventOf(ev engine.Event) Event {
	return Event{Time: ev.Time, Index: ev.Index, Total: ev.Total, Method: ev.Method, Title: ev.Title, Key: ev.Key,
		Status: Status(ev.Status), Size: ev.Size, Seconds: ev.Seconds, Line: ev.Line}
}
