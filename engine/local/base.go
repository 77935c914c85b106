package local

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/internal/shell"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// BaseEpoch is the SOURCE_DATE_EPOCH of Debian bootstraps: the same package set always
// gives the same base layer digest.
var BaseEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// base produces a root layer's starting state: the bootstrap, the pull, or nothing.
func (e *Engine) base(ctx context.Context, l *spec.Layer, log io.Writer) (*state, error) {
	st := &state{config: e.emptyConfig()}
	switch l.Base.Kind {
	case spec.BaseScratch:
		return st, nil
	case spec.BaseDebian:
		desc, err := e.bootstrapDebian(ctx, l, log)
		if err != nil {
			return nil, err
		}
		st.layers = []store.LayerDesc{desc}
		st.config.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
		st.history = []v1.History{{
			Created:   v1.Time{Time: BaseEpoch},
			CreatedBy: fmt.Sprintf("mmdebstrap --variant=minbase %s (%s)", l.Base.Suite, strings.Join(l.Base.Packages, ",")),
		}}
		return st, nil
	case spec.BaseRegistry:
		return e.imageState(ctx, l.Base.Ref, l.Base.Digest, l.Base.Auth, log)
	}
	return nil, fmt.Errorf("unknown base kind %q", l.Base.Kind)
}

// bootstrapDebian builds a Debian base with mmdebstrap and commits it as one layer. The root
// layer's RUN instructions run as customize hooks in the same chroot, so the base is one
// reproducible layer. The executor then skips them.
func (e *Engine) bootstrapDebian(ctx context.Context, l *spec.Layer, log io.Writer) (store.LayerDesc, error) {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return store.LayerDesc{}, fmt.Errorf("debian_slim needs mmdebstrap: apt-get install -y mmdebstrap")
	}
	env := bootstrapEnv()
	chroot := `chroot "$1"`
	if !e.noPackageCaches && slices.Contains(l.Caches, "apt") {
		// apt on the host fetches through the caching proxy (which itself goes through the
		// user's proxy, if any); an --aptopt would stay in the image's apt configuration.
		url, err := e.aptProxyURL()
		if err != nil {
			return store.LayerDesc{}, err
		}
		env = append(env, "http_proxy="+url)
		// The hooks are the image's own steps: the proxy is apt's, not theirs; they see the
		// user's, as before.
		chroot = `env -u http_proxy chroot "$1"`
		if orig := os.Getenv("http_proxy"); orig != "" {
			// Through the environment: the arguments are logged, and a proxy URL may hold a
			// password.
			env = append(env, "STRATA_USER_HTTP_PROXY="+orig)
			chroot = `env http_proxy="$STRATA_USER_HTTP_PROXY" chroot "$1"`
		}
	}
	args := []string{
		"--variant=minbase", "--mode=root", "--format=tar",
		`--aptopt=Acquire::Check-Valid-Until "false"`,
		"--include=" + strings.Join(l.Base.Packages, ","),
		`--customize-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname"`,
	}
	if l.Base.Python != "" {
		check := fmt.Sprintf(`import sys; v="%%d.%%d" %% sys.version_info[:2]; sys.exit(0 if v == "%s" else "Debian %s ships Python " + v + ", not %s")`, l.Base.Python, l.Base.Suite, l.Base.Python)
		args = append(args, "--customize-hook="+chroot+" python3 -c "+shell.Quote(check))
	}
	for _, in := range l.Instructions {
		if in.Op == spec.OpRun && !in.JSON {
			args = append(args, "--customize-hook="+chroot+" /bin/sh -c "+shell.Quote(in.Args[0]))
		}
	}
	args = append(args, l.Base.Suite, "-", e.mirror)
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	cmd.Env = env
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return store.LayerDesc{}, err
	}
	fmt.Fprintf(log, "mmdebstrap %s\n", strings.Join(args, " "))
	release, err := container.StartPinned(cmd)
	if err != nil {
		return store.LayerDesc{}, err
	}
	defer release()
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	snap, err := e.store.NewWorkDir("snap-")
	if err != nil {
		stop()
		return store.LayerDesc{}, err
	}
	defer snap.Remove()
	root := snap.Path + "/root"
	if err := os.Mkdir(root, 0o755); err != nil {
		stop()
		return store.LayerDesc{}, err
	}
	// The tar is mmdebstrap's, rewritten, not one written from the snapshot, so the layer
	// keeps its blob.
	desc, err := e.commitBlob(func(w io.Writer) error {
		return rewriteBootstrap(out, w, root)
	})
	// Drain so mmdebstrap can finish even when we stopped reading on an error.
	_, _ = io.Copy(io.Discard, out)
	if werr := cmd.Wait(); werr != nil {
		return store.LayerDesc{}, &engine.BuildError{Command: "mmdebstrap " + l.Base.Suite, ExitCode: exitCode(werr), Err: werr}
	}
	if err != nil {
		return store.LayerDesc{}, err
	}
	if err := e.store.CommitSnapshot(root, desc.DiffID); err != nil {
		return store.LayerDesc{}, err
	}
	return desc, nil
}

// commitBlob writes the tar that write produces as a gzip layer blob in the store.
func (e *Engine) commitBlob(write func(io.Writer) error) (store.LayerDesc, error) {
	blob, err := e.store.NewBlob()
	if err != nil {
		return store.LayerDesc{}, err
	}
	defer blob.Close()
	diffID, err := layer.Gzip(blob, write)
	if err != nil {
		return store.LayerDesc{}, err
	}
	size := blob.Size()
	digest, err := blob.Commit("")
	if err != nil {
		return store.LayerDesc{}, err
	}
	return store.LayerDesc{Digest: digest, DiffID: diffID, Size: size, MediaType: layer.MediaTypeGzip}, nil
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// bootstrapEnv is the environment mmdebstrap runs in: the same for every caller (root or
// rootless, a login shell or a CI job), because it reaches the packages' maintainer scripts
// and the base's own RUN lines (customize hooks), and a variable there changes the base's
// bytes (without PYTHONDONTWRITEBYTECODE, py3compile's own imports leave timestamp-based
// .pyc files where it would write hash-based ones; HOME decides where caches go). Only the
// proxies, which change how packages are fetched and not what they contain, come from the
// caller.
func bootstrapEnv() []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"PYTHONDONTWRITEBYTECODE=1",
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", BaseEpoch.Unix()),
	}
	for _, k := range []string{"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// rewriteBootstrap copies mmdebstrap's tar into a canonical layer (names without "./", no
// device nodes under /dev, which runtimes provide) and extracts it into root at the same time.
func rewriteBootstrap(in io.Reader, out io.Writer, root string) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := layer.Extract(pr, root, layer.ExtractOptions{})
		pr.CloseWithError(err)
		done <- err
	}()
	tw := tar.NewWriter(io.MultiWriter(out, pw))
	tr := tar.NewReader(bufio.NewReaderSize(in, 1<<20))
	err := func() error {
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				return tw.Close()
			}
			if err != nil {
				return err
			}
			name := strings.TrimPrefix(strings.TrimPrefix(hdr.Name, "./"), "/")
			if name == "" || (strings.HasPrefix(name, "dev/") && name != "dev/") {
				continue
			}
			hdr.Name = name
			hdr.Uname, hdr.Gname = "", ""
			hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
			hdr.Format = tar.FormatPAX
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
	}()
	pw.CloseWithError(err)
	if xerr := <-done; err == nil && xerr != nil {
		err = fmt.Errorf("extracting the base: %w", xerr)
	}
	return err
}
