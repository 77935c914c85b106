package specfile

import (
	"sort"
	"strings"

	"github.com/strata-build/strata"
)

type method struct {
	ctor    bool
	newOpts func() any
	apply   func(img strata.Image, opts any) strata.Image
}

func ctor[O any](f func(O) strata.Image) method {
	return method{ctor: true, newOpts: func() any { return new(O) }, apply: func(_ strata.Image, o any) strata.Image { return f(*o.(*O)) }}
}

func step[O any](f func(strata.Image, O) strata.Image) method {
	return method{newOpts: func() any { return new(O) }, apply: func(img strata.Image, o any) strata.Image { return f(img, *o.(*O)) }}
}

// The parameters of methods whose Go form takes plain arguments.
type (
	noOptions  struct{}
	envOptions struct {
		Vars map[string]string `yaml:"vars"`
	}
	workdirOptions struct {
		Path string `yaml:"path"`
	}
	entrypointOptions struct {
		EntrypointCommands []string `yaml:"entrypoint_commands"`
	}
	cmdOptions struct {
		Cmd []string `yaml:"cmd"`
	}
	shellOptions struct {
		ShellCommands []string `yaml:"shell_commands"`
	}
)

var methods = map[string]method{
	"debian_slim":                ctor(strata.DebianSlimWith),
	"micromamba":                 ctor(strata.MicromambaWith),
	"from_registry":              ctor(strata.FromRegistryWith),
	"from_aws_ecr":               ctor(strata.FromAWSECRWith),
	"from_gcp_artifact_registry": ctor(strata.FromGCPArtifactRegistryWith),
	"from_dockerfile":            ctor(strata.FromDockerfileWith),
	"from_scratch":               ctor(func(noOptions) strata.Image { return strata.FromScratch() }),

	"apt_install":                   step(strata.Image.AptInstallWith),
	"pip_install":                   step(strata.Image.PipInstallWith),
	"uv_pip_install":                step(strata.Image.UvPipInstallWith),
	"uv_sync":                       step(strata.Image.UvSyncWith),
	"pip_install_from_requirements": step(strata.Image.PipInstallFromRequirementsWith),
	"pip_install_from_pyproject":    step(strata.Image.PipInstallFromPyprojectWith),
	"pip_install_private_repos":     step(strata.Image.PipInstallPrivateReposWith),
	"poetry_install_from_file":      step(strata.Image.PoetryInstallFromFileWith),
	"micromamba_install":            step(strata.Image.MicromambaInstallWith),
	"run_commands":                  step(strata.Image.RunCommandsWith),
	"run_function": step(func(img strata.Image, o strata.RunFunctionOptions) strata.Image {
		return img.RunFunctionWith(nil, o)
	}),
	"dockerfile_commands":     step(strata.Image.DockerfileCommandsWith),
	"add_local_file":          step(strata.Image.AddLocalFileWith),
	"add_local_dir":           step(strata.Image.AddLocalDirWith),
	"add_local_python_source": step(strata.Image.AddLocalPythonSourceWith),
	"env":                     step(func(img strata.Image, o envOptions) strata.Image { return img.Env(o.Vars) }),
	"workdir":                 step(func(img strata.Image, o workdirOptions) strata.Image { return img.Workdir(o.Path) }),
	"entrypoint": step(func(img strata.Image, o entrypointOptions) strata.Image {
		return img.Entrypoint(o.EntrypointCommands...)
	}),
	"cmd":   step(func(img strata.Image, o cmdOptions) strata.Image { return img.Cmd(o.Cmd...) }),
	"shell": step(func(img strata.Image, o shellOptions) strata.Image { return img.Shell(o.ShellCommands...) }),
}

func methodNames() string { return names(func(method) bool { return true }) }

func ctorNames() string { return names(func(m method) bool { return m.ctor }) }

func names(keep func(method) bool) string {
	var out []string
	for n, m := range methods {
		if keep(m) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
