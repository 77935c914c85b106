// Package buildkit is strata's second engine: it translates a resolved plan into BuildKit's
// LLB and solves it on a buildkitd, local or remote, through BuildKit's Go client. The image
// BuildKit exports is imported into strata's local store, so run, export, push and inspect
// work on it as on a local build; everything but Build is the local store's.
//
// The package links BuildKit's client (gRPC, OpenTelemetry), whose initialisation costs
// every process about 10 ms, so strata's own binary does not import it: programs that want
// this engine import it for its side effect, as database/sql drivers are, and the strata
// command runs strata-buildkit, the same command with this engine linked in.
package buildkit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	_ "github.com/moby/buildkit/client/connhelper/kubepod" // kube-pod:// addresses
	_ "github.com/moby/buildkit/client/connhelper/ssh"     // ssh:// addresses
	"github.com/sirupsen/logrus"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// Name is the engine's name for --engine and strata.WithEngine.
const Name = "buildkit"

// Store is the local store the engine keeps its images in: strata's local engine.
type Store interface {
	// Its Build builds the base layers (debian_slim's bootstrap, a pulled image), which
	// BuildKit then reads from the store as an OCI layout.
	engine.Engine
	// BlobRoot is the store's blobs folder, laid out as an OCI content store.
	BlobRoot() string
	// NewBlob writes a blob into the store, verified when committed.
	NewBlob() (*store.BlobWriter, error)
	// Hold keeps prune away until release is called.
	Hold() (release func(), err error)
	// SecretEnv returns named local secrets as KEY=VALUE pairs.
	SecretEnv(names []string) ([]string, error)
	// ArtifactFiles fetches a layer's artifacts (checked against their pinned digests) and
	// unpacks them: the context files they add to the layer. release removes them.
	ArtifactFiles(ctx context.Context, artifacts []spec.Artifact, log io.Writer) (files []spec.ContextFile, release func(), err error)
	// Import records an image that the engine exported into the store (its manifest
	// digest) for a plan, and names it.
	Import(ctx context.Context, engineName, manifest string, p engine.Plan, name string) (*engine.Image, error)
}

// Options say which buildkitd to use and how to reach it.
type Options struct {
	// Addr is the daemon's address: unix:///path, tcp://host:port, kube-pod://pod,
	// ssh://user@host.
	Addr string
	// CACert, Cert and Key are PEM files for TLS to a tcp:// daemon: the CA that signed the
	// daemon's certificate, and the client's own certificate and key (mutual TLS).
	CACert, Cert, Key string
	// ServerName is the name the daemon's certificate is checked against (default: the
	// address's host).
	ServerName string
	// NoPackageCaches turns off the package managers' download caches, as it does for the
	// local engine (STRATA_NO_PACKAGE_CACHES).
	NoPackageCaches bool
}

// OptionsFromEnv reads STRATA_BUILDKIT_ADDR, STRATA_BUILDKIT_CA, STRATA_BUILDKIT_CERT,
// STRATA_BUILDKIT_KEY and STRATA_BUILDKIT_SERVER_NAME.
func OptionsFromEnv() Options {
	return Options{
		Addr:            os.Getenv("STRATA_BUILDKIT_ADDR"),
		CACert:          os.Getenv("STRATA_BUILDKIT_CA"),
		Cert:            os.Getenv("STRATA_BUILDKIT_CERT"),
		Key:             os.Getenv("STRATA_BUILDKIT_KEY"),
		ServerName:      os.Getenv("STRATA_BUILDKIT_SERVER_NAME"),
		NoPackageCaches: os.Getenv("STRATA_NO_PACKAGE_CACHES") != "",
	}
}

// ErrUnsupported is the class of errors about a method or instruction that this engine does
// not build yet; the local engine builds it.
var ErrUnsupported = errors.New("not supported by the buildkit engine")

// Engine builds on a buildkitd and keeps its images in a local store.
type Engine struct {
	Store
	addr string
	opts []client.ClientOpt
	// noPackageCaches: see Options.
	noPackageCaches bool

	mu sync.Mutex
	c  *client.Client
	// devices are the CDI devices of the daemon's workers, as connect found them.
	devices []client.CDIDevice
}

// Open checks the options and returns the engine. It reaches the daemon on its first build
// only, so that the commands that never build (images, run, push) work with
// STRATA_ENGINE=buildkit set and no daemon running.
func Open(ctx context.Context, st Store, o Options) (*Engine, error) {
	if o.Addr == "" {
		return nil, fmt.Errorf("the buildkit engine needs a daemon's address: --addr, STRATA_BUILDKIT_ADDR, or strata buildkit start for a local one")
	}
	var opts []client.ClientOpt
	if o.CACert != "" || o.Cert != "" || o.Key != "" {
		if !strings.HasPrefix(o.Addr, "tcp://") {
			return nil, fmt.Errorf("TLS options are for a tcp:// daemon, not %s", o.Addr)
		}
		if (o.Cert == "") != (o.Key == "") {
			return nil, fmt.Errorf("a client certificate needs its key, and a key its certificate (STRATA_BUILDKIT_CERT, STRATA_BUILDKIT_KEY)")
		}
		name := o.ServerName
		if name == "" {
			hostport := strings.TrimPrefix(o.Addr, "tcp://")
			if h, _, err := net.SplitHostPort(hostport); err == nil {
				name = h // without an IPv6 address's brackets
			} else {
				name = hostport
			}
		}
		for _, f := range []string{o.CACert, o.Cert, o.Key} {
			if f == "" {
				continue
			}
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("buildkit TLS: %w", err)
			}
		}
		if o.Cert != "" {
			if _, err := tls.LoadX509KeyPair(o.Cert, o.Key); err != nil {
				return nil, fmt.Errorf("buildkit TLS: %s and %s: %w", o.Cert, o.Key, err)
			}
		}
		opts = append(opts, client.WithServerConfig(name, o.CACert))
		if o.Cert != "" {
			opts = append(opts, client.WithCredentials(o.Cert, o.Key))
		}
	}
	return &Engine{Store: st, addr: o.Addr, opts: opts, noPackageCaches: o.NoPackageCaches}, nil
}

// connect reaches the daemon, once, and checks that it answers, so that a wrong address or
// a refused certificate fails here, named.
func (e *Engine) connect(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c != nil {
		return nil
	}
	quietLogs()
	c, err := client.New(ctx, e.addr, e.opts...)
	if err != nil {
		return fmt.Errorf("buildkit engine: %s: %w", e.addr, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	workers, err := c.ListWorkers(wctx)
	if err != nil {
		c.Close()
		return fmt.Errorf("buildkit engine: no buildkitd answers at %s (start one with strata buildkit start, or check --addr and the TLS files): %w", e.addr, err)
	}
	if err := checkPlatform(e.addr, workers, runtime.GOARCH); err != nil {
		c.Close()
		return err
	}
	e.c = c
	for _, w := range workers {
		e.devices = append(e.devices, w.CDIDevices...)
	}
	return nil
}

// checkPlatform says, before anything is solved, whether the daemon has a worker for
// linux/arch: strata's base layers are this machine's architecture, and a daemon of another
// would fail at the first step with an exec format error.
func checkPlatform(addr string, workers []*client.WorkerInfo, arch string) error {
	var have []string
	for _, w := range workers {
		for _, p := range w.Platforms {
			if p.OS == "linux" && p.Architecture == arch {
				return nil
			}
			have = append(have, platforms.Format(p))
		}
	}
	if len(have) == 0 {
		return fmt.Errorf("buildkit engine: the buildkitd at %s has no worker", addr)
	}
	return fmt.Errorf("buildkit engine: the buildkitd at %s builds for %s, not linux/%s (this machine's architecture, which strata's base layers have): use a daemon on a linux/%s host, or one with QEMU emulation for it", addr, strings.Join(have, ", "), arch, arch)
}

// Close closes the connection, if there is one, and the store.
func (e *Engine) Close() error {
	e.mu.Lock()
	var err error
	if e.c != nil {
		err = e.c.Close()
	}
	e.mu.Unlock()
	if serr := e.Store.Close(); err == nil {
		err = serr
	}
	return err
}

var quiet sync.Once

// quietLogs keeps containerd's and BuildKit's client packages, which log through logrus at
// warning level by default, from writing notices (fsverity on every content store) to the
// user's terminal beside strata's progress.
func quietLogs() {
	quiet.Do(func() {
		if logrus.GetLevel() > logrus.ErrorLevel {
			logrus.SetLevel(logrus.ErrorLevel)
		}
	})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func init() {
	engine.Register(Name, func(ctx context.Context, st engine.Engine, addr string) (engine.Engine, error) {
		s, ok := st.(Store)
		if !ok {
			return nil, fmt.Errorf("the buildkit engine keeps its images in strata's local store, not a %T", st)
		}
		o := OptionsFromEnv()
		if addr != "" {
			o.Addr = addr
		}
		if o.Addr == "" {
			// The daemon strata buildkit start runs for this store's home.
			if sock := filepath.Join(s.BlobRoot(), "buildkit", "buildkitd.sock"); fileExists(sock) {
				o.Addr = "unix://" + sock
			}
		}
		return Open(ctx, s, o)
	})
}
