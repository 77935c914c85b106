// Package cli is the strata command line, a thin layer over the library.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/specfile"
)

// New returns the root command.
func New() *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Images as code: define container images as a chain of steps, build them into OCI images",
		Long: `strata builds container images from a chain of steps, one cached layer per step,
defined in Go (package github.com/strata-build/strata) or in a spec file:

  image:
    - debian_slim: {python_version: "3.13"}
    - apt_install: {packages: [git]}
    - pip_install: {packages: ["pandas==2.2.0"]}
    - env: {vars: {PORT: "6443"}}`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var engineName, addr string
	root.PersistentFlags().StringVar(&engineName, "engine", "", `the engine that builds: local (the default), or buildkit (STRATA_ENGINE)`)
	root.PersistentFlags().StringVar(&addr, "addr", "", "the buildkit engine's buildkitd: unix:///path, tcp://host:port, kube-pod://name (STRATA_BUILDKIT_ADDR; default: the one strata buildkit start runs)")
	root.PersistentPreRun = func(*cobra.Command, []string) {
		// The SDK reads the choice from the environment, as the engine does its address.
		if engineName != "" {
			os.Setenv("STRATA_ENGINE", engineName)
		}
		if addr != "" {
			os.Setenv("STRATA_BUILDKIT_ADDR", addr)
		}
	}
	root.AddCommand(buildkitCmd(), specCmd(), dockerfileCmd(), buildCmd(), runCmd(), imagesCmd(), inspectCmd(), sbomCmd(), rmCmd(), pruneCmd(), checkCmd(), exportCmd(), logsCmd(), secretCmd(), versionCmd(),
		pushCmd(), pullCmd(), tagCmd(), loginCmd(), logoutCmd(), psCmd(), stopCmd(), volumeCmd())
	return root
}

func specCmd() *cobra.Command {
	var file string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "spec -f FILE",
		Short: "Resolve a spec file and print its layers with their cache keys",
		Long: `Resolve a spec file: validate it, hash its local inputs and print one line per layer
with the method that made it and its cache key. Nothing is built.`,
		Example: `  strata spec -f image.yaml
  strata spec -f image.yaml --json | jq '.layers[].key'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, specDigest, err := resolve(cmd.Context(), file)
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if asJSON {
				if err := writePlanJSON(&out, plan); err != nil {
					return err
				}
			} else {
				for i, l := range plan.Layers {
					fmt.Fprintf(&out, "%-3d %-30s %s\n", i, l.Method, l.Key)
				}
				for _, m := range plan.Mounts {
					fmt.Fprintf(&out, "    %-30s mounted at %s when a container starts (%d files)\n", m.Method, m.Target, len(m.Files))
				}
			}
			if _, err := cmd.OutOrStdout().Write(out.Bytes()); err != nil {
				return err
			}
			writeSpecMemo(cmd, specDigest, plan, out.String())
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (YAML or JSON; - reads standard input, its paths relative to the working folder)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"layers": [{"method", "key", "instructions"}...]}`)
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func dockerfileCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "dockerfile -f FILE",
		Short: "Print the Dockerfile equivalent to a spec file",
		Long: `Print a Dockerfile that builds the same image with docker or buildah. What a Dockerfile
cannot express (secrets as environment, GPUs, volumes, runtime mounts) is written as comments.`,
		Example: `  strata dockerfile -f image.yaml > Dockerfile`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, _, err := resolve(cmd.Context(), file)
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), plan.Dockerfile())
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (YAML or JSON; - reads standard input, its paths relative to the working folder)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print strata's builder version",
		Example: "  strata version",
		Args:    cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "strata builder %s\n", strata.BuilderVersion)
		},
	}
}

// resolve resolves a spec file with the registry references it uses keyed by the digests
// they were pinned to when first pulled, as a build would key them; nothing is pulled.
func resolve(ctx context.Context, file string) (*strata.Plan, string, error) {
	f, err := specfile.Load(file)
	if err != nil {
		return nil, "", err
	}
	c, err := open()
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	plan, err := c.Resolve(ctx, f.Image, strata.WithResolveOptions(strata.WithDir(f.Dir)))
	return plan, f.Digest, err
}

func writePlanJSON(w io.Writer, plan *strata.Plan) error {
	type layer struct {
		Method       string   `json:"method"`
		Key          string   `json:"key"`
		Instructions []string `json:"instructions"`
	}
	out := struct {
		Builder string  `json:"builder"`
		Layers  []layer `json:"layers"`
	}{Builder: plan.Builder}
	for _, l := range plan.Layers {
		ins := []string{}
		for _, in := range l.Instructions {
			ins = append(ins, in.String())
		}
		out.Layers = append(out.Layers, layer{Method: l.Method, Key: l.Key, Instructions: ins})
	}
	return printJSON(w, out)
}

// printJSON writes v as indented JSON, with <, > and & as they are.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
