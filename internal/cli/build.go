package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/fasthit"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/sbom"
	"github.com/strata-build/strata/secrets"
	"github.com/strata-build/strata/specfile"
)

// ExitCode is an error that carries the exit code of a process run in a container.
type ExitCode struct{ Code int }

func (e *ExitCode) Error() string { return fmt.Sprintf("exit code %d", e.Code) }

func open() (*strata.Client, error) { return strata.Open() }

// openImage opens the store and finds an image in it by name or digest.
func openImage(ctx context.Context, ref string) (*strata.Built, error) {
	c, err := open()
	if err != nil {
		return nil, err
	}
	return c.Image(ctx, ref)
}

func buildCmd() *cobra.Command {
	var file, name, progressMode, pushRef, cacheTo, target string
	var cacheFrom, buildArgs, secretFlags, sshFlags []string
	var force, ignore, pull bool
	var pf pushFlags
	cmd := &cobra.Command{
		Use:   "build [-f FILE] [CONTEXT] [-t NAME]",
		Short: "Build a spec file or a Dockerfile into an OCI image in the local store",
		Long: `Build a spec file (YAML or JSON), or a Dockerfile as docker build does, into an OCI image
in the local store, one cached layer per step (per instruction, for a Dockerfile). A cached
layer is skipped entirely. Needs root, runc and overlayfs (and mmdebstrap for debian_slim).

A FILE ending in .yaml, .yml or .json is a spec file; any other is a Dockerfile, built with
CONTEXT (default: the current folder) as its build context, and CONTEXT/Dockerfile is the
default FILE. For Dockerfiles: --build-arg, --target, --secret and --ssh, as in docker build;
<Dockerfile>.dockerignore beside the Dockerfile, or CONTEXT/.dockerignore, leaves files out.

STRATA_FORCE_BUILD=true and STRATA_IGNORE_CACHE=true act as --force-build and
--ignore-cache; STRATA_CACHE_REPO as --cache-from and --cache-to. With SOURCE_DATE_EPOCH
set, file times in every layer and the times in the image config are clamped to it, for
reproducible images.`,
		Example: `  strata build -f image.yaml -t myapp
  strata build -t myapp .
  strata build -f docker/Dockerfile --target test --build-arg GO=1.22 -t myapp-test .
  strata build --secret id=npmrc,src=$HOME/.npmrc --ssh default -t web .
  STRATA_FORCE_BUILD=1 strata build -f image.yaml -t myapp`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var img strata.Image
			var dir, specDigest string
			var opts []strata.Option
			switch ext := strings.ToLower(filepath.Ext(file)); {
			case ext == ".yaml" || ext == ".yml" || ext == ".json" || file == "-":
				if len(args) > 0 {
					return fmt.Errorf("a spec file names its own local files: CONTEXT is for Dockerfiles")
				}
				f, err := specfile.Load(file)
				if err != nil {
					return err
				}
				img, dir, specDigest = f.Image, f.Dir, f.Digest
				if name == "" && file == "-" {
					return fmt.Errorf("name the image with -t: a spec read from standard input has no file name to name it by")
				}
				if name == "" {
					name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
				}
			default:
				df, err := dockerfileBuild(file, args, buildArgs, target, name)
				if err != nil {
					return err
				}
				img, dir, name = df.img, df.dir, df.name
				if opts, err = buildSecretOptions(secretFlags, sshFlags); err != nil {
					return err
				}
			}
			mode := progressMode
			var size func() (int, int)
			if fd, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(fd.Fd())) {
				size = func() (int, int) {
					c, r, _ := term.GetSize(int(fd.Fd()))
					return c, r
				}
				if mode == "auto" {
					mode = "tty"
				}
			}
			if mode == "auto" {
				mode = "plain"
			}
			if mode != "tty" && mode != "plain" && mode != "json" {
				return fmt.Errorf("--progress %q: use auto, tty, plain or json", progressMode)
			}
			pr := newProgress(cmd.ErrOrStderr(), mode, size)
			opts = append(opts, strata.WithName(name), strata.WithProgress(pr.event), strata.WithResolveOptions(strata.WithDir(dir)))
			if force {
				opts = append(opts, strata.WithForceBuild())
			}
			if ignore {
				opts = append(opts, strata.WithIgnoreCache())
			}
			if pull {
				opts = append(opts, strata.WithPull())
			}
			if len(cacheFrom) > 0 {
				opts = append(opts, strata.WithCacheFrom(cacheFrom...))
			}
			if cacheTo != "" {
				opts = append(opts, strata.WithCacheTo(cacheTo))
			}
			built, err := img.Build(cmd.Context(), opts...)
			pr.close()
			if err != nil {
				return err
			}
			for _, w := range built.Plan.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", built.Name, built.Manifest)
			if specDigest != "" {
				writeMemo(cmd, specDigest, built)
			}
			if pushRef != "" {
				return pf.push(cmd, built, pushRef)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (.yaml, .yml, .json; - reads one from standard input, its paths relative to the working folder) or Dockerfile (default: CONTEXT/Dockerfile)")
	cmd.Flags().StringVarP(&name, "tag", "t", "", "name of the image in the store (default: the spec file's or the context folder's name)")
	cmd.Flags().BoolVar(&force, "force-build", false, "rebuild every layer and replace the cached entries")
	cmd.Flags().BoolVar(&ignore, "ignore-cache", false, "rebuild every layer without reading or replacing cached entries")
	cmd.Flags().BoolVar(&pull, "pull", false, "resolve registry images again instead of using the digests they were first pulled at")
	cmd.Flags().StringVar(&pushRef, "push", "", "push the image to this registry reference after building it")
	cmd.Flags().StringArrayVar(&cacheFrom, "cache-from", nil, "fetch layers another build stored in this registry repository instead of building them")
	cmd.Flags().StringVar(&cacheTo, "cache-to", "", "store every layer in this registry repository, by cache key")
	cmd.Flags().StringArrayVar(&buildArgs, "build-arg", nil, "Dockerfile: set an ARG (KEY=VALUE, or KEY to take it from the environment)")
	cmd.Flags().StringVar(&target, "target", "", "Dockerfile: the stage to build (default: the last)")
	cmd.Flags().StringArrayVar(&secretFlags, "secret", nil, "Dockerfile: a build secret, id=ID,src=FILE or id=ID,env=VAR")
	cmd.Flags().StringArrayVar(&sshFlags, "ssh", nil, "Dockerfile: an SSH agent for RUN --mount=type=ssh, default or ID=SOCKET")
	pf.add(cmd)
	cmd.Flags().StringVar(&progressMode, "progress", "auto", "progress output: auto, tty, plain or json")
	return cmd
}

// dockerfileImage is a Dockerfile build as the build command sets it up.
type dockerfileImage struct {
	img  strata.Image
	dir  string
	name string
}

// dockerfileBuild sets up a Dockerfile build as docker build does: FILE (default
// CONTEXT/Dockerfile), the context (default "."), BuildKit's ignore-file rule, build args
// (KEY alone takes the environment's value).
func dockerfileBuild(file string, args, buildArgs []string, target, name string) (*dockerfileImage, error) {
	ctxDir := "."
	if len(args) > 0 {
		ctxDir = args[0]
	}
	ctxDir, err := filepath.Abs(ctxDir)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(ctxDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("build context %s is not a folder", ctxDir)
	}
	if file == "" {
		file = filepath.Join(ctxDir, "Dockerfile")
	}
	if file, err = filepath.Abs(file); err != nil {
		return nil, err
	}
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("no Dockerfile: %w (give one with -f, or a spec file ending in .yaml)", err)
	}
	// BuildKit's rule: <Dockerfile>.dockerignore beside the Dockerfile, else the context's.
	ignore := []string{}
	for _, p := range []string{file + ".dockerignore", filepath.Join(ctxDir, ".dockerignore")} {
		if _, err := os.Stat(p); err == nil {
			if ignore, err = localfiles.ReadDockerignore(p); err != nil {
				return nil, fmt.Errorf("reading %s: %w", p, err)
			}
			break
		}
	}
	values := map[string]string{}
	for _, a := range buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue // as docker: an unset variable is no build arg
			}
		}
		values[k] = v
	}
	if name == "" {
		name = strings.ToLower(filepath.Base(ctxDir))
	}
	img := strata.FromDockerfileWith(strata.FromDockerfileOptions{Path: file, ContextDir: ctxDir, BuildArgs: values, Target: target, Ignore: ignore})
	return &dockerfileImage{img: img, dir: ctxDir, name: name}, nil
}

// buildSecretOptions reads --secret (id=ID,src=FILE | id=ID,env=VAR | id=ID for the
// environment variable ID) and --ssh (default | ID=SOCKET) as docker build takes them.
func buildSecretOptions(secrets, sshs []string) ([]strata.Option, error) {
	var opts []strata.Option
	for _, s := range secrets {
		fields := map[string]string{}
		for _, f := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(f, "=")
			fields[strings.TrimSpace(k)] = v
		}
		id := fields["id"]
		if id == "" {
			return nil, fmt.Errorf("--secret %q: want id=ID,src=FILE or id=ID,env=VAR", s)
		}
		var value []byte
		switch {
		case fields["src"] != "" || fields["source"] != "":
			src := fields["src"] + fields["source"]
			b, err := os.ReadFile(src)
			if err != nil {
				return nil, fmt.Errorf("--secret id=%s: %w", id, err)
			}
			value = b
		default:
			env := fields["env"]
			if env == "" {
				env = id
			}
			v, ok := os.LookupEnv(env)
			if !ok {
				return nil, fmt.Errorf("--secret id=%s: the environment variable %s is not set (give src=FILE or env=VAR)", id, env)
			}
			value = []byte(v)
		}
		opts = append(opts, strata.WithBuildSecret(id, value))
	}
	for _, s := range sshs {
		id, sock, ok := strings.Cut(s, "=")
		if !ok {
			sock = os.Getenv("SSH_AUTH_SOCK")
			if sock == "" {
				return nil, fmt.Errorf("--ssh %s: SSH_AUTH_SOCK is not set; start an agent (eval $(ssh-agent)) or give %s=SOCKET", id, id)
			}
		}
		opts = append(opts, strata.WithSSH(id, sock))
	}
	return opts, nil
}

func runCmd() *cobra.Command {
	var env, secretNames, binds, volumes []string
	var workdir, user, entrypoint, network, gpus string
	var detach, interactive, tty, rm bool
	cmd := &cobra.Command{
		Use:   "run NAME [flags] [-- CMD...]",
		Short: "Run a command in a container of a built image",
		Long: `Run a command in a new container of a built image, as docker run does: its env, workdir,
entrypoint and user, with its runtime-mounted local files (add_local_* without copy) in place.
Output is streamed, the exit code is strata's, Ctrl-C reaches the process, and the container
is removed after (--rm is the default). With -d it runs in the background: strata ps lists
it, strata logs ID prints its output, strata stop ID stops and removes it.

-v NAME:/path mounts a named volume (strata volume), and --mount LOCAL:REMOTE[:ro] a local
file or folder (read-only with :ro); --gpus asks for GPUs ("any", "H100", "a10g:2") through the machine's CDI specs.`,
		Example: `  strata run myapp -- python -c 'import numpy; print(numpy.__version__)'
  strata run myapp -e DEBUG=1 --secret api-keys -- python /app/main.py
  strata run myapp --mount ./data:/data -v hf-cache:/root/.cache/huggingface -- ls /data
  strata run -it myapp -- bash
  strata run -d myapp -- python -m http.server 8000 && strata ps`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !rm && !detach {
				return fmt.Errorf("--rm=false: a container that ran to its end keeps nothing worth keeping here; run it with -d to keep it running")
			}
			img, err := openImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, e := range env {
				if !strings.Contains(e, "=") {
					return fmt.Errorf("-e %q: want KEY=VALUE", e)
				}
			}
			o := strata.RunOptions{Args: args[1:], Env: env, Secrets: secretNames, Workdir: workdir, User: user, GPU: gpus}
			for _, b := range binds {
				bind, err := parseBind(b)
				if err != nil {
					return err
				}
				o.Binds = append(o.Binds, bind)
			}
			for _, v := range volumes {
				name, path, ok := strings.Cut(v, ":")
				if !ok || name == "" {
					return fmt.Errorf("-v %q: want VOLUME:/path, such as hf-cache:/root/.cache", v)
				}
				if o.Volumes == nil {
					o.Volumes = map[string]string{}
				}
				o.Volumes[path] = name
			}
			if entrypoint != "" {
				o.Entrypoint = []string{entrypoint}
			}
			switch network {
			case "host", "":
			case "none":
				o.NoNetwork = true
			default:
				return fmt.Errorf("--network %q: use host (the default) or none", network)
			}
			if detach {
				id, err := img.Start(cmd.Context(), o)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), id)
				return nil
			}
			stdinTTY, stdoutTTY := term.IsTerminal(int(os.Stdin.Fd())), term.IsTerminal(int(os.Stdout.Fd()))
			if tty && !stdinTTY {
				return fmt.Errorf("-t: the input is not a terminal")
			}
			o.Terminal = tty || (stdinTTY && stdoutTTY && !cmd.Flags().Changed("tty"))
			o.Stdout, o.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if interactive || o.Terminal {
				o.Stdin = os.Stdin
			}
			sig := make(chan os.Signal, 4)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
			defer signal.Stop(sig)
			o.Signals = sig
			// Ctrl-C is forwarded to the process rather than cancelling the run.
			err = img.Run(context.WithoutCancel(cmd.Context()), o)
			var ee *strata.ExitError
			if errors.As(err, &ee) {
				return &ExitCode{Code: ee.Code}
			}
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&env, "env", "e", nil, "set an environment variable (KEY=VALUE)")
	cmd.Flags().StringArrayVar(&secretNames, "secret", nil, "give a secret's keys as environment")
	cmd.Flags().StringArrayVar(&binds, "mount", nil, "mount a local file or folder (LOCAL:REMOTE, or LOCAL:REMOTE:ro read-only)")
	cmd.Flags().StringArrayVarP(&volumes, "volume", "v", nil, "mount a named volume (VOLUME:/path)")
	cmd.Flags().StringVarP(&workdir, "workdir", "w", "", "working folder in the container")
	cmd.Flags().StringVarP(&user, "user", "u", "", "run as this user (name, uid, or uid:gid)")
	cmd.Flags().StringVar(&entrypoint, "entrypoint", "", "replace the image's entrypoint (and its CMD)")
	cmd.Flags().StringVar(&network, "network", "host", "host, or none for only a loopback interface")
	cmd.Flags().StringVar(&gpus, "gpus", "", `GPUs for the container: "any", "H100", "a10g:2"`)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "run in the background and print the container's id")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "keep standard input open")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the process a terminal (the default when this one is a terminal)")
	cmd.Flags().BoolVar(&rm, "rm", true, "remove the container when it exits")
	return cmd
}

// parseBind reads --mount LOCAL:REMOTE[:ro|:rw], as docker's -v does for a local path.
func parseBind(b string) (strata.Bind, error) {
	local, remote, ok := strings.Cut(b, ":")
	remote, mode, _ := strings.Cut(remote, ":")
	if !ok || local == "" || !strings.HasPrefix(remote, "/") || (mode != "" && mode != "ro" && mode != "rw") {
		return strata.Bind{}, fmt.Errorf("--mount %q: want LOCAL:REMOTE[:ro] with an absolute REMOTE, such as ./data:/data or ./src:/src:ro", b)
	}
	return strata.Bind{Source: local, Target: remote, ReadOnly: mode == "ro"}, nil
}

func psCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ps",
		Short:   "List the containers started with strata run -d",
		Example: "  strata ps",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			all, err := c.Containers(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tIMAGE\tCOMMAND\tSTARTED\tSTATUS")
			for _, ct := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ct.ID, ct.Image, clip(strings.Join(ct.Command, " "), 40), ct.Started.Format("2006-01-02 15:04:05"), ct.Status)
			}
			return tw.Flush()
		},
	}
}

func stopCmd() *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:     "stop ID...",
		Short:   "Stop containers started with strata run -d, and remove them",
		Example: "  strata stop c1a2b3c4d5e6",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := c.Stop(cmd.Context(), id, grace); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), id)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&grace, "time", 10*time.Second, "how long SIGTERM has before SIGKILL")
	return cmd
}

func volumeCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "volume",
		Short: "Manage named volumes: folders that persist outside images",
		Long: `Named volumes are folders kept in strata's store, mounted into build steps
(run_commands and run_function volumes:), functions, and strata run -v NAME:/path. What is
written there persists across builds and runs and is never part of an image.`,
	}
	withClient := func(f func(cmd *cobra.Command, c *strata.Client, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			return f(cmd, c, args)
		}
	}
	root.AddCommand(&cobra.Command{
		Use: "create NAME", Short: "Create a volume", Args: cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *strata.Client, args []string) error {
			return c.CreateVolume(cmd.Context(), args[0])
		}),
	}, &cobra.Command{
		Use: "ls", Short: "List volumes", Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *strata.Client, args []string) error {
			vols, err := c.Volumes(cmd.Context())
			for _, v := range vols {
				fmt.Fprintln(cmd.OutOrStdout(), v)
			}
			return err
		}),
	}, &cobra.Command{
		Use: "rm NAME...", Short: "Remove volumes and what they hold", Args: cobra.MinimumNArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *strata.Client, args []string) error {
			for _, n := range args {
				if err := c.RemoveVolume(cmd.Context(), n); err != nil {
					return err
				}
			}
			return nil
		}),
	}, &cobra.Command{
		Use: "put NAME LOCAL [REMOTE]", Short: "Copy a local file or folder into a volume", Args: cobra.RangeArgs(2, 3),
		Example: "  strata volume put models ./weights /weights/",
		RunE: withClient(func(cmd *cobra.Command, c *strata.Client, args []string) error {
			remote := "/"
			if len(args) == 3 {
				remote = args[2]
			}
			return c.VolumePut(cmd.Context(), args[0], args[1], remote)
		}),
	}, &cobra.Command{
		Use: "get NAME REMOTE [LOCAL]", Short: "Copy a file or folder of a volume to a local path", Args: cobra.RangeArgs(2, 3),
		Example: "  strata volume get models /weights/tiny.bin .",
		RunE: withClient(func(cmd *cobra.Command, c *strata.Client, args []string) error {
			local := "."
			if len(args) == 3 {
				local = args[2]
			}
			return c.VolumeGet(cmd.Context(), args[0], args[1], local)
		}),
	})
	return root
}

func imagesCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "images",
		Short:   "List built images",
		Example: "  strata images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			imgs, err := c.Images(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tMANIFEST\tLAYERS\tSIZE\tCREATED")
			for _, img := range imgs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", img.Name, short(img.Manifest), len(img.Layers), human(img.Size), img.Created.Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
}

func inspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "inspect NAME [--json]",
		Short:   "Show an image's manifest digest, config and layers with their cache keys",
		Example: "  strata inspect myapp\n  strata inspect myapp --json | jq .config.config.Env",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := openImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			in, err := img.Inspect(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, in)
			}
			c := in.Config.Config
			fmt.Fprintf(out, "name:       %s\nid:         %s\nmanifest:   %s\nentrypoint: %q\ncmd:        %q\nworkdir:    %s\nuser:       %s\nenv:\n", in.Name, in.ID, in.Manifest, c.Entrypoint, c.Cmd, c.WorkingDir, c.User)
			for _, e := range c.Env {
				fmt.Fprintf(out, "  %s\n", e)
			}
			fmt.Fprintln(out, "layers:")
			for i, l := range in.Layers {
				fmt.Fprintf(out, "  %-3d %-28s %s\n", i, l.Method, l.Key)
				for _, b := range l.Blobs {
					fmt.Fprintf(out, "        %s %s\n", b.Digest, human(b.Size))
				}
				if l.Packages != nil {
					printPackages(out, "installed", l.Packages.Added)
					printPackages(out, "removed", l.Packages.Removed)
				}
			}
			for _, m := range in.Mounts {
				fmt.Fprintf(out, "mount %s: %d files at %s at start\n", m.Method, m.Files, m.Target)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printPackages shows a layer's packages, a line per package type, the first few of each
// (strata inspect --json lists them all).
func printPackages(out io.Writer, what string, pkgs []sbom.Package) {
	const shown = 12
	byType := map[string][]string{}
	var types []string
	for _, p := range pkgs {
		if _, ok := byType[p.Type]; !ok {
			types = append(types, p.Type)
		}
		byType[p.Type] = append(byType[p.Type], p.Name+" "+p.Version)
	}
	for _, t := range types {
		list := byType[t]
		more := ""
		if len(list) > shown {
			more = fmt.Sprintf(" and %d more", len(list)-shown)
			list = list[:shown]
		}
		fmt.Fprintf(out, "        %s (%s, %d): %s%s\n", what, t, len(byType[t]), strings.Join(list, ", "), more)
	}
}

func sbomCmd() *cobra.Command {
	var format, output string
	cmd := &cobra.Command{
		Use:   "sbom NAME [--format spdx|cyclonedx] [-o FILE]",
		Short: "Write an image's software bill of materials (SPDX 2.3 or CycloneDX 1.6 JSON)",
		Long: `Write the packages an image holds as an SPDX 2.3 or CycloneDX 1.6 JSON document: the
Debian packages, Python distributions and conda packages that the metadata of their package
managers lists in its layers, each with its package URL. strata push --sbom attaches the
document to the pushed image as an OCI referrer.`,
		Example: "  strata sbom myapp > myapp.spdx.json\n  strata sbom myapp --format cyclonedx -o myapp.cdx.json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := openImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			doc, err := img.SBOM(cmd.Context(), format)
			if err != nil {
				return err
			}
			doc = append(doc, '\n')
			if output == "" || output == "-" {
				_, err = cmd.OutOrStdout().Write(doc)
				return err
			}
			return os.WriteFile(output, doc, 0o644)
		},
	}
	cmd.Flags().StringVar(&format, "format", "spdx", "spdx or cyclonedx")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE instead of the standard output")
	return cmd
}

func rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Short:   "Remove image names (their layers stay cached until prune)",
		Example: "  strata rm myapp",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			for _, n := range args {
				if err := c.Remove(cmd.Context(), n); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", n)
			}
			return nil
		},
	}
}

func pruneCmd() *cobra.Command {
	var caches bool
	cmd := &cobra.Command{
		Use:   "prune [--caches]",
		Short: "Remove cache entries, blobs and snapshots that no named image uses",
		Long: `Remove cache entries that no named image uses, then the blobs, snapshots and logs that
nothing references, and say how much was freed. Builds and runs under way finish first.

--caches also empties the build caches that hold no layer: the download caches of apt, pip,
uv, poetry and micromamba that strata lends to the steps of those methods, and the folders
of RUN --mount=type=cache. It shows what each held.`,
		Example: "  strata rm old-image && strata prune\n  strata prune --caches",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			r, err := c.PruneWith(cmd.Context(), strata.PruneOptions{Caches: caches})
			if err != nil {
				return err
			}
			// The cache-hit path's memos go too: they only speed up builds.
			if err := fasthit.Remove(strata.Home()); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, cu := range r.Caches {
				what := "the " + cu.Name + " cache"
				if cu.Name == "cache-mounts" {
					what = "the RUN --mount=type=cache folders"
				}
				fmt.Fprintf(out, "emptied %s: %s\n", what, human(cu.Bytes))
			}
			fmt.Fprintf(out, "removed %d cache entries, %d blobs, %d snapshots: %s freed\n", r.Records, r.Blobs, r.Snapshots, human(r.Bytes))
			return nil
		},
	}
	cmd.Flags().BoolVar(&caches, "caches", false, "also empty the package download caches and the RUN --mount=type=cache folders")
	return cmd
}

func checkCmd() *cobra.Command {
	var repair, asJSON bool
	cmd := &cobra.Command{
		Use:   "check [--repair] [--json]",
		Short: "Verify the store: blobs against their digests, cache entries and images against their layers",
		Long: `Verify the store: every blob against its digest; every cache entry, compressed variant and
image against the blobs and snapshots it names; and every snapshot that is a layer's only copy
(a layer built here, before its first export or push) against the layer's diff ID.

Each problem is printed with what --repair does about it, and the command exits 1. With
--repair, check removes broken blobs, snapshots, cache entries and variants, so that the next
build rebuilds or pulls what was lost; an image that lost a layer is reported, to be built or
pulled again. Builds and runs under way finish before a repair starts.`,
		Example: "  strata check\n  strata check --repair",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			r, err := c.Check(cmd.Context(), repair)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := printJSON(out, r); err != nil {
					return err
				}
			} else {
				for _, p := range r.Problems {
					did := "repair would"
					if p.Repaired {
						did = "repaired:"
					}
					fmt.Fprintf(out, "%s: %s\n  %s %s\n", p.Object, p.Err, did, p.Repair)
				}
				fmt.Fprintf(out, "checked %d blobs, %d snapshots, %d cache entries, %d images: %d problems\n", r.Blobs, r.Snapshots, r.Records, r.Images, len(r.Problems))
			}
			for _, p := range r.Problems {
				if !p.Repaired {
					return &ExitCode{Code: 1}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "remove what is broken, so that the next build rebuilds it")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func exportCmd() *cobra.Command {
	var format, out, compression string
	var includeMounts bool
	cmd := &cobra.Command{
		Use:   "export NAME --format oci|docker -o PATH [--include-mounts] [--compression gzip|zstd|estargz]",
		Short: "Write an image as an OCI layout folder or a docker-archive tarball",
		Long: `Write an image as an OCI layout folder or a docker-archive tarball.

Files that the image mounts when a container starts (add_local_* without copy) are not part
of the image, so they are not exported: strata says so. --include-mounts adds them, as they
are now, as a last layer.`,
		Example: `  strata export myapp --format oci -o ./myapp-oci && skopeo inspect oci:./myapp-oci
  strata export myapp --format docker -o myapp.tar && podman load -i myapp.tar
  strata export myapp --format docker -o myapp.tar --include-mounts`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := openImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(img.Mounts) > 0 && !includeMounts {
				for _, m := range img.Mounts {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s mounts %d local file(s) at %s when a container starts; they are not in the export (add them with --include-mounts)\n", m.Method, m.Files, m.Target)
				}
			}
			return img.Export(cmd.Context(), out, strata.ExportOptions{Format: format, IncludeMounts: includeMounts, Compression: compression})
		},
	}
	cmd.Flags().StringVar(&format, "format", "oci", "oci (an OCI image layout folder) or docker (a docker-archive tarball)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "where to write")
	cmd.Flags().BoolVar(&includeMounts, "include-mounts", false, "add the runtime-mounted local files (add_local_* without copy) as a last layer")
	cmd.Flags().StringVar(&compression, "compression", "gzip", "layer compression: gzip, zstd or estargz (zstd and estargz in OCI layouts only)")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

func logsCmd() *cobra.Command {
	var layerIndex int
	cmd := &cobra.Command{
		Use:   "logs NAME|KEY|CONTAINER [--layer N]",
		Short: "Print the build logs of an image's layers, of one cache key, or a detached container's output",
		Long: `Print the build logs of an image's layers (the layers built, not those taken from the
cache by the last build), or the log of one layer by its cache key (a failed build prints it).`,
		Example: "  strata logs myapp\n  strata logs myapp --layer 2\n  strata logs sha256:4f2a...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			// A detached container's output.
			if rc, err := c.ContainerLog(cmd.Context(), args[0]); err == nil {
				defer rc.Close()
				_, err = io.Copy(cmd.OutOrStdout(), rc)
				return err
			}
			var layers []strata.LayerRef
			if img, err := c.Image(cmd.Context(), args[0]); err == nil {
				layers = img.Layers
			} else if strings.HasPrefix(args[0], "sha256:") {
				layers = []strata.LayerRef{{Key: args[0]}}
			} else {
				return err
			}
			out := cmd.OutOrStdout()
			for i, l := range layers {
				if layerIndex >= 0 && i != layerIndex {
					continue
				}
				fmt.Fprintf(out, "==> layer %d %s %s\n", i, l.Method, l.Key)
				rc, err := c.Log(cmd.Context(), l.Key)
				if errors.Is(err, strata.ErrNotFound) {
					fmt.Fprintln(out, "(no log: the layer has no build steps, or its log was pruned)")
					continue
				}
				if err != nil {
					return err
				}
				_, err = io.Copy(out, rc)
				rc.Close()
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&layerIndex, "layer", -1, "only this layer")
	return cmd
}

func secretCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "secret",
		Short: "Manage local secrets: named sets of environment variables for builds and runs",
		Long: `Secrets are named sets of KEY=VALUE pairs, stored in $STRATA_HOME/secrets with 0600
permissions. Build steps that name them (secrets: [NAME]) and strata run --secret NAME get them
as environment; their values never enter an image, a cache key or a log.`,
	}
	var dotenv string
	create := &cobra.Command{
		Use:     "create NAME KEY=VALUE... | --from-dotenv FILE",
		Short:   "Create or replace a secret",
		Example: "  strata secret create huggingface HF_TOKEN=hf_xxx\n  strata secret create app --from-dotenv .env",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vals, err := secrets.ParsePairs(args[1:])
			if err != nil {
				return err
			}
			if dotenv != "" {
				more, err := secrets.ParseDotenv(dotenv)
				if err != nil {
					return err
				}
				for k, v := range more {
					vals[k] = v
				}
			}
			c, err := open()
			if err != nil {
				return err
			}
			if err := c.CreateSecret(args[0], vals); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret %s: %d keys\n", args[0], len(vals))
			return nil
		},
	}
	create.Flags().StringVar(&dotenv, "from-dotenv", "", "read KEY=VALUE lines from a .env file")
	ls := &cobra.Command{
		Use:     "ls",
		Short:   "List secrets and their keys (never values)",
		Example: "  strata secret ls",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			all, err := c.Secrets()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKEYS")
			for n, keys := range all {
				fmt.Fprintf(tw, "%s\t%s\n", n, strings.Join(keys, ", "))
			}
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use:     "rm NAME...",
		Short:   "Remove secrets",
		Example: "  strata secret rm huggingface",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			for _, n := range args {
				if err := c.RemoveSecret(n); err != nil {
					return err
				}
			}
			return nil
		},
	}
	root.AddCommand(create, ls, rm)
	return root
}
