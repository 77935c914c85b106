package strata

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/strata-build/strata/internal/shell"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
)

// AptInstallOptions are the parameters of apt_install.
type AptInstallOptions struct {
	Packages     []string `yaml:"packages"`
	LayerOptions `yaml:",inline"`
}

// AptInstall installs Debian packages, in the order given, non-interactively.
func (img Image) AptInstall(packages ...string) Image {
	return img.AptInstallWith(AptInstallOptions{Packages: packages})
}

// AptInstallWith is AptInstall with all options. With no packages it returns img unchanged.
func (img Image) AptInstallWith(o AptInstallOptions) Image {
	if len(o.Packages) == 0 {
		return img
	}
	return img.then("apt_install", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		if err := checkPackages(o.Packages, "apt options are not supported here; use run_commands(\"apt-get install ...\") for custom flags"); err != nil {
			return nil, err
		}
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		l.Instructions = []spec.Instruction{
			run("apt-get update"),
			// Lists and downloaded packages are removed in the same layer, so they never bloat it.
			run("DEBIAN_FRONTEND=noninteractive apt-get install -y " + shell.Join(o.Packages) + " && apt-get clean && rm -rf /var/lib/apt/lists/*"),
		}
		return l, nil
	})
}

// checkPackages rejects empty package names and names that look like flags.
func checkPackages(pkgs []string, fix string) error {
	for _, p := range pkgs {
		if strings.TrimSpace(p) == "" {
			return fmt.Errorf("packages: an empty package name in %q", pkgs)
		}
		if strings.HasPrefix(p, "-") {
			return fmt.Errorf("packages: package name %q looks like a flag; %s", p, fix)
		}
	}
	return nil
}

// PipOptions are pip's index options, shared by the pip and uv methods.
type PipOptions struct {
	FindLinks     string `yaml:"find_links"`
	IndexURL      string `yaml:"index_url"`
	ExtraIndexURL string `yaml:"extra_index_url"`
	// Pre allows pre-release versions.
	Pre bool `yaml:"pre"`
	// ExtraOptions are added to the command line verbatim.
	ExtraOptions string `yaml:"extra_options"`
}

// args renders the options as Modal's _make_pip_install_args does.
func (o PipOptions) args() string {
	var parts []string
	for _, f := range [][2]string{{"--find-links", o.FindLinks}, {"--index-url", o.IndexURL}, {"--extra-index-url", o.ExtraIndexURL}} {
		if f[1] != "" {
			parts = append(parts, f[0]+" "+shell.Quote(f[1]))
		}
	}
	args := strings.Join(parts, " ")
	if o.Pre {
		args += " --pre"
	}
	if o.ExtraOptions != "" {
		if args != "" {
			args += " "
		}
		args += o.ExtraOptions
	}
	return args
}

const pipFlagFix = "pass pip options in extra_options (ExtraOptions in Go)"

// PipInstallOptions are the parameters of pip_install.
type PipInstallOptions struct {
	Packages     []string `yaml:"packages"`
	PipOptions   `yaml:",inline"`
	LayerOptions `yaml:",inline"`
}

// PipInstall installs Python packages with pip. Pin versions ("torch==2.8.0"): the cache key
// follows the requirement text, not what an index serves later.
func (img Image) PipInstall(packages ...string) Image {
	return img.PipInstallWith(PipInstallOptions{Packages: packages})
}

// PipInstallWith is PipInstall with all options. With no packages it returns img unchanged.
func (img Image) PipInstallWith(o PipInstallOptions) Image {
	if len(o.Packages) == 0 {
		return img
	}
	return img.then("pip_install", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		if err := checkPackages(o.Packages, pipFlagFix); err != nil {
			return nil, err
		}
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		l.Instructions = []spec.Instruction{run(pipInstall(o.Packages, o.PipOptions))}
		return l, nil
	})
}

func pipInstall(pkgs []string, o PipOptions) string {
	sorted := slices.Clone(pkgs)
	sort.Strings(sorted)
	return strings.TrimSpace("python -m pip install " + shell.Join(sorted) + " " + o.args())
}

// DefaultUvVersion is the uv release that uv methods use when none is given. Modal uses
// "latest", which never changes the cache key when uv changes; strata pins it.
const DefaultUvVersion = "0.9.5"

// UvImage is the repository of the images uv's binary is copied from, tagged by uv release.
// STRATA_UV_IMAGE names another (a mirror, or a registry on the build's network).
const UvImage = "ghcr.io/astral-sh/uv"

// UvPipInstallOptions are the parameters of uv_pip_install.
type UvPipInstallOptions struct {
	Packages []string `yaml:"packages"`
	// Requirements are local requirements files.
	Requirements []string `yaml:"requirements"`
	// UvVersion is the uv release ("0.9.5"); default DefaultUvVersion.
	UvVersion    string `yaml:"uv_version"`
	PipOptions   `yaml:",inline"`
	LayerOptions `yaml:",inline"`
}

// UvPipInstall installs Python packages with uv, which is much faster than pip.
func (img Image) UvPipInstall(packages ...string) Image {
	return img.UvPipInstallWith(UvPipInstallOptions{Packages: packages})
}

// UvPipInstallWith is UvPipInstall with all options. With no packages and no requirements it
// returns img unchanged.
func (img Image) UvPipInstallWith(o UvPipInstallOptions) Image {
	if len(o.Packages) == 0 && len(o.Requirements) == 0 {
		return img
	}
	return img.then("uv_pip_install", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		if err := checkPackages(o.Packages, pipFlagFix); err != nil {
			return nil, err
		}
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		uv, err := copyUv(o.UvVersion)
		if err != nil {
			return nil, err
		}
		l.Instructions = []spec.Instruction{uv}
		cmd := []string{"/.uv/uv pip install --python $(command -v python) --compile-bytecode"}
		for _, f := range [][2]string{{"--find-links", o.FindLinks}, {"--index-url", o.IndexURL}, {"--extra-index-url", o.ExtraIndexURL}} {
			if f[1] != "" {
				cmd = append(cmd, f[0]+" "+shell.Quote(f[1]))
			}
		}
		if o.Pre {
			cmd = append(cmd, "--prerelease allow")
		}
		if o.ExtraOptions != "" {
			cmd = append(cmd, o.ExtraOptions)
		}
		for i, req := range o.Requirements {
			base := filepath.Base(req)
			name := fmt.Sprintf(".%d_%s", i, base)
			dst := fmt.Sprintf("/.uv/%d/%s", i, base)
			f, err := contextFile(r, "requirements", req, name)
			if err != nil {
				return nil, err
			}
			l.Context = append(l.Context, f)
			l.Instructions = append(l.Instructions, copyIn(nil, "/"+name, dst))
			cmd = append(cmd, "--requirements "+dst)
		}
		if len(o.Packages) > 0 {
			sorted := slices.Clone(o.Packages)
			sort.Strings(sorted)
			cmd = append(cmd, shell.Join(sorted))
		}
		l.Instructions = append(l.Instructions, run(strings.Join(cmd, " ")))
		return l, nil
	})
}

func copyUv(version string) (spec.Instruction, error) {
	if version == "" {
		version = DefaultUvVersion
	}
	if strings.ContainsAny(version, " /:@") {
		return spec.Instruction{}, fmt.Errorf("uv_version %q is not a uv release such as %q", version, DefaultUvVersion)
	}
	repo := UvImage
	if env := os.Getenv("STRATA_UV_IMAGE"); env != "" {
		if _, err := name.NewRepository(env); err != nil {
			return spec.Instruction{}, fmt.Errorf("STRATA_UV_IMAGE %q is not a repository such as %q (the tag is the uv release): %v", env, UvImage, err)
		}
		repo = env
	}
	return copyIn([]string{"--from=" + repo + ":" + version}, "/uv", "/.uv/uv"), nil
}

// contextFile lists one local file as a context file at name.
func contextFile(r *resolver, param, local, name string) (spec.ContextFile, error) {
	p, err := localPath(r, local)
	if err != nil {
		return spec.ContextFile{}, fmt.Errorf("%s: %w", param, err)
	}
	fs, err := localfiles.Walk(p, name, localfiles.Matcher{})
	if err != nil {
		return spec.ContextFile{}, fmt.Errorf("%s: %w", param, err)
	}
	if len(fs) != 1 || !os.FileMode(fs[0].Mode).IsRegular() {
		return spec.ContextFile{}, fmt.Errorf("%s: %s is not a regular file", param, local)
	}
	return fs[0], nil
}

// UvSyncOptions are the parameters of uv_sync.
type UvSyncOptions struct {
	// UvProjectDir holds pyproject.toml and, optionally, uv.lock (default "./").
	UvProjectDir string   `yaml:"uv_project_dir"`
	Groups       []string `yaml:"groups"`
	Extras       []string `yaml:"extras"`
	// Frozen installs exactly the lock file's versions when uv.lock exists (default true).
	Frozen       *bool  `yaml:"frozen"`
	ExtraOptions string `yaml:"extra_options"`
	UvVersion    string `yaml:"uv_version"`
	LayerOptions `yaml:",inline"`
}

// UvSync installs a uv project's dependencies (not the project itself) into /.uv/.venv, which
// is put first on PATH.
func (img Image) UvSync(uvProjectDir string) Image {
	return img.UvSyncWith(UvSyncOptions{UvProjectDir: uvProjectDir})
}

// UvSyncWith is UvSync with all options.
func (img Image) UvSyncWith(o UvSyncOptions) Image {
	return img.then("uv_sync", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		dir := o.UvProjectDir
		if dir == "" {
			dir = "./"
		}
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		pyproject := filepath.Join(r.path(dir), "pyproject.toml")
		if _, err := os.Stat(pyproject); err != nil {
			return nil, fmt.Errorf("uv_project_dir: expected %s to exist", pyproject)
		}
		var meta struct {
			Tool struct {
				Uv struct {
					Workspace map[string]any `toml:"workspace"`
				} `toml:"uv"`
			} `toml:"tool"`
		}
		if _, err := toml.DecodeFile(pyproject, &meta); err != nil {
			return nil, fmt.Errorf("%s: %w", pyproject, err)
		}
		if meta.Tool.Uv.Workspace != nil {
			return nil, fmt.Errorf("%s: uv workspaces are not supported; point uv_project_dir at one member project", pyproject)
		}
		uv, err := copyUv(o.UvVersion)
		if err != nil {
			return nil, err
		}
		pf, err := contextFile(r, "uv_project_dir", pyproject, ".pyproject.toml")
		if err != nil {
			return nil, err
		}
		l.Context = []spec.ContextFile{pf}
		l.Instructions = []spec.Instruction{uv, copyIn(nil, "/.pyproject.toml", "/.uv/pyproject.toml")}
		lock := filepath.Join(r.path(dir), "uv.lock")
		hasLock := false
		if _, err := os.Stat(lock); err == nil {
			hasLock = true
			lf, err := contextFile(r, "uv_project_dir", lock, ".uv.lock")
			if err != nil {
				return nil, err
			}
			l.Context = append(l.Context, lf)
			l.Instructions = append(l.Instructions, copyIn(nil, "/.uv.lock", "/.uv/uv.lock"))
		}
		cmd := []string{"/.uv/uv sync --project=/.uv --no-install-workspace --compile-bytecode"}
		for _, g := range o.Groups {
			cmd = append(cmd, "--group="+shell.Quote(g))
		}
		for _, e := range o.Extras {
			cmd = append(cmd, "--extra="+shell.Quote(e))
		}
		if o.ExtraOptions != "" {
			cmd = append(cmd, o.ExtraOptions)
		}
		if hasLock && (o.Frozen == nil || *o.Frozen) {
			cmd = append(cmd, "--frozen")
		}
		l.Instructions = append(l.Instructions,
			run(strings.Join(cmd, " ")),
			spec.Instruction{Op: spec.OpEnv, Pairs: []spec.KV{{Key: "PATH", Value: "/.uv/.venv/bin:$PATH"}}})
		return l, nil
	})
}

// PipInstallFromRequirementsOptions are the parameters of pip_install_from_requirements.
type PipInstallFromRequirementsOptions struct {
	RequirementsTxt string `yaml:"requirements_txt"`
	PipOptions      `yaml:",inline"`
	LayerOptions    `yaml:",inline"`
}

// PipInstallFromRequirements installs a local requirements.txt with pip.
func (img Image) PipInstallFromRequirements(requirementsTxt string) Image {
	return img.PipInstallFromRequirementsWith(PipInstallFromRequirementsOptions{RequirementsTxt: requirementsTxt})
}

// PipInstallFromRequirementsWith is PipInstallFromRequirements with all options.
func (img Image) PipInstallFromRequirementsWith(o PipInstallFromRequirementsOptions) Image {
	return img.then("pip_install_from_requirements", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		f, err := contextFile(r, "requirements_txt", o.RequirementsTxt, ".requirements.txt")
		if err != nil {
			return nil, err
		}
		l.Context = []spec.ContextFile{f}
		l.Instructions = []spec.Instruction{
			copyIn(nil, "/.requirements.txt", "/.requirements.txt"),
			run(strings.TrimSpace("python -m pip install -r /.requirements.txt " + o.args())),
		}
		return l, nil
	})
}

// PipInstallFromPyprojectOptions are the parameters of pip_install_from_pyproject.
type PipInstallFromPyprojectOptions struct {
	PyprojectToml string `yaml:"pyproject_toml"`
	// OptionalDependencies name [project.optional-dependencies] groups to install too.
	OptionalDependencies []string `yaml:"optional_dependencies"`
	PipOptions           `yaml:",inline"`
	LayerOptions         `yaml:",inline"`
}

// PipInstallFromPyproject installs the dependencies listed in a local pyproject.toml.
func (img Image) PipInstallFromPyproject(pyprojectToml string) Image {
	return img.PipInstallFromPyprojectWith(PipInstallFromPyprojectOptions{PyprojectToml: pyprojectToml})
}

// PipInstallFromPyprojectWith is PipInstallFromPyproject with all options.
func (img Image) PipInstallFromPyprojectWith(o PipInstallFromPyprojectOptions) Image {
	return img.then("pip_install_from_pyproject", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		p, err := localPath(r, o.PyprojectToml)
		if err != nil {
			return nil, fmt.Errorf("pyproject_toml: %w", err)
		}
		var doc struct {
			Project *struct {
				Dependencies         *[]string           `toml:"dependencies"`
				OptionalDependencies map[string][]string `toml:"optional-dependencies"`
			} `toml:"project"`
		}
		if _, err := toml.DecodeFile(p, &doc); err != nil {
			return nil, fmt.Errorf("pyproject_toml %s: %w", p, err)
		}
		if doc.Project == nil || doc.Project.Dependencies == nil {
			return nil, fmt.Errorf("pyproject_toml %s: no [project.dependencies] section; add one, or use pip_install", p)
		}
		deps := slices.Clone(*doc.Project.Dependencies)
		for _, g := range o.OptionalDependencies {
			opt, ok := doc.Project.OptionalDependencies[g]
			if !ok {
				return nil, fmt.Errorf("optional_dependencies: %s has no group %q in [project.optional-dependencies]", p, g)
			}
			deps = append(deps, opt...)
		}
		if len(deps) == 0 {
			return nil, fmt.Errorf("pyproject_toml %s lists no dependencies", p)
		}
		l.Instructions = []spec.Instruction{run(pipInstall(deps, o.PipOptions))}
		return l, nil
	})
}

// PipInstallPrivateReposOptions are the parameters of pip_install_private_repos.
type PipInstallPrivateReposOptions struct {
	// Repositories are "github.com/org/repo[@ref]" or "gitlab.com/org/repo[@ref]".
	Repositories []string `yaml:"repositories"`
	// GitUser is the user name the token authenticates.
	GitUser      string `yaml:"git_user"`
	PipOptions   `yaml:",inline"`
	LayerOptions `yaml:",inline"`
}

// PipInstallPrivateRepos installs Python packages from private GitHub or GitLab repositories,
// with GITHUB_TOKEN or GITLAB_TOKEN taken from the layer's secrets.
func (img Image) PipInstallPrivateRepos(gitUser string, secrets []string, repositories ...string) Image {
	return img.PipInstallPrivateReposWith(PipInstallPrivateReposOptions{
		Repositories: repositories, GitUser: gitUser, LayerOptions: LayerOptions{Secrets: secrets},
	})
}

// PipInstallPrivateReposWith is PipInstallPrivateRepos with all options.
func (img Image) PipInstallPrivateReposWith(o PipInstallPrivateReposOptions) Image {
	if len(o.Repositories) == 0 {
		return img
	}
	return img.then("pip_install_private_repos", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		var invalid []string
		github, gitlab := false, false
		for _, repo := range o.Repositories {
			switch {
			case strings.HasPrefix(repo, "github.com/"):
				github = true
			case strings.HasPrefix(repo, "gitlab.com/"):
				gitlab = true
			default:
				invalid = append(invalid, strconv.Quote(repo))
			}
		}
		if len(invalid) > 0 {
			return nil, fmt.Errorf("%d out of %d given repository refs are invalid: [%s]; refs start with github.com/ or gitlab.com/", len(invalid), len(o.Repositories), strings.Join(invalid, ", "))
		}
		if len(o.Secrets) == 0 {
			return nil, fmt.Errorf("no secrets given: installing private packages needs GITHUB_TOKEN or GITLAB_TOKEN from a secret (strata secret create NAME GITHUB_TOKEN=...)")
		}
		if o.GitUser == "" || strings.ContainsAny(o.GitUser, ":@/ ") {
			return nil, fmt.Errorf("git_user %q: give the user name the token belongs to", o.GitUser)
		}
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		names := strings.Join(o.Secrets, ", ")
		for _, t := range []struct {
			on  bool
			env string
		}{{github, "GITHUB_TOKEN"}, {gitlab, "GITLAB_TOKEN"}} {
			if t.on {
				l.Instructions = append(l.Instructions, run(fmt.Sprintf(`bash -c "[[ -v %s ]] || (echo '%s env var not set by provided secret(s): %s' && exit 1)"`, t.env, t.env, names)))
			}
		}
		l.Instructions = append(l.Instructions, run("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y git && apt-get clean && rm -rf /var/lib/apt/lists/*"))
		extra := o.args()
		for _, repo := range o.Repositories {
			token := "$GITHUB_TOKEN"
			if strings.HasPrefix(repo, "gitlab.com/") {
				token = "$GITLAB_TOKEN"
			}
			l.Instructions = append(l.Instructions, run(strings.TrimSpace(fmt.Sprintf(`python3 -m pip install "git+https://%s:%s@%s" %s`, o.GitUser, token, repo, extra))))
		}
		return l, nil
	})
}

// PoetryInstallFromFileOptions are the parameters of poetry_install_from_file.
type PoetryInstallFromFileOptions struct {
	PoetryPyprojectToml string `yaml:"poetry_pyproject_toml"`
	// PoetryLockfile defaults to poetry.lock beside the pyproject file.
	PoetryLockfile string   `yaml:"poetry_lockfile"`
	IgnoreLockfile bool     `yaml:"ignore_lockfile"`
	With           []string `yaml:"with_"`
	Without        []string `yaml:"without"`
	Only           []string `yaml:"only"`
	// PoetryVersion is the poetry release to install ("" installs the latest; "none" installs
	// none, for images that have poetry).
	PoetryVersion string `yaml:"poetry_version"`
	OldInstaller  bool   `yaml:"old_installer"`
	LayerOptions  `yaml:",inline"`
}

// PoetryInstallFromFile installs a poetry project's dependencies (not the project itself).
func (img Image) PoetryInstallFromFile(pyprojectToml string) Image {
	return img.PoetryInstallFromFileWith(PoetryInstallFromFileOptions{PoetryPyprojectToml: pyprojectToml})
}

// PoetryInstallFromFileWith is PoetryInstallFromFile with all options.
func (img Image) PoetryInstallFromFileWith(o PoetryInstallFromFileOptions) Image {
	return img.then("poetry_install_from_file", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		switch o.PoetryVersion {
		case "none":
		case "", "latest":
			l.Instructions = append(l.Instructions, run("python -m pip install poetry"))
		default:
			l.Instructions = append(l.Instructions, run("python -m pip install "+shell.Quote("poetry=="+o.PoetryVersion)))
		}
		if o.OldInstaller {
			l.Instructions = append(l.Instructions, run("poetry config experimental.new-installer false"))
		}
		pf, err := contextFile(r, "poetry_pyproject_toml", o.PoetryPyprojectToml, ".pyproject.toml")
		if err != nil {
			return nil, err
		}
		if !o.IgnoreLockfile {
			lock := o.PoetryLockfile
			if lock == "" {
				lock = filepath.Join(filepath.Dir(pf.Source), "poetry.lock")
				if _, err := os.Stat(lock); err != nil {
					return nil, fmt.Errorf("poetry.lock not found at inferred location %s; give poetry_lockfile, or set ignore_lockfile", lock)
				}
			}
			lf, err := contextFile(r, "poetry_lockfile", lock, ".poetry.lock")
			if err != nil {
				return nil, err
			}
			l.Context = append(l.Context, lf)
			l.Instructions = append(l.Instructions, copyIn(nil, "/.poetry.lock", "/tmp/poetry/poetry.lock"))
		}
		l.Context = append(l.Context, pf)
		l.Instructions = append(l.Instructions, copyIn(nil, "/.pyproject.toml", "/tmp/poetry/pyproject.toml"))
		install := "poetry install --no-root"
		for _, g := range []struct {
			flag   string
			groups []string
		}{{"--with", o.With}, {"--without", o.Without}, {"--only", o.Only}} {
			if len(g.groups) > 0 {
				install += " " + g.flag + " " + shell.Quote(strings.Join(g.groups, ","))
			}
		}
		l.Instructions = append(l.Instructions, run("cd /tmp/poetry && poetry config virtualenvs.create false && "+install+" --compile"))
		return l, nil
	})
}

// MicromambaInstallOptions are the parameters of micromamba_install.
type MicromambaInstallOptions struct {
	Packages []string `yaml:"packages"`
	// SpecFile is a local environment.yml or explicit spec file.
	SpecFile     string   `yaml:"spec_file"`
	Channels     []string `yaml:"channels"`
	LayerOptions `yaml:",inline"`
}

// MicromambaInstall installs conda packages with micromamba.
func (img Image) MicromambaInstall(packages ...string) Image {
	return img.MicromambaInstallWith(MicromambaInstallOptions{Packages: packages})
}

// MicromambaInstallWith is MicromambaInstall with all options. With no packages and no spec
// file it returns img unchanged.
func (img Image) MicromambaInstallWith(o MicromambaInstallOptions) Image {
	if len(o.Packages) == 0 && o.SpecFile == "" {
		return img
	}
	return img.then("micromamba_install", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		if err := checkPackages(o.Packages, "give channels in channels and other options with run_commands"); err != nil {
			return nil, err
		}
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		cmd := []string{"micromamba install"}
		if len(o.Packages) > 0 {
			cmd = append(cmd, shell.Join(o.Packages))
		}
		if o.SpecFile != "" {
			base := filepath.Base(o.SpecFile)
			f, err := contextFile(r, "spec_file", o.SpecFile, base)
			if err != nil {
				return nil, err
			}
			l.Context = []spec.ContextFile{f}
			l.Instructions = append(l.Instructions, copyIn(nil, "/"+base, "/"+base))
			cmd = append(cmd, "-f /"+shell.Quote(base)+" -n base")
		}
		for _, ch := range o.Channels {
			cmd = append(cmd, "-c "+shell.Quote(ch))
		}
		l.Instructions = append(l.Instructions, run(strings.Join(append(cmd, "--yes"), " ")))
		return l, nil
	})
}
