// Package engine is the seam between strata's SDK and the engines that build and run images:
// the Engine interface and the plain data types that cross it. The local engine
// (engine/local) is the default; a BuildKit engine plugs in behind the same interface.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/sbom"
	"github.com/strata-build/strata/spec"
)

// Engine builds resolved plans into images, keeps them, and runs containers of them.
//
// An Engine is opened on a store (the local engine's folder, or a daemon and its state) and
// closed when done. Its methods are safe for concurrent use, also by several processes on
// the same store: concurrent builds of one layer do the work once.
type Engine interface {
	// ResolveImage returns the manifest digest that an image reference stands for (a
	// registry reference, or the name of an image in the store), for the platform given. A
	// registry reference is pinned at its first resolution and keeps that digest until it
	// is resolved again with Pull; with Offline an unpinned reference is ErrNotFound.
	ResolveImage(ctx context.Context, ref string, o ResolveOptions) (string, error)
	// ImageConfig returns the config of the image ref resolved to digest: from the store,
	// or else from ref's registry, which sends the config alone (with Offline, ErrNotFound).
	// Frontends read what they need before the build from it, as BuildKit's
	// ResolveImageConfig: a Dockerfile's base image's ONBUILD triggers.
	ImageConfig(ctx context.Context, ref, digest string, o ResolveOptions) (*v1.ConfigFile, error)

	// Build builds the plan's layers, reusing every cached one, and returns the image.
	// A failed step is a *BuildError.
	Build(ctx context.Context, p Plan, o BuildOptions) (*Image, error)

	// Image finds an image by name, or by manifest digest; ErrNotFound if there is none.
	Image(ctx context.Context, ref string) (*Image, error)
	// Images lists the named images.
	Images(ctx context.Context) ([]*Image, error)
	// Remove removes an image's name; its layers stay cached until Prune.
	Remove(ctx context.Context, name string) error
	// Inspect describes an image: its config and its layers' blobs.
	Inspect(ctx context.Context, img *Image) (*Inspect, error)

	// Run runs a process in a new container of the image and removes the container after.
	// A process that exits non-zero is an *ExitError.
	Run(ctx context.Context, img *Image, o RunOptions) error

	// Start starts a process in a new container of the image and returns the container's id
	// without waiting: a detached container, which Stop stops and removes.
	Start(ctx context.Context, img *Image, o RunOptions) (string, error)
	// Containers lists the detached containers.
	Containers(ctx context.Context) ([]*Container, error)
	// ContainerLog opens a detached container's output.
	ContainerLog(ctx context.Context, id string) (io.ReadCloser, error)
	// Stop stops a detached container, SIGTERM then SIGKILL after grace, and removes it.
	Stop(ctx context.Context, id string, grace time.Duration) error

	// Export writes the image as an OCI layout folder or a docker-archive tarball.
	Export(ctx context.Context, img *Image, o ExportOptions) error

	// Push writes the image to a registry reference, its layers in the compression asked
	// for, and returns the pushed manifest's digest. Blobs the registry has are not sent.
	Push(ctx context.Context, img *Image, ref string, o PushOptions) (string, error)
	// Pull fetches an image from a registry into the store, pinning a tag to the digest
	// it has now, and names it.
	Pull(ctx context.Context, ref string, o PullOptions) (*Image, error)
	// Tag gives an image another name.
	Tag(ctx context.Context, img *Image, name string) error

	// Volume returns the local folder of a named volume, creating it when create is set.
	Volume(ctx context.Context, name string, create bool) (string, error)
	// Volumes lists the named volumes.
	Volumes(ctx context.Context) ([]string, error)
	// RemoveVolume removes a named volume and what it holds.
	RemoveVolume(ctx context.Context, name string) error

	// Log opens the build log of the layer with the given cache key.
	Log(ctx context.Context, key string) (io.ReadCloser, error)

	// Prune removes what no named image uses and, with o.Caches, empties the build caches.
	Prune(ctx context.Context, o PruneOptions) (*PruneReport, error)

	// Check verifies the store: every blob against its digest, every cache entry, variant
	// and image against the blobs and snapshots it names, and every snapshot that is a
	// layer's only copy against the layer's diff ID. It reports each problem with what repair
	// does; with o.Repair it does it, so that the next build rebuilds what was lost.
	Check(ctx context.Context, o CheckOptions) (*CheckReport, error)

	Close() error
}

// ErrNotFound is the class of errors about an image, layer or log that does not exist.
var ErrNotFound = errors.New("not found")

// ErrDiskFull is the class of errors about a full disk under the store.
var ErrDiskFull = errors.New("disk full")

// DiskFullError is a build, pull, export or push that ran out of space on the disk that
// holds the store (a step that filled it, or a write of strata's own), or on the disk an
// export writes to.
type DiskFullError struct {
	// Path is the store's folder, or with Output the folder the export was written to;
	// Free the bytes left there when the error was seen.
	Path   string
	Output bool
	Free   int64
	Err    error
}

func (e *DiskFullError) Error() string {
	if e.Output {
		return fmt.Sprintf("the disk holding %s is full (%s free now): free space on it, or export to another disk; what failed was not kept: %v", e.Path, HumanBytes(e.Free), e.Err)
	}
	return fmt.Sprintf("the disk holding the store %s is full (%s free now): free space on it, or set STRATA_HOME to a store on a larger disk; what failed was not kept: %v", e.Path, HumanBytes(e.Free), e.Err)
}

// Unwrap returns ErrDiskFull and the cause.
func (e *DiskFullError) Unwrap() []error { return []error{ErrDiskFull, e.Err} }

// HumanBytes writes a size for people: 1.5 GB, 12.0 MB, 3.2 kB, 12 B (binary multiples).
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Plan is a resolved image definition: its layers, keyed, the stages they read from, and
// its runtime mounts.
type Plan struct {
	Layers []*spec.Layer
	// Stages are built before (or beside) Layers, which copy or mount from them.
	Stages []spec.Stage
	Mounts []spec.Mount
}

// ResolveOptions say how ResolveImage may find a digest.
type ResolveOptions struct {
	// Platform is the image's platform, "linux/amd64".
	Platform string
	// Pull resolves the reference again at its registry, replacing its pin.
	Pull bool
	// Offline uses pins and local images only.
	Offline bool
	// Auth says how to log in to the reference's registry (nil: the user's docker config).
	Auth *spec.RegistryAuth
}

// BuildOptions change how a build uses the cache and reports progress.
type BuildOptions struct {
	// Name tags the result ("" leaves it unnamed).
	Name string
	// ForceBuild rebuilds every layer and replaces their cache entries.
	ForceBuild bool
	// IgnoreCache rebuilds every layer without reading or writing cache entries.
	IgnoreCache bool
	// Progress receives build events; nil discards them.
	Progress func(Event)
	// CacheFrom are repositories ("registry/name") holding layers other builds stored by
	// cache key: a layer found there is fetched instead of built.
	CacheFrom []string
	// CacheTo is a repository where every layer of the build is stored by its cache key.
	CacheTo string
	// Secrets are the values of build secrets by id (RUN --mount=type=secret,id=...), as
	// docker build --secret gives them. They reach no layer, key or log.
	Secrets map[string][]byte
	// SSH are agent sockets by id (RUN --mount=type=ssh,id=...), as docker build --ssh.
	SSH map[string]string
	// Program is a Linux build of the program whose Go functions the plan's run_function
	// layers run.
	Program string
}

// PushOptions say how to push an image.
type PushOptions struct {
	// Compression of the pushed layers: "gzip" (the default), "zstd" or "estargz".
	Compression string
	// MediaTypes are "oci" (the default) or "docker", for registries that predate OCI.
	MediaTypes string
	// Progress receives each layer's transfer.
	Progress func(Transfer)
	// Referrers are documents about the image (an SBOM) pushed with it as OCI artifacts
	// whose subject is the pushed manifest.
	Referrers []Referrer
}

// Referrer is a document attached to a pushed image.
type Referrer struct {
	// ArtifactType is the document's media type (application/spdx+json...).
	ArtifactType string
	// Document writes it for the manifest digest pushed, which differs from the stored one
	// when the push recompresses the layers or changes the media types.
	Document func(subject string) ([]byte, error)
}

// PullOptions say how to pull an image.
type PullOptions struct {
	// Name names the pulled image (default: the reference as given).
	Name string
	// Pull resolves a tag again even if it was pinned (default: the pinned digest).
	Pull bool
	// Progress receives each layer's transfer.
	Progress func(Transfer)
}

// Transfer is the progress of one blob going to or coming from a registry.
type Transfer struct {
	Digest string
	Size   int64
	// Done is how many bytes have gone so far.
	Done int64
	// Status is "pushing", "pulling", "exists" (the registry or the store had it), or
	// "done".
	Status string
}

// Image is a built image as an engine describes it.
type Image struct {
	// Name is its name ("" if unnamed).
	Name string
	// Manifest is the digest of its stored OCI manifest, whose layers built here are
	// uncompressed (their compressed blobs are made when first needed).
	Manifest string
	// Size is the size of its config and layers as stored (uncompressed for layers built here).
	Size int64
	// Keys and Methods are the cache key and chain method of each layer of its plan.
	Keys    []string
	Methods []string
	// Mounts are its runtime mounts (add_local_* without copy).
	Mounts  []Mount
	Created time.Time
	// Engine names the engine that built it when it is not the store's own ("buildkit"):
	// its layers are then its manifest's, not the cache records of its keys.
	Engine string
}

// Mount is a runtime mount of an image as recorded with it.
type Mount struct {
	Method string `json:"method"`
	Target string `json:"target"`
	// Files are the files listed when the image was built.
	Files []MountFile `json:"files"`
	// Sources, when set, are listed again when a container starts, so that it sees the
	// local files as they are then.
	Sources []spec.LocalSource `json:"sources,omitempty"`
}

// MountFile is one local file that a runtime mount places into containers.
type MountFile struct {
	// Path is its path in the container, without the leading "/".
	Path   string `json:"path"`
	Source string `json:"source"`
	Mode   uint32 `json:"mode"`
	Link   string `json:"link,omitempty"`
}

// MountsOf records a plan's runtime mounts.
func MountsOf(ms []spec.Mount) []Mount {
	var out []Mount
	for _, m := range ms {
		em := Mount{Method: m.Method, Target: m.Target, Sources: m.Sources}
		for _, f := range m.Files {
			em.Files = append(em.Files, MountFile{Path: f.Path, Source: f.Source, Mode: f.Mode, Link: f.Link})
		}
		out = append(out, em)
	}
	return out
}

// Inspect is what an engine tells about an image.
type Inspect struct {
	Name string `json:"name"`
	// ID is the digest of its config, which names its content whatever the compression.
	ID string `json:"id"`
	// Manifest is its manifest's digest as pushed and exported in the compression last asked
	// for (gzip if none was): the digest a registry gives it.
	Manifest string         `json:"manifest"`
	Config   *v1.ConfigFile `json:"config"`
	Layers   []LayerInfo    `json:"layers"`
	Mounts   []Mount        `json:"mounts,omitempty"`
}

// LayerInfo is one chain step of an image with the OCI layers it added.
type LayerInfo struct {
	Method string `json:"method"`
	Key    string `json:"key"`
	Blobs  []Blob `json:"blobs"`
	// Packages are the packages the step installed, changed or removed: what an unpinned
	// requirement resolved to when the layer was built.
	Packages *sbom.Changes `json:"packages,omitempty"`
}

// Blob is one OCI layer.
type Blob struct {
	Digest    string `json:"digest"`
	DiffID    string `json:"diff_id"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
}

// Status is the state of a layer in a build.
type Status string

// The statuses a layer goes through.
const (
	StatusCached Status = "cached"
	// StatusFetched is a layer taken from a registry cache (BuildOptions.CacheFrom).
	StatusFetched  Status = "fetched"
	StatusBuilding Status = "building"
	StatusDone     Status = "done"
	StatusFailed   Status = "failed"
	StatusLog      Status = "log"
)

// Event is one step of a build's progress.
type Event struct {
	Time  time.Time
	Index int
	Total int
	// Method is the chain method that made the layer; Title says what the layer does, when
	// the method does not (a Dockerfile's instruction).
	Method string
	Title  string
	Key    string
	Status Status
	// Size is the compressed size of the layer's blobs (done, cached).
	Size int64
	// Seconds is how long the layer took (done, failed).
	Seconds float64
	// Line is a line of build output (log).
	Line string
}

// BuildError is a failed build step.
type BuildError struct {
	Index   int
	Method  string
	Key     string
	Command string
	// ExitCode is the failed command's exit code (0 if the step failed otherwise).
	ExitCode int
	// Tail is the last lines of the step's log.
	Tail []string
	// Log is where the full log is, for the user to read.
	Log string
	Err error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "layer %d (%s) failed", e.Index, e.Method)
	if e.Command != "" {
		fmt.Fprintf(&b, ": %s", e.Command)
	}
	if e.ExitCode != 0 {
		fmt.Fprintf(&b, ": exit code %d", e.ExitCode)
		var full *DiskFullError
		if errors.As(e.Err, &full) {
			fmt.Fprintf(&b, ": the disk holding the store %s is full (%s free now): free space on it, or set STRATA_HOME to a store on a larger disk", full.Path, HumanBytes(full.Free))
		}
	} else if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if len(e.Tail) > 0 {
		b.WriteString("\n  last lines of the log:\n")
		for _, l := range e.Tail {
			b.WriteString("    " + l + "\n")
		}
	}
	if e.Log != "" {
		fmt.Fprintf(&b, "  full log: %s", e.Log)
	}
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

// ExitError is a process that ran in a container and exited non-zero, or was killed by a
// signal (Code is then 128 + the signal).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit code %d", e.Code) }

// ContainerEnv is set to "1" in every container that strata runs (not in build steps, and
// not in the image's config), so code can tell it is inside one.
const ContainerEnv = "STRATA_CONTAINER"

// RunOptions say what to run in a container of an image.
type RunOptions struct {
	// Entrypoint, when set, replaces the image's entrypoint (and its CMD).
	Entrypoint []string
	// Args replace the image's CMD (after its entrypoint); empty runs the CMD.
	Args []string
	// User runs the process as this user instead of the image's.
	User string
	// NoNetwork gives the container only a loopback interface instead of the host's network.
	NoNetwork bool
	// Volumes mount named volumes.
	Volumes []spec.VolumeMount
	// GPU asks for accelerators, passed through CDI.
	GPU *spec.GPU
	// Env are extra KEY=VALUE variables.
	Env []string
	// Secrets name local secrets given to the process as environment.
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

// Container is a detached container.
type Container struct {
	ID       string    `json:"id"`
	Image    string    `json:"image"`
	Manifest string    `json:"manifest"`
	Command  []string  `json:"command"`
	Started  time.Time `json:"started"`
	// Status is "running", "stopped" (the process exited) or "unknown".
	Status string `json:"status"`
}

// Bind mounts a local file or folder into a container.
type Bind struct {
	// Source is the local path, absolute.
	Source string
	// Target is the absolute path in the container.
	Target   string
	ReadOnly bool
}

// ExportOptions say how to write an image out.
type ExportOptions struct {
	// Format is "oci" (an image layout folder) or "docker" (a docker-archive tarball).
	Format string
	// Path is where to write; it must not exist.
	Path string
	// IncludeMounts adds the image's runtime-mounted files, as they are now, as a last layer.
	// Without it the export holds what was built, and not those files.
	IncludeMounts bool
	// Compression is the layers' compression, as for a push ("" is gzip).
	Compression string
}

// PruneOptions say what Prune removes beyond what no image uses.
type PruneOptions struct {
	// Caches empties the caches that make builds faster but hold no layer: the package
	// managers' download caches and the RUN --mount=type=cache folders.
	Caches bool
}

// PruneReport says what prune removed.
type PruneReport struct {
	Records   int
	Blobs     int
	Snapshots int
	Bytes     int64
	// Caches are the build caches emptied, with the bytes each held (Bytes counts them too).
	Caches []CacheUsage
}

// CheckOptions say whether Check repairs what it finds.
type CheckOptions struct {
	// Repair removes what is broken: blobs whose bytes do not match their digest, snapshots
	// that no longer hold their layer, and the cache entries and variants that name them.
	// Images are not removed: a broken one is reported, to be built or pulled again.
	Repair bool
}

// CheckReport is what Check verified and what it found.
type CheckReport struct {
	Blobs     int `json:"blobs"`
	Snapshots int `json:"snapshots"`
	Records   int `json:"records"`
	Images    int `json:"images"`
	// Problems are what is wrong, each with what repair does (or did).
	Problems []Problem `json:"problems"`
}

// Problem is one thing Check found wrong in the store.
type Problem struct {
	// Object names it: "blob sha256:...", "snapshot sha256:...", "cache entry sha256:...",
	// "variant gzip of sha256:...", "image NAME".
	Object string `json:"object"`
	// Err says what is wrong with it.
	Err string `json:"error"`
	// Repair says what repair does, and Repaired whether it was done.
	Repair   string `json:"repair"`
	Repaired bool   `json:"repaired"`
}

// CacheUsage is a build cache and the bytes it holds.
type CacheUsage struct {
	// Name is a package manager's (apt, pip, uv, poetry, micromamba), or "cache-mounts" for
	// the folders of RUN --mount=type=cache.
	Name  string
	Bytes int64
}

// Opener opens a named engine that keeps its images in the local store st; addr is the
// daemon's address given on the command line or to the SDK ("" for the engine's default).
type Opener func(ctx context.Context, st Engine, addr string) (Engine, error)

var (
	openersMu sync.Mutex
	openers   = map[string]Opener{}
)

// Register makes an engine available by name, from the init function of the package that
// implements it (engine/buildkit), as database/sql drivers register.
func Register(name string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	openers[name] = open
}

// Lookup returns the opener of a registered engine.
func Lookup(name string) (Opener, bool) {
	openersMu.Lock()
	defer openersMu.Unlock()
	o, ok := openers[name]
	return o, ok
}
