package strata

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/strata-build/strata/internal/shell"
	"github.com/strata-build/strata/spec"
)

// RunCommandsOptions are the parameters of run_commands.
type RunCommandsOptions struct {
	Commands []string `yaml:"commands"`
	// Volumes mount named volumes during the commands, by absolute path: {"/root/.cache": "pip-cache"}.
	// What the commands write there is kept in the volume, not in the layer.
	Volumes      map[string]string `yaml:"volumes"`
	LayerOptions `yaml:",inline"`
}

// RunCommands runs shell commands, in order, as one layer.
func (img Image) RunCommands(commands ...string) Image {
	return img.RunCommandsWith(RunCommandsOptions{Commands: commands})
}

// RunCommandsWith is RunCommands with all options. With no commands it returns img unchanged.
func (img Image) RunCommandsWith(o RunCommandsOptions) Image {
	if len(o.Commands) == 0 {
		return img
	}
	return img.then("run_commands", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		for _, c := range o.Commands {
			if strings.TrimSpace(c) == "" {
				return nil, fmt.Errorf("commands: an empty command")
			}
			l.Instructions = append(l.Instructions, run(c))
		}
		if l.Volumes, err = volumeMounts(o.Volumes); err != nil {
			return nil, err
		}
		return l, nil
	})
}

func volumeMounts(vols map[string]string) ([]spec.VolumeMount, error) {
	var out []spec.VolumeMount
	seen := map[string]string{}
	for p, name := range vols {
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
			return nil, fmt.Errorf("volumes: path %q must be absolute and clean, such as \"/root/.cache\"", p)
		}
		if p == "/" || p == "/root" || p == "/tmp" {
			return nil, fmt.Errorf("volumes: a volume cannot be mounted at %s; use a folder below it", p)
		}
		if !nameRE.MatchString(name) {
			return nil, fmt.Errorf("volumes: %q is not a volume name: names use letters, digits, '.', '_' and '-'", name)
		}
		if other, ok := seen[name]; ok {
			return nil, fmt.Errorf("volumes: volume %q is mounted at both %s and %s; a volume may appear at one path only", name, other, p)
		}
		seen[name] = p
		out = append(out, spec.VolumeMount{Name: name, Path: p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Env sets environment variables in the image, one ENV line per key in key order.
func (img Image) Env(vars map[string]string) Image {
	if len(vars) == 0 {
		return img
	}
	return img.then("env", false, func(r *resolver) (*spec.Layer, error) {
		l := &spec.Layer{}
		for _, kv := range spec.SortedKVs(vars) {
			if err := checkEnvKey(kv.Key); err != nil {
				return nil, fmt.Errorf("vars: %w", err)
			}
			l.Instructions = append(l.Instructions, spec.Instruction{Op: spec.OpEnv, Pairs: []spec.KV{{Key: kv.Key, Value: shell.Quote(kv.Value)}}})
		}
		return l, nil
	})
}

// Workdir sets the working directory of later build steps and of containers.
func (img Image) Workdir(p string) Image {
	return img.then("workdir", false, func(r *resolver) (*spec.Layer, error) {
		if p == "" {
			return nil, fmt.Errorf("path is empty: give a folder such as \"/app\"")
		}
		return &spec.Layer{Instructions: []spec.Instruction{{Op: spec.OpWorkdir, Args: []string{shell.Quote(p)}}}}, nil
	})
}

// Entrypoint sets the image's entrypoint; with no arguments it clears it.
func (img Image) Entrypoint(args ...string) Image {
	return img.execForm("entrypoint", spec.OpEntrypoint, args, false)
}

// Cmd sets the image's default command.
func (img Image) Cmd(args ...string) Image { return img.execForm("cmd", spec.OpCmd, args, false) }

// Shell sets the shell that later RUN steps in shell form use, as in ["/bin/bash", "-c"].
func (img Image) Shell(args ...string) Image {
	return img.execForm("shell", spec.OpShell, args, true)
}

func (img Image) execForm(method string, op spec.Op, args []string, nonEmpty bool) Image {
	return img.then(method, false, func(r *resolver) (*spec.Layer, error) {
		if nonEmpty && len(args) == 0 {
			return nil, fmt.Errorf("%s wants at least one argument, such as \"/bin/bash\", \"-c\"", method)
		}
		return &spec.Layer{Instructions: []spec.Instruction{{Op: op, JSON: true, Args: append([]string{}, args...)}}}, nil
	})
}

// DockerfileCommandsOptions are the parameters of dockerfile_commands.
type DockerfileCommandsOptions struct {
	// Commands are Dockerfile lines (no FROM).
	Commands []string `yaml:"commands"`
	// ContextFiles maps paths in the build context to local files: {"/config.json": "./local.json"}.
	ContextFiles map[string]string `yaml:"context_files"`
	// ContextDir is where COPY sources that are not context files are read from (default: the
	// working directory, or the spec file's folder).
	ContextDir string `yaml:"context_dir"`
	// Ignore are dockerignore patterns for ContextDir (nil: its .dockerignore, if any).
	Ignore       []string          `yaml:"ignore"`
	BuildArgs    map[string]string `yaml:"build_args"`
	LayerOptions `yaml:",inline"`
}

// DockerfileCommands extends the image with Dockerfile lines, as one layer.
func (img Image) DockerfileCommands(commands ...string) Image {
	return img.DockerfileCommandsWith(DockerfileCommandsOptions{Commands: commands})
}

// DockerfileCommandsWith is DockerfileCommands with all options. With no commands it returns
// img unchanged.
func (img Image) DockerfileCommandsWith(o DockerfileCommandsOptions) Image {
	if len(o.Commands) == 0 {
		return img
	}
	return img.then("dockerfile_commands", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		df, err := spec.ParseDockerfile(strings.NewReader(strings.Join(o.Commands, "\n")), false)
		if err != nil {
			return nil, fmt.Errorf("commands: %w", err)
		}
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		l.Instructions = df.Stages[0].Instructions
		l.BuildArgs = spec.SortedKVs(o.BuildArgs)
		// Context files take precedence; the rest of the COPY sources come from ContextDir.
		var fromDir []spec.Instruction
		named := map[string]bool{}
		for ctxPath, local := range o.ContextFiles {
			name := strings.TrimPrefix(path.Clean("/"+ctxPath), "/")
			f, err := contextFile(r, "context_files", local, name)
			if err != nil {
				return nil, err
			}
			named[name] = true
			l.Context = append(l.Context, f)
		}
		for _, in := range l.Instructions {
			if in.Op != spec.OpCopy && in.Op != spec.OpAdd {
				continue
			}
			rest := in
			rest.Args = nil
			for _, src := range in.Args[:len(in.Args)-1] {
				if !named[strings.TrimPrefix(path.Clean("/"+src), "/")] {
					rest.Args = append(rest.Args, src)
				}
			}
			if len(rest.Args) > 0 {
				rest.Args = append(rest.Args, in.Args[len(in.Args)-1])
				fromDir = append(fromDir, rest)
			}
		}
		if len(fromDir) > 0 {
			dir := r.path(o.ContextDir)
			if dir == "" {
				dir = r.dir
			}
			ignore := o.Ignore
			if ignore == nil {
				if ignore, err = autoDockerignore(path.Join(dir, "Dockerfile"), dir); err != nil {
					return nil, err
				}
			}
			fs, err := r.copyContext(fromDir, dir, ignore)
			if err != nil {
				return nil, err
			}
			l.Context = append(l.Context, fs...)
		}
		return l, nil
	})
}
