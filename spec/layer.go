package spec

import (
	"io/fs"
	"sort"
)

// Op names an instruction, as in a Dockerfile.
type Op string

// The instructions a layer can hold.
const (
	OpRun         Op = "RUN"
	OpEnv         Op = "ENV"
	OpWorkdir     Op = "WORKDIR"
	OpCopy        Op = "COPY"
	OpAdd         Op = "ADD"
	OpUser        Op = "USER"
	OpEntrypoint  Op = "ENTRYPOINT"
	OpCmd         Op = "CMD"
	OpShell       Op = "SHELL"
	OpLabel       Op = "LABEL"
	OpExpose      Op = "EXPOSE"
	OpArg         Op = "ARG"
	OpVolume      Op = "VOLUME"
	OpStopSignal  Op = "STOPSIGNAL"
	OpHealthcheck Op = "HEALTHCHECK"
	OpOnbuild     Op = "ONBUILD"
	OpMaintainer  Op = "MAINTAINER"
)

// Instruction is one Dockerfile-level instruction. Words are kept as a Dockerfile holds them
// (quoted, with $VARIABLES unexpanded); the engine expands them at build time exactly as a
// Dockerfile builder does, so a Dockerfile and the SDK mean the same thing.
type Instruction struct {
	Op Op `json:"op"`
	// Flags are the instruction's --flags, verbatim ("--chmod=755", "--from=image").
	Flags []string `json:"flags,omitempty"`
	// Args are the instruction's words. RUN, CMD and ENTRYPOINT in shell form hold one string;
	// in exec form (JSON is true) they hold the argv. COPY and ADD hold sources then the
	// destination.
	Args []string `json:"args,omitempty"`
	// JSON marks the exec (JSON array) form.
	JSON bool `json:"json,omitempty"`
	// Pairs are the key=value words of ENV, LABEL and ARG.
	Pairs []KV `json:"pairs,omitempty"`
	// Heredocs are the here-documents of a RUN or COPY, in order.
	Heredocs []Heredoc `json:"heredocs,omitempty"`
	// Line is where the instruction is in its Dockerfile, for messages; not in the key.
	Line int `json:"-"`
}

// Heredoc is a here-document: the text between "<<NAME" and the line "NAME".
type Heredoc struct {
	Name    string `json:"name"`
	Content string `json:"content"`
	// Expand is false when the delimiter was quoted: its $VARIABLES stay as written.
	Expand bool `json:"expand,omitempty"`
	// Chomp strips leading tabs ("<<-NAME").
	Chomp bool `json:"chomp,omitempty"`
}

// KV is one key=value pair. For ARG, NoValue marks a declaration without a default.
type KV struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	NoValue bool   `json:"no_value,omitempty"`
}

// BaseKind says where a root layer's filesystem comes from.
type BaseKind string

// The kinds of base.
const (
	// BaseDebian is bootstrapped from Debian's packages (debian_slim).
	BaseDebian BaseKind = "debian"
	// BaseRegistry is pulled from an OCI registry (from_registry, from_dockerfile's FROM).
	BaseRegistry BaseKind = "registry"
	// BaseScratch is empty (from_scratch, FROM scratch).
	BaseScratch BaseKind = "scratch"
)

// Base is the start of a root layer.
type Base struct {
	Kind BaseKind `json:"kind"`
	// Ref is the image reference for BaseRegistry, and the equivalent public image that an
	// exported Dockerfile starts FROM for BaseDebian.
	Ref string `json:"ref,omitempty"`
	// Auth names how a private registry is reached; nil means anonymous.
	Auth *RegistryAuth `json:"auth,omitempty"`
	// Suite and Packages define a BaseDebian bootstrap.
	Suite    string   `json:"suite,omitempty"`
	Packages []string `json:"packages,omitempty"`
	// Python is the Python series the base provides, when known.
	Python string `json:"python,omitempty"`
	// Digest is the manifest digest Ref was resolved to. When set, the cache key holds it
	// instead of Ref, and the engine builds from exactly that content.
	Digest string `json:"digest,omitempty"`
	// Platform is what the image is built for, "linux/amd64": the host's.
	Platform string `json:"platform,omitempty"`
}

// ImageRef is an image a layer reads from (COPY --from, RUN --mount from=): as written, and
// the manifest digest it was resolved to; or a stage of the same plan, with the cache key of
// its last layer as its digest.
type ImageRef struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest,omitempty"`
	// Stage names a stage of the plan (Plan.Stages) when the reference is one.
	Stage string `json:"stage,omitempty"`
}

// FunctionRef is a Go function a layer runs (run_function): the program's function of that
// name, with its source identity and JSON arguments. The layer is what the function leaves
// in the file system.
type FunctionRef struct {
	// Name is the function's registered (runtime) name.
	Name string `json:"name"`
	// Source is the hash of the function's source and of the same-module functions it
	// calls (gofunc.Identity).
	Source string `json:"source"`
	// Args are the function's arguments, as JSON.
	Args string `json:"args,omitempty"`
	// Timeout stops the function after this many seconds; not in the key.
	Timeout int64 `json:"-"`
}

// RemoteRef is a URL or git repository an ADD downloads: as written, and the version of
// its content found when the plan was resolved ("" when it could not be known).
type RemoteRef struct {
	Ref     string `json:"ref"`
	Version string `json:"version,omitempty"`
}

// Stage is a chain of layers that other layers read from (a multi-stage Dockerfile's
// stages other than the target).
type Stage struct {
	Name   string   `json:"name"`
	Layers []*Layer `json:"layers"`
}

// RegistryAuth says how to log in to a registry: Type is "static", "aws" or "gcp", and
// Secret names the local secret that holds the credentials (never their values).
type RegistryAuth struct {
	Type   string `json:"type"`
	Secret string `json:"secret"`
}

// ContextFile is one local file (or directory, or symlink) that a layer's COPY can read.
type ContextFile struct {
	// Path is where the file sits in the layer's build context, slash-separated and relative.
	Path string `json:"path"`
	// Source is the local path it is read from. It is not part of the cache key, so the same
	// content at another place on disk shares a key.
	Source string `json:"-"`
	// Mode holds the permission bits and the type (directory, symlink) as in io/fs.
	Mode uint32 `json:"mode"`
	// Size is the file's length in bytes.
	Size int64 `json:"-"`
	// Link is a symlink's target.
	Link string `json:"link,omitempty"`
	// Digest is "sha256:<hex>" of a regular file's content.
	Digest string `json:"digest,omitempty"`
	// Info is the file's stat when it was listed, if known; hashing uses it to skip files
	// whose digest it remembers without another system call.
	Info fs.FileInfo `json:"-"`
	// Remote marks a file ADD downloaded, which, unlike a local archive, it does not unpack.
	Remote bool `json:"-"`
}

// GPU is a request for accelerators during a build step.
type GPU struct {
	Type  string `json:"type"`
	Count int    `json:"count"`
}

// VolumeMount mounts a named volume into the build container at Path. What a step writes
// there is not part of the layer.
type VolumeMount struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// Artifact is a named, versioned archive that the builder fetches into a layer's context
// (for example a python-build-standalone release for add_python). It is keyed by its
// digest, never by where it is fetched from.
type Artifact struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Path is the archive's top folder, where its files appear in the layer's build context.
	Path string `json:"path"`
	// Digest is the sha256 of the archive (a .tar.gz), checked before it is used.
	Digest string `json:"digest"`
	// URL is where the archive is fetched from when the store does not have it.
	URL string `json:"url,omitempty"`
}

// Layer is one step of an image: what one chain method produced.
type Layer struct {
	// Method is the chain method that made the layer (apt_install, run_commands...).
	Method string `json:"method"`
	// Title says what the layer does, for people ("[builder 2/5] RUN make"); not in the key.
	Title string `json:"title,omitempty"`
	// Scope names the Dockerfile stage the layer is part of: a layer continues the ARG
	// values of its parent when both have the same scope, as instructions of one stage do.
	Scope string `json:"scope,omitempty"`
	// Escape is the Dockerfile's escape character, when it is not the backslash.
	Escape string `json:"escape,omitempty"`
	// Base is set on root layers only.
	Base         *Base         `json:"base,omitempty"`
	Instructions []Instruction `json:"instructions"`
	// Context is the set of local files the layer's COPY and ADD can read.
	Context []ContextFile `json:"context,omitempty"`
	// Sources are the local files and folders an add_local_* layer's Context was listed
	// from. Not in the key (its files are) nor in the plan's JSON.
	Sources []LocalSource `json:"-"`
	// Artifacts are builder-provided context inputs.
	Artifacts []Artifact `json:"artifacts,omitempty"`
	// Env is build-time environment for the layer's RUN steps; it does not persist in the image.
	Env []KV `json:"env,omitempty"`
	// Secrets name the local secrets whose keys and values become environment of the RUN steps.
	Secrets []string `json:"secrets,omitempty"`
	// BuildArgs fill ARG declarations.
	BuildArgs []KV `json:"build_args,omitempty"`
	// GlobalArgs are the values of the ARGs a Dockerfile declares before its FROM; an ARG
	// declared again without a value in the stage takes its value from here, as in Docker.
	GlobalArgs []KV `json:"global_args,omitempty"`
	// ProxyEnv are the proxy build args (HTTP_PROXY...) that RUN steps see without an ARG.
	// As in Docker, they are in no cache key and no history.
	ProxyEnv []KV `json:"proxy_env,omitempty"`
	// Images are the images the layer's COPY --from instructions read, with their digests.
	Images []ImageRef `json:"images,omitempty"`
	// Remote are the URLs and git repositories the layer's ADD instructions download, with
	// what identifies their content now (a commit, an ETag), so that a change rebuilds.
	Remote []RemoteRef `json:"remote,omitempty"`
	// SourceDateEpoch, when set, clamps the times of the layer's files and of its config and
	// history entries (Unix seconds), and is given to its RUN steps as SOURCE_DATE_EPOCH.
	SourceDateEpoch *int64 `json:"source_date_epoch,omitempty"`
	GPU             *GPU   `json:"gpu,omitempty"`
	// Volumes are mounted during the RUN steps and are not part of the layer.
	Volumes []VolumeMount `json:"volumes,omitempty"`
	// Function is the Go function the layer runs (run_function), instead of instructions.
	Function *FunctionRef `json:"function,omitempty"`
	// ForceBuild rebuilds the layer even on a cache hit and replaces the cached entry.
	ForceBuild bool `json:"force_build,omitempty"`
	// Caches name the package managers' download caches (apt, pip, uv, poetry, micromamba)
	// that the builder keeps on its host and lends to the layer's steps, as BuildKit's cache
	// mounts. They make a build faster, never different, and are in no key.
	Caches []string `json:"caches,omitempty"`

	// Parent and Key are filled by resolution.
	Parent string `json:"parent,omitempty"`
	Key    string `json:"key,omitempty"`
}

// Mount is local content that is placed into containers of the image when they start
// (add_local_* without copy). It is not part of any layer and never changes a cache key.
type Mount struct {
	Method string `json:"method"`
	// Target is the absolute path inside the container, for display.
	Target string `json:"target"`
	// Files are the mounted files as listed at resolve time, with Path relative to "/".
	Files []ContextFile `json:"files"`
	// Sources say how to list the files again when a container starts, so that it sees the
	// local files as they are then. Nil when a Go ignore function decides what is left out.
	Sources []LocalSource `json:"sources,omitempty"`
}

// LocalSource is a local file or folder placed at a path in the image.
type LocalSource struct {
	// Local is the absolute local path.
	Local string `json:"local"`
	// Prefix is the destination without the leading "/".
	Prefix string `json:"prefix"`
	// Ignore are dockerignore patterns, relative to Local.
	Ignore []string `json:"ignore,omitempty"`
	// PythonSource leaves out all but *.py files and __pycache__ (add_local_python_source).
	PythonSource bool `json:"python_source,omitempty"`
}

// SortedKVs returns the pairs of m sorted by key.
func SortedKVs(m map[string]string) []KV {
	if len(m) == 0 {
		return nil
	}
	kvs := make([]KV, 0, len(m))
	for k, v := range m {
		kvs = append(kvs, KV{Key: k, Value: v})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	return kvs
}
