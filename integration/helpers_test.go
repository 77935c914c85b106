// Package integration tests strata end to end with real components: runc, overlayfs,
// mmdebstrap bootstraps from Debian's mirror, pip against a local PEP 503 index, Debian's
// docker-registry, skopeo, umoci and podman. They need root. Without STRATA_INTEGRATION=1
// a missing prerequisite skips them; with it (as in CI) it fails them.
package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/pyindex"
	"github.com/strata-build/strata/internal/rootless"
)

// home is the store shared by the tests, so that the Debian base is bootstrapped once.
var home string

// strataBin is the CLI built for the tests that need a separate process.
var strataBin string

func TestMain(m *testing.M) {
	// As an ordinary user the tests run again in a user namespace, as strata itself does:
	// the rootless run of the suite.
	if err := rootless.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	home = os.Getenv("STRATA_TEST_HOME")
	cleanup := func() {}
	if rootless.Active() {
		undo, err := containerToolsRootless()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = undo
	}
	if home == "" {
		// A space in the path, as users have: mount points in /proc/self/mountinfo are then
		// escaped, and every test checks that strata still finds and removes its mounts.
		d, err := os.MkdirTemp("/var/tmp", "strata it-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		home = d
		undo := cleanup
		cleanup = func() { exec.Command("rm", "-rf", d).Run(); undo() }
	}
	bin, err := os.MkdirTemp("", "strata-bin-")
	if err == nil {
		strataBin = filepath.Join(bin, "strata")
		// The strata front, strata-core beside it, which it runs for all but a cache hit,
		// and strata-buildkit, which strata-core runs for --engine buildkit. Static, as the
		// README installs them (CGO_ENABLED=0: no dynamic loader at each start).
		cmd := exec.Command("go", "build", "-o", bin+"/", "../cmd/...")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building the strata commands: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	cleanup()
	os.RemoveAll(bin)
	os.Exit(code)
}

// containerToolsRootless tells the tools the tests check strata's images with (buildah,
// podman, skopeo), which run as root of the test's user namespace in the rootless run of
// the suite, that they run in a user namespace made for them, as `podman unshare` tells
// them: they then keep their state in the user's home rather than root's
// /var/lib/containers and /run, and make no cgroups. A session without XDG_RUNTIME_DIR (su,
// setpriv) gets one for the run.
func containerToolsRootless() (func(), error) {
	for _, m := range []struct{ file, env string }{{"/proc/self/uid_map", "_CONTAINERS_ROOTLESS_UID"}, {"/proc/self/gid_map", "_CONTAINERS_ROOTLESS_GID"}} {
		b, err := os.ReadFile(m.file)
		if err != nil {
			return nil, err
		}
		f := strings.Fields(string(b))
		if len(f) < 3 || f[0] != "0" {
			return nil, fmt.Errorf("%s maps no id to 0: %q", m.file, b)
		}
		os.Setenv(m.env, f[1])
	}
	os.Setenv("_CONTAINERS_USERNS_CONFIGURED", "done")
	// Their storage on overlayfs, as root's (a new user's default may be vfs, which copies
	// every layer: the conformance corpus then fills tens of GB), in a folder of the run.
	d, err := os.MkdirTemp("/var/tmp", "strata-it-containers-")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(d, "storage.conf")
	// rootless_storage_path too: skopeo's containers/storage reads that one, not graphroot,
	// for a rootless user, and buildah's graphroot; both must find the same images.
	text := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %[1]q\nrootless_storage_path = %[1]q\nrunroot = %[2]q\n", filepath.Join(d, "storage"), filepath.Join(d, "run"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	os.Setenv("CONTAINERS_STORAGE_CONF", conf)
	// And podman's own state (its database remembers the storage driver) there too.
	engine := filepath.Join(d, "containers.conf")
	text = fmt.Sprintf("[engine]\nstatic_dir = %q\nvolume_path = %q\ntmp_dir = %q\n", filepath.Join(d, "libpod"), filepath.Join(d, "volumes"), filepath.Join(d, "libpod-tmp"))
	if err := os.WriteFile(engine, []byte(text), 0o644); err != nil {
		return nil, err
	}
	os.Setenv("CONTAINERS_CONF", engine)
	// buildah keeps RUN --mount=type=cache folders in $TMPDIR/buildah-cache, which a root
	// run before this one made root's own in /var/tmp.
	if err := os.Mkdir(filepath.Join(d, "tmp"), 0o1777); err != nil {
		return nil, err
	}
	os.Setenv("TMPDIR", filepath.Join(d, "tmp"))
	if os.Getenv("XDG_RUNTIME_DIR") == "" {
		os.Setenv("XDG_RUNTIME_DIR", filepath.Join(d, "xdg"))
		if err := os.Mkdir(filepath.Join(d, "xdg"), 0o700); err != nil {
			return nil, err
		}
	}
	return func() {
		exec.Command("buildah", "rm", "--all").Run()
		exec.Command("rm", "-rf", d).Run()
	}, nil
}

// need skips (or, in CI, fails) a test whose prerequisites are missing.
func need(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("STRATA_INTEGRATION") == "1" {
		t.Fatalf("missing prerequisites: %s", strings.Join(missing, ", "))
	}
	t.Skipf("missing prerequisites: %s (set STRATA_INTEGRATION=1 to fail instead)", strings.Join(missing, ", "))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	return c
}

// build builds img into the shared store.
func build(t *testing.T, img strata.Image, name string, opts ...strata.Option) *strata.Built {
	t.Helper()
	b, err := img.Build(ctx(t), append([]strata.Option{strata.WithHome(home), strata.WithName(name), strata.WithResolveOptions(strata.WithHashCache(""))}, opts...)...)
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	return b
}

// run runs args in a built image and returns stdout.
func run(t *testing.T, b *strata.Built, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := b.Run(ctx(t), strata.RunOptions{Args: args, Stdout: &out, Stderr: &errb}); err != nil {
		t.Fatalf("run %q: %v\nstderr: %s", args, err, errb.String())
	}
	return out.String()
}

// cli runs the strata binary against the shared store.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return cliEnv(t, nil, "", args...)
}

// cliEnv runs the strata binary with more environment (STRATA_HOME=... to use another
// store, DOCKER_CONFIG=...) and standard input.
func cliEnv(t *testing.T, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(append(os.Environ(), "STRATA_HOME="+home), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// packageIndex serves wheels as a PEP 503 simple index on 127.0.0.1 and returns its URL.
func packageIndex(t *testing.T, wheels map[string][]byte) string {
	t.Helper()
	srv := httptest.NewServer(pyindex.Handler(wheels))
	t.Cleanup(srv.Close)
	return srv.URL + "/simple"
}

// countingIndex is packageIndex that counts the downloads of package files.
func countingIndex(t *testing.T, wheels map[string][]byte) (string, *atomic.Int64) {
	t.Helper()
	downloads := &atomic.Int64{}
	h := pyindex.Handler(wheels)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/files/") {
			downloads.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/simple", downloads
}

// registry starts Debian's docker-registry (distribution) on a free loopback port.
func registry(t *testing.T) string { return startRegistry(t, regOpts{}) }

// regOpts configure a docker-registry: basic auth from an htpasswd file, TLS, an address.
type regOpts struct {
	htpasswd string // the file's content
	cert     string // PEM files
	key      string
	host     string // default 127.0.0.1
}

// startRegistry starts Debian's docker-registry with the options and returns host:port.
func startRegistry(t *testing.T, o regOpts) string {
	t.Helper()
	need(t, "docker-registry")
	host := o.host
	if host == "" {
		host = "127.0.0.1"
	}
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/data\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", dir, addr)
	scheme := "http"
	if o.cert != "" {
		write(t, dir, "cert.pem", o.cert)
		write(t, dir, "key.pem", o.key)
		cfg += fmt.Sprintf("  tls:\n    certificate: %s/cert.pem\n    key: %s/key.pem\n", dir, dir)
		scheme = "https"
	}
	if o.htpasswd != "" {
		write(t, dir, "htpasswd", o.htpasswd)
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: strata-test\n    path: %s/htpasswd\n", dir)
	}
	write(t, dir, "config.yml", cfg)
	cmd := exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
	logf, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for i := 0; i < 100; i++ {
		if resp, err := client.Get(scheme + "://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
	t.Fatalf("docker-registry did not start:\n%s", log)
	return ""
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// unique makes build steps that no other test (or earlier run) has cached.
func unique(t *testing.T) string {
	return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
}

// execOut runs a tool and returns its combined output.
func execOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
