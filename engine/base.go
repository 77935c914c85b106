package engine

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

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
	st := &state{config: v1.ConfigFile{Architecture: "amd64", OS: "linux"}}
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
		return e.pull(ctx, l.Base, log)
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
	args := []string{
		"--variant=minbase", "--mode=root", "--format=tar",
		`--aptopt=Acquire::Check-Valid-Until "false"`,
		"--include=" + strings.Join(l.Base.Packages, ","),
		`--customize-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname"`,
	}
	if l.Base.Python != "" {
		check := fmt.Sprintf(`import sys; v="%%d.%%d" %% sys.version_info[:2]; sys.exit(0 if v == "%s" else "Debian %s ships Python " + v + ", not %s")`, l.Base.Python, l.Base.Suite, l.Base.Python)
		args = append(args, `--customize-hook=chroot "$1" python3 -c `+shell.Quote(check))
	}
	for _, in := range l.Instructions {
		if in.Op == spec.OpRun && !in.JSON {
			args = append(args, `--customize-hook=chroot "$1" /bin/sh -c `+shell.Quote(in.Args[0]))
		}
	}
	args = append(args, l.Base.Suite, "-", e.Mirror)
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", BaseEpoch.Unix()))
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return store.LayerDesc{}, err
	}
	fmt.Fprintf(log, "mmdebstrap %s\n", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return store.LayerDesc{}, err
	}
	snap, err := e.Store.NewWorkDir("snap-")
	if err != nil {
		return store.LayerDesc{}, err
	}
	defer snap.Remove()
	root := snap.Path + "/root"
	if err := os.Mkdir(root, 0o755); err != nil {
		return store.LayerDesc{}, err
	}
	desc, err := layer.CommitStream(e.Store, func(w io.Writer) error {
		return rewriteBootstrap(out, w, root)
	})
	// Drain so mmdebstrap can finish even when we stopped reading on an error.
	_, _ = io.Copy(io.Discard, out)
	if werr := cmd.Wait(); werr != nil {
		return store.LayerDesc{}, &BuildError{Command: "mmdebstrap " + l.Base.Suite, ExitCode: exitCode(werr), Err: werr}
	}
	if err != nil {
		return store.LayerDesc{}, err
	}
	if err := e.Store.CommitSnapshot(root, desc.DiffID); err != nil {
		return store.LayerDesc{}, err
	}
	return desc, nil
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// rewriteBootstrap copies mmdebstrap's tar into a canonical layer (names without "./", no
// device nodes under /dev, which runtimes provide) and extracts it into root at the same time.
func rewriteBootstrap(in io.Reader, out io.Writer, root string) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := layer.Extract(pr, root, nil)
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

// pull fetches a registry image's layers into the store and extracts them.
func (e *Engine) pull(ctx context.Context, base *spec.Base, log io.Writer) (*state, error) {
	opts := []name.Option{}
	if insecureRegistry(base.Ref) {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(base.Ref, opts...)
	if err != nil {
		return nil, err
	}
	auth, err := e.registryAuth(base)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "pulling %s\n", ref)
	img, err := remote.Image(ref, remote.WithContext(ctx), auth, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", base.Ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pulling %s: config: %w", base.Ref, err)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	st := &state{config: v1.ConfigFile{Architecture: cfg.Architecture, OS: cfg.OS, Config: cfg.Config}, history: cfg.History}
	for i, l := range ls {
		digest, err := l.Digest()
		if err != nil {
			return nil, err
		}
		diffID, err := l.DiffID()
		if err != nil {
			return nil, err
		}
		mt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		size, err := l.Size()
		if err != nil {
			return nil, err
		}
		desc := store.LayerDesc{Digest: digest.String(), DiffID: diffID.String(), Size: size, MediaType: ociMediaType(mt)}
		if !e.Store.HasBlob(desc.Digest) {
			fmt.Fprintf(log, "layer %d/%d %s (%d bytes)\n", i+1, len(ls), desc.Digest, size)
			rc, err := l.Compressed()
			if err != nil {
				return nil, err
			}
			w, err := e.Store.NewBlob()
			if err != nil {
				rc.Close()
				return nil, err
			}
			_, err = io.Copy(w, rc)
			rc.Close()
			if err == nil {
				_, err = w.Commit(desc.Digest)
			}
			w.Close()
			if err != nil {
				return nil, fmt.Errorf("pulling %s layer %s: %w", base.Ref, desc.Digest, err)
			}
		}
		if err := e.ensureSnapshot(st.layers, desc); err != nil {
			return nil, fmt.Errorf("%s layer %d (%s): %w", base.Ref, i+1, desc.Digest, err)
		}
		st.layers = append(st.layers, desc)
	}
	return st, nil
}

func ociMediaType(mt types.MediaType) string {
	switch mt {
	case types.DockerLayer:
		return string(types.OCILayer)
	case types.DockerUncompressedLayer:
		return string(types.OCIUncompressedLayer)
	}
	return string(mt)
}

// insecureRegistry reports whether a reference's registry is reached over plain http:
// loopback addresses, and those in STRATA_INSECURE_REGISTRIES (comma-separated hosts).
func insecureRegistry(ref string) bool {
	host := strings.SplitN(ref, "/", 2)[0]
	h := host
	if i := strings.LastIndex(h, ":"); i > 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	if h == "localhost" || strings.HasPrefix(h, "127.") || h == "[::1]" {
		return true
	}
	for _, r := range strings.Split(os.Getenv("STRATA_INSECURE_REGISTRIES"), ",") {
		if r != "" && (r == host || r == h) {
			return true
		}
	}
	return false
}

// registryAuth returns the credentials for a base's registry.
func (e *Engine) registryAuth(base *spec.Base) (remote.Option, error) {
	if base.Auth == nil {
		return remote.WithAuthFromKeychain(authn.DefaultKeychain), nil
	}
	vals, err := e.Secrets.Get(base.Auth.Secret)
	if err != nil {
		return nil, err
	}
	switch base.Auth.Type {
	case "static":
		user, pass := vals["REGISTRY_USERNAME"], vals["REGISTRY_PASSWORD"]
		if user == "" || pass == "" {
			return nil, fmt.Errorf("secret %q needs REGISTRY_USERNAME and REGISTRY_PASSWORD for %s", base.Auth.Secret, base.Ref)
		}
		return remote.WithAuth(&authn.Basic{Username: user, Password: pass}), nil
	}
	return nil, fmt.Errorf("%s registry login for %s is not available in the local engine; pull with from_registry and static credentials (REGISTRY_USERNAME, REGISTRY_PASSWORD) instead", base.Auth.Type, base.Ref)
}

// ensureSnapshot extracts a layer from its blob if its snapshot is missing. below are the
// layers under it, bottom first.
func (e *Engine) ensureSnapshot(below []store.LayerDesc, l store.LayerDesc) error {
	if e.Store.HasSnapshot(l.DiffID) {
		return nil
	}
	f, err := os.Open(e.Store.BlobPath(l.Digest))
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.Contains(l.MediaType, "gzip") {
		gz, err := pgzip.NewReader(f)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	} else if strings.Contains(l.MediaType, "zstd") {
		zr, err := zstd.NewReader(f)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	var lowers []string
	for i := len(below) - 1; i >= 0; i-- {
		lowers = append(lowers, e.Store.SnapshotPath(below[i].DiffID))
	}
	work, err := e.Store.NewWorkDir("snap-")
	if err != nil {
		return err
	}
	defer work.Remove()
	root := work.Path + "/root"
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	if err := layer.Extract(r, root, lowers); err != nil {
		return err
	}
	return e.Store.CommitSnapshot(root, l.DiffID)
}
