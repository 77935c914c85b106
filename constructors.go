package strata

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
)

// DebianSlimOptions are the parameters of debian_slim.
type DebianSlimOptions struct {
	// PythonVersion is a series from "3.10" to "3.14" ("3.13" by default): Debian's Python
	// for 3.11, 3.13 and 3.14, a python-build-standalone build in /usr/local for the others.
	PythonVersion string `yaml:"python_version"`
	ForceBuild    bool   `yaml:"force_build"`
}

// DebianSlim is a slim Debian with Python, pip, venv and a C toolchain, bootstrapped from the
// Debian suite that ships the requested Python ("" means DefaultPython).
func DebianSlim(pythonVersion string) Image {
	return DebianSlimWith(DebianSlimOptions{PythonVersion: pythonVersion})
}

// DebianSlimWith is DebianSlim with all options.
func DebianSlimWith(o DebianSlimOptions) Image {
	return newRoot("debian_slim", o.ForceBuild, func(r *resolver) ([]*spec.Layer, error) {
		return debianSlim(o.PythonVersion, r.platform)
	})
}

// MicromambaOptions are the parameters of micromamba.
type MicromambaOptions struct {
	PythonVersion string `yaml:"python_version"`
	ForceBuild    bool   `yaml:"force_build"`
}

// MicromambaImage is the micromamba base image that Micromamba starts from.
// STRATA_MICROMAMBA_IMAGE names another (a mirror, or a pinned digest).
const MicromambaImage = "mambaorg/micromamba:2.1.1-debian12-slim"

// micromambaImage is MicromambaImage, or the image STRATA_MICROMAMBA_IMAGE names.
func micromambaImage() (string, error) {
	ref := os.Getenv("STRATA_MICROMAMBA_IMAGE")
	if ref == "" {
		return MicromambaImage, nil
	}
	if _, err := checkRef(ref); err != nil {
		return "", fmt.Errorf("STRATA_MICROMAMBA_IMAGE: %w", err)
	}
	return ref, nil
}

// Micromamba is the micromamba base image with Python installed from conda-forge.
func Micromamba(pythonVersion string) Image {
	return MicromambaWith(MicromambaOptions{PythonVersion: pythonVersion})
}

// MicromambaWith is Micromamba with all options.
func MicromambaWith(o MicromambaOptions) Image {
	return newRoot("micromamba", o.ForceBuild, func(*resolver) ([]*spec.Layer, error) {
		v := o.PythonVersion
		if v == "" {
			v = DefaultPython
		}
		series, err := checkPython(v)
		if err != nil {
			return nil, fmt.Errorf("python_version: %w", err)
		}
		if strings.HasSuffix(series, "t") {
			return nil, fmt.Errorf("python_version %q: free-threaded Python is not supported with micromamba", v)
		}
		if !slices.Contains(micromambaPython, series) {
			return nil, fmt.Errorf("python_version %q is not supported by micromamba: use one of %s", v, strings.Join(micromambaPython, ", "))
		}
		ref, err := micromambaImage()
		if err != nil {
			return nil, err
		}
		return []*spec.Layer{{
			Base: &spec.Base{Kind: spec.BaseRegistry, Ref: ref, Python: series},
			Instructions: []spec.Instruction{
				{Op: spec.OpShell, JSON: true, Args: []string{"/usr/local/bin/_dockerfile_shell.sh"}},
				{Op: spec.OpEnv, Pairs: []spec.KV{{Key: "MAMBA_DOCKERFILE_ACTIVATE", Value: "1"}}},
				run("micromamba install -n base -y python=" + v + " pip -c conda-forge"),
			},
		}}, nil
	})
}

// FromRegistryOptions are the parameters of from_registry, from_aws_ecr and
// from_gcp_artifact_registry.
type FromRegistryOptions struct {
	// Tag is the image reference, such as "python:3.13-slim" or "registry:5000/app:v1".
	Tag string `yaml:"tag"`
	// Secret names a local secret with the registry's credentials: REGISTRY_USERNAME and
	// REGISTRY_PASSWORD for from_registry; AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
	// AWS_REGION for ECR; SERVICE_ACCOUNT_JSON for GCP.
	Secret string `yaml:"secret"`
	// AddPython installs a python-build-standalone Python ("3.12") into /usr/local.
	AddPython string `yaml:"add_python"`
	// SetupDockerfileCommands are Dockerfile lines run in the root layer after the pull.
	SetupDockerfileCommands []string `yaml:"setup_dockerfile_commands"`
	ForceBuild              bool     `yaml:"force_build"`
}

// FromRegistry starts from an image in a registry: Docker Hub, any OCI registry, or a plain
// http registry on localhost.
func FromRegistry(tag string) Image { return FromRegistryWith(FromRegistryOptions{Tag: tag}) }

// FromRegistryWith is FromRegistry with all options.
func FromRegistryWith(o FromRegistryOptions) Image {
	return fromRegistry("from_registry", "static", o)
}

// FromAWSECR starts from a private image in AWS Elastic Container Registry, logging in with
// the AWS credentials in the named secret.
func FromAWSECR(tag, secret string) Image {
	return FromAWSECRWith(FromRegistryOptions{Tag: tag, Secret: secret})
}

// FromAWSECRWith is FromAWSECR with all options.
func FromAWSECRWith(o FromRegistryOptions) Image { return fromRegistry("from_aws_ecr", "aws", o) }

// FromGCPArtifactRegistry starts from a private image in Google Artifact Registry (or
// gcr.io), logging in with the service account JSON in the named secret.
func FromGCPArtifactRegistry(tag, secret string) Image {
	return FromGCPArtifactRegistryWith(FromRegistryOptions{Tag: tag, Secret: secret})
}

// FromGCPArtifactRegistryWith is FromGCPArtifactRegistry with all options.
func FromGCPArtifactRegistryWith(o FromRegistryOptions) Image {
	return fromRegistry("from_gcp_artifact_registry", "gcp", o)
}

// cloudSecretKeys are what the secret of a cloud registry login holds.
var cloudSecretKeys = map[string]string{
	"aws": "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION",
	"gcp": "SERVICE_ACCOUNT_JSON",
}

func fromRegistry(method, authType string, o FromRegistryOptions) Image {
	return newRoot(method, o.ForceBuild, func(r *resolver) ([]*spec.Layer, error) {
		if _, err := checkRef(o.Tag); err != nil {
			return nil, err
		}
		// Whether the host is the cloud's is checked when the credentials are read: an
		// ECR- or GCP-compatible endpoint named in the secret may serve any host.
		if needs := cloudSecretKeys[authType]; needs != "" && o.Secret == "" {
			return nil, fmt.Errorf("%s needs a secret with %s", method, needs)
		}
		base := &spec.Base{Kind: spec.BaseRegistry, Ref: o.Tag}
		if o.Secret != "" {
			if !nameRE.MatchString(o.Secret) {
				return nil, fmt.Errorf("secret: %q is not a secret name", o.Secret)
			}
			base.Auth = &spec.RegistryAuth{Type: authType, Secret: o.Secret}
		}
		l := &spec.Layer{Base: base}
		if o.AddPython != "" {
			ins, art, err := addPython(o.AddPython, r.platform)
			if err != nil {
				return nil, err
			}
			l.Instructions = append(l.Instructions, ins...)
			l.Artifacts = []spec.Artifact{*art}
			base.Python = strings.TrimSuffix(o.AddPython, "-gnu")
		}
		if len(o.SetupDockerfileCommands) > 0 {
			df, err := spec.ParseDockerfile(strings.NewReader(strings.Join(o.SetupDockerfileCommands, "\n")), false)
			if err != nil {
				return nil, fmt.Errorf("setup_dockerfile_commands: %w", err)
			}
			ins := df.Stages[0].Instructions
			if err := noLocalCopies(ins); err != nil {
				return nil, fmt.Errorf("setup_dockerfile_commands: %w", err)
			}
			l.Instructions = append(l.Instructions, ins...)
		}
		return []*spec.Layer{l}, nil
	})
}

func checkRef(tag string) (name.Reference, error) {
	if tag == "" {
		return nil, fmt.Errorf("tag is empty: give an image reference such as \"python:3.13-slim\"")
	}
	ref, err := name.ParseReference(tag)
	if err != nil {
		return nil, fmt.Errorf("tag %q is not an image reference: %v", tag, err)
	}
	return ref, nil
}

// noLocalCopies rejects COPY and ADD from local files where a layer has no build context.
func noLocalCopies(ins []spec.Instruction) error {
	for _, in := range ins {
		if in.Op != spec.OpCopy && in.Op != spec.OpAdd {
			continue
		}
		flags, err := in.CopyFlags()
		if err != nil {
			return err
		}
		if flags.From == "" {
			return fmt.Errorf("%s needs local files, which this step has no context for; use dockerfile_commands or add_local_file(copy=true) after it", in.String())
		}
	}
	return nil
}

// FromScratch is an empty image.
func FromScratch() Image {
	return newRoot("from_scratch", false, func(*resolver) ([]*spec.Layer, error) {
		return []*spec.Layer{{Base: &spec.Base{Kind: spec.BaseScratch}}}, nil
	})
}

// FromDockerfileOptions are the parameters of from_dockerfile.
type FromDockerfileOptions struct {
	// Path is the Dockerfile.
	Path string `yaml:"path"`
	// ContextDir is the build context COPY reads from (default: the working directory, or the
	// spec file's folder).
	ContextDir string `yaml:"context_dir"`
	// BuildArgs fill the Dockerfile's ARGs.
	BuildArgs map[string]string `yaml:"build_args"`
	// Target is the stage to build (default: the last).
	Target string `yaml:"target"`
	// Ignore are dockerignore patterns for the context. When nil, strata reads
	// <Dockerfile>.dockerignore or .dockerignore beside the Dockerfile, or .dockerignore in
	// the context folder, as Modal does.
	Ignore       []string `yaml:"ignore"`
	AddPython    string   `yaml:"add_python"`
	LayerOptions `yaml:",inline"`
}

// FromDockerfile builds the image a Dockerfile describes, as docker build does, and the
// chain goes on from there. Each instruction is a layer, cached on its own; the stages the
// target stage reads from are built first, the independent ones at the same time.
func FromDockerfile(path string) Image { return FromDockerfileWith(FromDockerfileOptions{Path: path}) }

// FromDockerfileWith is FromDockerfile with all options.
func FromDockerfileWith(o FromDockerfileOptions) Image {
	return newRoot("from_dockerfile", o.ForceBuild, func(r *resolver) ([]*spec.Layer, error) {
		if o.Path == "" {
			return nil, fmt.Errorf("path is empty: give the Dockerfile's path")
		}
		path := r.path(o.Path)
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", o.Path, err)
		}
		defer f.Close()
		df, err := spec.ParseDockerfile(f, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.Path, err)
		}
		ctxDir := o.ContextDir
		if ctxDir == "" {
			ctxDir = r.dir
		}
		ctxDir = r.path(ctxDir)
		ignore := o.Ignore
		if ignore == nil {
			if ignore, err = autoDockerignore(path, ctxDir); err != nil {
				return nil, err
			}
		}
		d := &dockerfile{r: r, name: o.Path, df: df, ctxDir: ctxDir, ignore: ignore, buildArgs: o.BuildArgs, opts: o.LayerOptions, force: o.ForceBuild}
		layers, err := d.convert(o.Target)
		if err != nil {
			return nil, err
		}
		d.record(layers)
		if o.AddPython != "" {
			ins, art, err := addPython(o.AddPython, r.platform)
			if err != nil {
				return nil, err
			}
			l := &spec.Layer{Method: "from_dockerfile", Title: "add_python " + o.AddPython, Instructions: ins, Artifacts: []spec.Artifact{*art}}
			if err := r.finish(l, "from_dockerfile", layers[len(layers)-1].Key, o.ForceBuild); err != nil {
				return nil, err
			}
			layers = append(layers, l)
		}
		return layers, nil
	})
}

// platformArgs are the ARGs Docker defines for every Dockerfile, from the platform built
// for and on (the same here).
func platformArgs(platform string) map[string]string {
	parts := strings.SplitN(platform, "/", 3)
	args := map[string]string{"TARGETPLATFORM": platform, "BUILDPLATFORM": platform}
	if len(parts) >= 2 {
		args["TARGETOS"], args["TARGETARCH"], args["BUILDOS"], args["BUILDARCH"] = parts[0], parts[1], parts[0], parts[1]
	}
	if len(parts) == 3 {
		args["TARGETVARIANT"], args["BUILDVARIANT"] = parts[2], parts[2]
	}
	return args
}

// globalArgs computes the values of the ARGs declared before FROM, in order, as Docker does:
// a build arg overrides a default, and a default may use the ARGs before it and the
// platform ARGs. An ARG with no default and no build arg has no value.
func globalArgs(decl []spec.KV, buildArgs map[string]string, platform string) (map[string]string, error) {
	scope := platformArgs(platform)
	out := map[string]string{}
	for _, kv := range decl {
		v, ok := buildArgs[kv.Key]
		if !ok {
			if kv.NoValue {
				continue
			}
			var err error
			if v, err = expandWord(kv.Value, scope); err != nil {
				return nil, fmt.Errorf("ARG %s=%s: %w", kv.Key, kv.Value, err)
			}
		}
		scope[kv.Key], out[kv.Key] = v, v
	}
	return out, nil
}

// expandWord expands a Dockerfile word against the given variables.
func expandWord(word string, vars map[string]string) (string, error) {
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	s, _, err := shell.NewLex('\\').ProcessWord(word, shell.EnvsFromSlice(env))
	return s, err
}

// autoDockerignore finds the ignore file docker would use: <Dockerfile>.dockerignore, then
// .dockerignore beside the Dockerfile, then .dockerignore in the context folder.
func autoDockerignore(dockerfile, ctxDir string) ([]string, error) {
	for _, f := range []string{
		dockerfile + ".dockerignore",
		filepath.Join(filepath.Dir(dockerfile), ".dockerignore"),
		filepath.Join(ctxDir, ".dockerignore"),
	} {
		if _, err := os.Stat(f); err == nil {
			p, err := localfiles.ReadDockerignore(f)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", f, err)
			}
			return p, nil
		}
	}
	return nil, nil
}
