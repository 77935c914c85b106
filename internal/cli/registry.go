package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-build/strata"
)

// pushFlags are the flags of push, and of build --push.
type pushFlags struct {
	compression string
	mediaTypes  string
	sbom        string
}

func (f *pushFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.compression, "compression", "gzip", "layer compression: gzip, zstd or estargz (lazy-pullable gzip)")
	cmd.Flags().StringVar(&f.mediaTypes, "media-types", "oci", "manifest media types: oci, or docker for registries that predate OCI")
	cmd.Flags().StringVar(&f.sbom, "sbom", "", "attach the image's SBOM (spdx or cyclonedx) as an OCI referrer of the pushed image")
}

// push pushes an image and prints its digest.
func (f *pushFlags) push(cmd *cobra.Command, img *strata.Built, ref string) error {
	p := newTransfers(cmd.ErrOrStderr(), "pushed")
	d, err := img.Push(cmd.Context(), ref, strata.PushOptions{Compression: f.compression, MediaTypes: f.mediaTypes, SBOM: f.sbom, Progress: p.update})
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", ref, d)
	return nil
}

func pushCmd() *cobra.Command {
	var f pushFlags
	cmd := &cobra.Command{
		Use:   "push NAME REF [--compression gzip|zstd|estargz]",
		Short: "Push an image to a registry",
		Long: `Push an image from the store to a registry. Layers the registry already has are not
sent, and layers it has in another repository are mounted from there. Each layer is
recompressed once for --compression and kept, so pushing again compresses nothing.

Credentials come from the docker config (strata login, docker login, credential helpers).`,
		Example: `  strata push myapp registry.example.com/team/myapp:v1
  strata push myapp registry.example.com/team/myapp:v1-lazy --compression estargz`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := openImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return f.push(cmd, img, args[1])
		},
	}
	f.add(cmd)
	return cmd
}

func pullCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "pull REF [-t NAME]",
		Short: "Pull an image from a registry into the store",
		Long: `Pull an image into the store: its layers download and extract in parallel, each
checked against its digest. A tag is resolved at the registry now, and builds that use the
reference use that digest from then on.`,
		Example: `  strata pull registry.example.com/team/base:v1
  strata pull registry.example.com/team/base:v1 -t base`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			p := newTransfers(cmd.ErrOrStderr(), "pulled")
			img, err := c.Pull(cmd.Context(), args[0], strata.WithName(name), strata.WithTransferProgress(p.update))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", img.Name, img.Manifest)
			return nil
		},
	}
	cmd.Flags().StringVarP(&name, "tag", "t", "", "name of the image in the store (default: REF)")
	return cmd
}

func tagCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "tag NAME NEWNAME",
		Short:   "Give an image another name",
		Example: "  strata tag myapp myapp:v1",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := openImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return img.Tag(cmd.Context(), args[1])
		},
	}
}

func loginCmd() *cobra.Command {
	var user string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "login REGISTRY [-u USER] [--password-stdin]",
		Short: "Log in to a registry",
		Long: `Check a username and password (or token) with a registry and store them in the docker
config ($DOCKER_CONFIG/config.json or ~/.docker/config.json, or its credential helper),
where docker, podman, crane and strata find them.`,
		Example: `  echo "$TOKEN" | strata login registry.example.com -u ci --password-stdin
  strata login registry.example.com -u me`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := cmd.InOrStdin()
			if user == "" {
				if stdin {
					return fmt.Errorf("--password-stdin needs --username")
				}
				fmt.Fprint(cmd.ErrOrStderr(), "Username: ")
				line, err := bufio.NewReader(in).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("reading the username: %w", err)
				}
				user = strings.TrimSpace(line)
			}
			var password string
			switch f, ok := in.(*os.File); {
			case stdin:
				b, err := io.ReadAll(in)
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			case ok && term.IsTerminal(int(f.Fd())):
				fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
				b, err := term.ReadPassword(int(f.Fd()))
				fmt.Fprintln(cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				password = string(b)
			default:
				return fmt.Errorf("give the password on standard input with --password-stdin")
			}
			if password == "" {
				return fmt.Errorf("the password is empty")
			}
			c, err := open()
			if err != nil {
				return err
			}
			if err := c.Login(cmd.Context(), args[0], user, password); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "username")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password (or token) from standard input")
	return cmd
}

func logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "logout REGISTRY",
		Short:   "Remove a registry's credentials from the docker config",
		Example: "  strata logout registry.example.com",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			if err := c.Logout(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed the credentials of %s\n", args[0])
			return nil
		},
	}
}

// transfers prints one line per layer when it starts and when it ends.
type transfers struct {
	mu    sync.Mutex
	w     io.Writer
	verb  string
	state map[string]string
}

func newTransfers(w io.Writer, verb string) *transfers {
	return &transfers{w: w, verb: verb, state: map[string]string{}}
}

func (t *transfers) update(tr strata.Transfer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state[tr.Digest] == tr.Status {
		return
	}
	t.state[tr.Digest] = tr.Status
	switch tr.Status {
	case "exists":
		fmt.Fprintf(t.w, "%s: already there (%s)\n", short(tr.Digest), human(tr.Size))
	case "done":
		fmt.Fprintf(t.w, "%s: %s (%s)\n", short(tr.Digest), t.verb, human(tr.Size))
	default:
		fmt.Fprintf(t.w, "%s: %s %s\n", short(tr.Digest), tr.Status, human(tr.Size))
	}
}
