package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-build/strata"
	_ "github.com/strata-build/strata/engine/buildkit" // the buildkit engine, for strata.WithEngine
	"github.com/strata-build/strata/internal/pyindex"
	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/secrets"
)

// buildkitd starts a buildkitd (the one scripts/test.sh builds from BuildKit's module, on
// PATH or at STRATA_TEST_BUILDKITD) with its state in a folder of the test, and returns its
// unix socket's address. It stops when the test ends.
func buildkitd(t *testing.T, args ...string) string {
	t.Helper()
	return buildkitdIn(t, "", args...)
}

// buildkitdIn starts buildkitd in the network namespace netns ("" for the host's).
func buildkitdIn(t *testing.T, netns string, args ...string) string {
	t.Helper()
	if rootless.Active() {
		t.Skip("buildkitd runs as root here: rootless buildkitd needs rootlesskit, which is not installed")
	}
	bin := os.Getenv("STRATA_TEST_BUILDKITD")
	if bin == "" {
		need(t, "runc", "buildkitd")
		bin, _ = exec.LookPath("buildkitd")
	}
	dir, err := os.MkdirTemp("/tmp", "bk-") // a short path: a socket's is at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "buildkitd.sock")
	addr := "unix://" + sock
	var log bytes.Buffer
	argv := append([]string{bin, "--root", filepath.Join(dir, "root"), "--addr", addr,
		"--oci-worker-net", "host", "--containerd-worker=false"}, args...)
	if netns != "" {
		// nsenter joins the network namespace alone: ip netns exec would also remount /sys
		// in a mount namespace of its own, where runc then finds no cgroup mount.
		argv = append([]string{"nsenter", "--net=/var/run/netns/" + netns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		exec.Command("rm", "-rf", dir).Run()
		if t.Failed() {
			t.Logf("buildkitd's log:\n%s", tail(log.String(), 40))
		}
	})
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("buildkitd did not start:\n%s", log.String())
	return ""
}

// bothEngines builds img with the local engine and with the buildkit engine at addr, into
// the shared store, and returns both images as the comparison reads them.
func bothEngines(t *testing.T, img strata.Image, name, addr string, opts ...strata.Option) (local, bk *confImage) {
	t.Helper()
	l := build(t, img, name+"-local", opts...)
	b := build(t, img, name+"-buildkit", append([]strata.Option{strata.WithEngine("buildkit", addr)}, opts...)...)
	read := func(b *strata.Built) *confImage {
		dir := filepath.Join(t.TempDir(), "oci")
		if err := b.Export(ctx(t), dir, strata.ExportOptions{Format: "oci"}); err != nil {
			t.Fatal(err)
		}
		ci, err := readOCI(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		return ci
	}
	return read(l), read(b)
}

// sameImages lists how two images' file systems and configs differ.
func sameImages(t *testing.T, got, want *confImage) {
	t.Helper()
	var diffs []string
	for p, w := range want.fs {
		g := got.fs[p]
		switch {
		case ignoredPath(p):
		case g == nil:
			diffs = append(diffs, fmt.Sprintf("%s: missing from BuildKit's image (local: %s)", p, w))
		default:
			for _, d := range compareEntries(p, g, w) {
				diffs = append(diffs, d.String())
			}
		}
	}
	for p, g := range got.fs {
		if want.fs[p] == nil && !ignoredPath(p) {
			diffs = append(diffs, fmt.Sprintf("%s: only in BuildKit's image (%s)", p, g))
		}
	}
	for _, d := range compareConfigs(got.config.fields(), want.config.fields()) {
		diffs = append(diffs, d.String())
	}
	if len(diffs) > 0 {
		t.Errorf("the engines' images differ (%d):\n%s", len(diffs), strings.Join(sorted(diffs), "\n"))
	}
}

// TestBuildKitEngineBuildsTheSameImage builds one chain with both engines: RUN as root and
// as a user, ENV, WORKDIR, USER, local files copied with their modes, heredocs, cache
// mounts (one owned by the user), a Dockerfile's COPY --chown --chmod, --parents and
// --exclude, and ADD of a URL; the file systems and configs must be the same.
func TestBuildKitEngineBuildsTheSameImage(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	addr := buildkitd(t)
	dir := t.TempDir()
	write(t, dir, "app/main.py", "print('hello')\n")
	write(t, dir, "app/pkg/data.txt", "data\n")
	os.Chmod(filepath.Join(dir, "app/main.py"), 0o755)
	os.Symlink("main.py", filepath.Join(dir, "app/link.py"))
	write(t, dir, "ctx/Dockerfile", "FROM scratch\n")
	write(t, dir, "ctx/conf/app.conf", "port=8080\n")
	write(t, dir, "ctx/conf/sub/more.conf", "more\n")
	write(t, dir, "ctx/conf/scratch.tmp", "left out\n")
	u := unique(t)
	// A file for ADD by URL, with a Last-Modified time.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "tool.txt", time.Unix(1600000000, 0), strings.NewReader("a downloaded tool\n"))
	}))
	t.Cleanup(srv.Close)
	sum := sha256.Sum256([]byte("a downloaded tool\n"))
	img := base().
		RunCommands("useradd -u 1234 -m app && install -o app -d /data", "echo "+u+" > /hello && ln -s /hello /link && mkdir -p /opt/x && chmod 1777 /opt/x").
		Env(map[string]string{"GREETING": "hi there", "APP_HOME": "/srv/app"}).
		Workdir("/srv/app").
		AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: filepath.Join(dir, "app"), RemotePath: "/srv/app/src", Copy: true}).
		DockerfileCommands(
			"USER app",
			"RUN echo \"$GREETING\" > /data/greeting && id -u > /data/uid && touch /data/owned",
			"RUN --mount=type=cache,target=/home/app/.cache,uid=1234 touch /home/app/.cache/x && echo ok > /data/cache-ok",
			"USER root",
			"COPY <<EOF /etc/motd\nwelcome $GREETING\nEOF",
			"RUN <<EOF\n#!/bin/sh\necho from a script > /script-out\nEOF",
			"RUN --mount=type=cache,target=/cache echo cached > /cache/x && cat /cache/x > /from-cache",
			"LABEL team=strata",
			"EXPOSE 8080",
		).
		DockerfileCommandsWith(strata.DockerfileCommandsOptions{ContextDir: filepath.Join(dir, "ctx"), Commands: []string{
			"COPY --chown=app:app --chmod=640 conf/ /etc/app/",
			"COPY --parents --exclude=*.tmp conf/./ /etc/parents/",
			"ADD --checksum=sha256:" + hex.EncodeToString(sum[:]) + " " + srv.URL + "/dl/tool.txt /opt/",
		}}).
		Entrypoint("/bin/sh", "-c").
		Cmd("cat /hello")
	local, bk := bothEngines(t, img, "it-bk-same", addr)
	if len(bk.fs) < 1000 || len(bk.fs) != len(local.fs) {
		t.Errorf("BuildKit's image has %d paths, the local one %d", len(bk.fs), len(local.fs))
	}
	sameImages(t, bk, local)
	for _, p := range []string{"/data/greeting", "/data/uid", "/srv/app/src/main.py", "/srv/app/src/link.py", "/etc/motd", "/script-out", "/from-cache", "/etc/app/sub/more.conf", "/etc/parents/sub/more.conf", "/opt/tool.txt", "/data/cache-ok"} {
		if bk.fs[p] == nil {
			t.Errorf("%s is missing from BuildKit's image", p)
		}
	}
	if bk.fs["/etc/parents/scratch.tmp"] != nil {
		t.Error("COPY --exclude=*.tmp copied scratch.tmp")
	}
	if e := bk.fs["/etc/app/app.conf"]; e != nil && (e.UID != 1234 || e.Mode != 0o640) {
		t.Errorf("COPY --chown=app --chmod=640: %s", e)
	}
	if e := bk.fs["/data/uid"]; e != nil && e.small != "1234\n" {
		t.Errorf("/data/uid: %q", e.small)
	}
}

// TestBuildKitEnginePackageCaches: pip_install on BuildKit uses a cache mount of the daemon
// as the local engine uses its host's pip cache: the layer built again (under a changed
// layer) downloads no wheel again, and neither the cache nor its mount point is in the
// image, which is the local engine's.
func TestBuildKitEnginePackageCaches(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	addr := buildkitd(t)
	wheels := map[string][]byte{pyindex.WheelName("bk-cached", "1.0"): pyindex.Wheel("bk-cached", "1.0", map[string]string{"bk_cached/__init__.py": "NAME = 'bk-cached'\n"})}
	index, downloads := countingIndex(t, wheels)
	u := unique(t)
	pip := func(marker string) strata.Image {
		return base().RunCommands("echo " + marker + " > /marker").PipInstallWith(strata.PipInstallOptions{Packages: []string{"bk-cached"},
			PipOptions: strata.PipOptions{IndexURL: index, ExtraOptions: "--trusted-host 127.0.0.1"}})
	}
	local, bk := bothEngines(t, pip(u), "it-bk-pip", addr)
	sameImages(t, bk, local)
	installed := false
	for p := range bk.fs {
		installed = installed || strings.HasSuffix(p, "/bk_cached/__init__.py")
	}
	if bk.fs["/.strata-cache"] != nil || !installed {
		t.Errorf("BuildKit's image holds the cache's mount point, or misses the package (installed: %v)", installed)
	}
	// Not forced: BuildKit empties the cache mounts of a step whose cache it is told to
	// ignore, as docker build --no-cache does.
	before := downloads.Load()
	build(t, pip(u+"-again"), "it-bk-pip-again", strata.WithEngine("buildkit", addr))
	if n := downloads.Load() - before; n != 0 {
		t.Errorf("the pip layer built again on the same buildkitd downloaded %d wheel(s) again: the package cache was not used", n)
	}
}

// TestBuildKitEngineGPUs: a GPU request at build time gets the daemon's CDI devices that
// match it, as the local engine gets its machine's; one that cannot be met names what the
// daemon has, before any step runs.
func TestBuildKitEngineGPUs(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	conf := filepath.Join(t.TempDir(), "buildkitd.toml")
	write(t, filepath.Dir(conf), "buildkitd.toml", fmt.Sprintf("[cdi]\n  specDirs = [%q]\n", fakeGPUs(t)))
	addr := buildkitd(t, "--config", conf, "--allow-insecure-entitlement", "device")
	u := unique(t)
	file := spec(t, fmt.Sprintf(`image:
  - debian_slim: {python_version: "3.13"}
  - run_commands: {commands: ["echo %s; (env | grep STRATA_TEST_GPU; ls /dev/strata-gpu*) > /gpu.txt"], gpu: "a10g"}
`, u))
	if out, err := cli(t, "--engine", "buildkit", "--addr", addr, "build", "-f", file, "-t", "it-bk-gpu", "--progress", "plain"); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if got, err := cli(t, "run", "it-bk-gpu", "--", "cat", "/gpu.txt"); err != nil || got != "STRATA_TEST_GPU1=granted\n/dev/strata-gpu1\n" {
		t.Errorf("the build step saw: %v %q", err, got)
	}
	bad := spec(t, fmt.Sprintf(`image:
  - debian_slim: {python_version: "3.13"}
  - run_commands: {commands: ["echo %s-never > /never"], gpu: "B200:2"}
`, u))
	out, err := cli(t, "--engine", "buildkit", "--addr", addr, "build", "-f", bad, "-t", "it-bk-gpu-bad", "--progress", "plain")
	if err == nil || !strings.Contains(out, "GPU B200:2 cannot be met on the buildkitd at "+addr+", which has: strata.test/gpu=0 (NVIDIA H100 80GB HBM3); strata.test/gpu=1 (NVIDIA A10G)") {
		t.Errorf("an unsatisfiable request: %v\n%s", err, out)
	}
}

// TestBuildKitEngineGoFunctions: run_function on BuildKit (testdata/fnbk): the function's
// file system changes are the layer, which a later step reads, and it sees its local secret;
// a function's error, and a function stopped past its timeout, fail the build naming the
// function, its error and the exit code.
func TestBuildKitEngineGoFunctions(t *testing.T) {
	need(t, "runc", "mmdebstrap", "go")
	addr := buildkitd(t)
	if out, err := cli(t, "secret", "create", "fnbk-secret", "FNBK_SECRET_SEEN=the-secret-reached-it"); err != nil {
		t.Fatalf("secret create: %v\n%s", err, out)
	}
	u := strings.ReplaceAll(strings.ToLower(unique(t)), "/", "-")
	out, _ := runProgram(t, goProgram(t, "testdata/fnbk", nil), []string{"FNBK_MARKER=" + u, "FNBK_ADDR=" + addr})
	// Each build's outcome starts a line with its name; an error runs over several lines.
	good, rest, _ := strings.Cut(out, "\nbad: ")
	bad, stopped, _ := strings.Cut(rest, "\nstopped: ")
	if good != "good: <nil>" || bad == "" || stopped == "" {
		t.Fatalf("the builds:\n%s", out)
	}
	if got, err := cli(t, "run", "fnbk-good", "--", "cat", "/seen-by-run.txt"); err != nil || got != u+"|the-secret-reached-it\n" {
		t.Errorf("the function's file, as the next step read it: %v %q", err, got)
	}
	for _, c := range []struct{ got, want string }{
		{bad, "layer 1 (run_function) failed: run_function main.fails: exit code 1"},
		{bad, "strata: function main.fails: an ordinary error, " + u},
		{stopped, "layer 1 (run_function) failed: run_function main.slow: exit code 124"},
		{stopped, "strata: function main.slow ran past its timeout of 3s and was stopped"},
	} {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("want %q in: %s", c.want, c.got)
		}
	}
	for _, img := range []string{"fnbk-good"} {
		files := layerFilesOf(t, img)
		if files[".strata"] || files[".strata/fn"] || files[".strata/out"] {
			t.Errorf("%s: a layer holds the function's folders", img)
		}
	}
}

// TestBuildKitEngineAddPython: add_python after a Dockerfile's layers (a layer with an
// artifact, fetched and checked on this machine and sent to the daemon) builds on BuildKit
// the image the local engine builds.
func TestBuildKitEngineAddPython(t *testing.T) {
	need(t, "runc", "mmdebstrap", "tar")
	addr := buildkitd(t)
	m := pythonMirror(t)
	m.pin(t)
	reg := registry(t)
	pushImage(t, build(t, base(), "it-bk-addpy-base"), reg+"/bkpy/base:v1")
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "FROM "+reg+"/bkpy/base:v1\nRUN echo "+unique(t)+" > /df\n")
	img := strata.FromDockerfileWith(strata.FromDockerfileOptions{Path: filepath.Join(dir, "Dockerfile"), ContextDir: dir, AddPython: m.series}).
		RunCommands("python --version > /python-version")
	local, bk := bothEngines(t, img, "it-bk-addpy", addr)
	sameImages(t, bk, local)
	if e := bk.fs["/python-version"]; e == nil || e.small != "Python "+m.version+"\n" {
		t.Errorf("python on PATH at build time on BuildKit: %v", e)
	}
}

// TestBuildKitEngineImagesRunAndCache: an image built on BuildKit is in the local store
// (run works on it), and a second client with another store sharing the daemon builds the
// same spec with every vertex cached.
func TestBuildKitEngineImagesRunAndCache(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	addr := buildkitd(t)
	u := unique(t)
	dir := t.TempDir()
	write(t, dir, "conf.txt", u+"\n")
	img := base().RunCommands("echo " + u + " > /marker").Env(map[string]string{"X": "1"}).RunCommands("cat /marker > /copy").
		AddLocalFileWith(strata.AddLocalFileOptions{LocalPath: filepath.Join(dir, "conf.txt"), RemotePath: "/etc/conf.txt", Copy: true})
	var events []strata.Event
	b := build(t, img, "it-bk-run", strata.WithEngine("buildkit", addr), strata.WithProgress(func(e strata.Event) { events = append(events, e) }))
	if got := run(t, b, "cat", "/copy"); got != u+"\n" {
		t.Errorf("run on BuildKit's image: %q", got)
	}
	built := map[string]bool{}
	for _, e := range events {
		if e.Status == "done" {
			built[e.Method] = true
		}
	}
	if !built["run_commands"] || !built["env"] || !built["add_local_file"] {
		t.Errorf("no done event for every layer: %+v", events)
	}
	// inspect and sbom: the manifest's layers, with the packages each changed.
	in, err := b.Inspect(ctx(t))
	if err != nil || len(in.Layers) < 3 || in.Layers[0].Packages == nil || len(in.Layers[0].Packages.Added) == 0 {
		t.Errorf("inspect of BuildKit's image: %v %+v", err, in)
	}
	if doc, err := b.SBOM(ctx(t), "spdx"); err != nil || !strings.Contains(string(doc), "python3") {
		t.Errorf("sbom of BuildKit's image: %v", err)
	}
	// Another store: its base is bootstrapped there again (byte-identical), and BuildKit has
	// every step cached.
	other := t.TempDir()
	events = nil
	if _, err := img.Build(ctx(t), strata.WithHome(other), strata.WithEngine("buildkit", addr), strata.WithResolveOptions(strata.WithHashCache("")),
		strata.WithProgress(func(e strata.Event) { events = append(events, e) })); err != nil {
		t.Fatal(err)
	}
	cached := map[string]int{}
	for _, e := range events {
		if e.Status == "done" && e.Method != "debian_slim" {
			t.Errorf("the second client executed %s (%s) again", e.Method, e.Key)
		}
		if e.Status == "cached" {
			cached[e.Method]++
		}
	}
	if cached["run_commands"] != 2 || cached["add_local_file"] != 1 || cached["env"] != 1 {
		t.Errorf("want every layer cached on the daemon, got %v", cached)
	}
	// A forced build runs every step again.
	events = nil
	build(t, img, "it-bk-run", strata.WithEngine("buildkit", addr), strata.WithForceBuild(), strata.WithProgress(func(e strata.Event) { events = append(events, e) }))
	done := 0
	for _, e := range events {
		if e.Status == "done" && e.Method == "run_commands" {
			done++
		}
	}
	if done != 2 {
		t.Errorf("a forced build ran %d run_commands layers, want 2", done)
	}
}

// TestBuildKitEngineSecrets: local secrets and build secrets reach the step through the
// session; the value is in no LLB definition, image, log or BuildKit's cache.
func TestBuildKitEngineSecrets(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	addr := buildkitd(t)
	value := "bk-s3cr3t-" + strings.ReplaceAll(unique(t), "/", "-")
	if err := secrets.Open(filepath.Join(home, "secrets")).Create("it-bk-token", map[string]string{"API_TOKEN": value}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(value))
	img := base().RunCommandsWith(strata.RunCommandsOptions{
		Commands:     []string{`printf %s "$API_TOKEN" | sha256sum | cut -d' ' -f1 > /token-hash`, `echo "the token is $API_TOKEN"`},
		LayerOptions: strata.LayerOptions{Secrets: []string{"it-bk-token"}},
	}).DockerfileCommands(`RUN --mount=type=secret,id=build,required=true sha256sum /run/secrets/build | cut -d' ' -f1 > /build-hash`,
		// A multi-line secret printed whole: masked across its lines.
		`RUN --mount=type=secret,id=pem,required=true echo "the key:"; cat /run/secrets/pem; echo`)
	var lines []string
	b := build(t, img, "it-bk-secret", strata.WithEngine("buildkit", addr), strata.WithBuildSecret("build", []byte(value)), strata.WithBuildSecret("pem", []byte("-----BEGIN KEY-----\n"+value+"\n-----END KEY-----")),
		strata.WithProgress(func(e strata.Event) {
			if e.Line != "" {
				lines = append(lines, e.Line)
			}
		}))
	if got := run(t, b, "cat", "/token-hash", "/build-hash"); got != strings.Repeat(hex.EncodeToString(sum[:])+"\n", 2) {
		t.Fatalf("the steps did not see the secrets: %q", got)
	}
	if got := run(t, b, "sh", "-c", "echo ${API_TOKEN:-unset}"); got != "unset\n" {
		t.Errorf("the secret is in the image's environment: %q", got)
	}
	log := strings.Join(lines, "\n")
	if strings.Contains(log, value) || !strings.Contains(log, "the token is ****") {
		t.Errorf("the step's output was not masked:\n%s", log)
	}
	if scanned, _ := notInExport(t, "it-bk-secret", value); scanned < 6 {
		t.Errorf("scanned %d files of the export", scanned)
	}
	// BuildKit's state (cache, metadata, content store) holds no copy of the value.
	root := filepath.Dir(strings.TrimPrefix(addr, "unix://"))
	out, err := exec.Command("grep", "-rlF", "--", value, root).CombinedOutput()
	if err == nil {
		t.Errorf("the secret's value is in buildkitd's state:\n%s", out)
	} else if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() != 1 {
		t.Errorf("grep: %v\n%s", err, out)
	}
}

// TestBuildKitEngineErrors: a failing step is a BuildError naming the layer, the command and
// the exit code; what the engine does not build yet is refused before anything runs.
func TestBuildKitEngineErrors(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	addr := buildkitd(t)
	_, err := base().RunCommands("echo about to fail", "exit 7").Build(ctx(t), strata.WithHome(home), strata.WithEngine("buildkit", addr))
	var be *strata.BuildError
	if !errors.As(err, &be) || be.ExitCode != 7 || be.Method != "run_commands" || !strings.Contains(be.Command, "exit 7") {
		t.Errorf("want a BuildError for run_commands with exit code 7, got %#v: %v", be, err)
	}
	// A GPU request the daemon (which has none) cannot meet fails before anything is built,
	// the base (not in the store) included.
	var events []strata.Event
	_, err = strata.DebianSlim("3.11").RunCommandsWith(strata.RunCommandsOptions{Commands: []string{"true"}, LayerOptions: strata.LayerOptions{GPU: "any"}}).
		Build(ctx(t), strata.WithHome(home), strata.WithEngine("buildkit", addr), strata.WithProgress(func(e strata.Event) { events = append(events, e) }))
	if err == nil || !strings.Contains(err.Error(), "GPU ANY:1 cannot be met on the buildkitd at "+addr) || len(events) > 0 {
		t.Errorf("a GPU step: %v, after %d events", err, len(events))
	}
	_, err = base().Build(ctx(t), strata.WithHome(home), strata.WithEngine("buildkit", "unix:///nonexistent/buildkitd.sock"))
	if err == nil || !strings.Contains(err.Error(), "no buildkitd answers at unix:///nonexistent/buildkitd.sock") {
		t.Errorf("no daemon: %v", err)
	}
}

// TestBuildKitEngineCLI: strata buildkit start runs a daemon for the store's home; strata
// --engine buildkit (which runs strata-buildkit) builds a spec file on it without --addr;
// the image runs; strata buildkit stop stops the daemon.
func TestBuildKitEngineCLI(t *testing.T) {
	need(t, "runc", "mmdebstrap", "buildkitd")
	if rootless.Active() {
		t.Skip("strata buildkit start runs buildkitd as root")
	}
	// The shared store, whose base is bootstrapped already; its path has a space, as the
	// socket's then has.
	env := []string{"STRATA_HOME=" + home}
	bk := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(strataBin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// Two starts at once run one daemon, which both name.
	outs := make([]string, 2)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := exec.Command(strataBin, "buildkit", "start")
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			outs[i] = string(out)
			if err != nil {
				outs[i] += err.Error()
			}
		}(i)
	}
	wg.Wait()
	t.Cleanup(func() { bk("buildkit", "stop") })
	status := bk("buildkit", "status")
	pid := strings.TrimSuffix(strings.TrimPrefix(strings.Fields(status + " x x x")[2], "("), ")")
	if !strings.HasPrefix(status, "running (pid ") {
		t.Fatalf("status: %s", status)
	}
	for i, out := range outs {
		if !strings.Contains(out, "buildkitd is running (pid "+pid+")") {
			t.Errorf("start %d of two at once: %s (status: %s)", i, out, status)
		}
	}
	dir := t.TempDir()
	u := unique(t)
	write(t, dir, "image.yaml", fmt.Sprintf(`image:
  - debian_slim: {python_version: "3.13"}
  - run_commands: {commands: ["echo %s > /marker"]}
  - env: {vars: {ENGINE: buildkit}}
`, u))
	out := bk("--engine", "buildkit", "build", "-f", filepath.Join(dir, "image.yaml"), "-t", "it-bk-cli", "--progress", "plain")
	if !strings.Contains(out, "run_commands") {
		t.Errorf("build's progress does not name the layers:\n%s", out)
	}
	if got := bk("run", "it-bk-cli", "--", "sh", "-c", "cat /marker; echo $ENGINE"); got != u+"\nbuildkit\n" {
		t.Errorf("run: %q", got)
	}
	if out := bk("buildkit", "stop"); !strings.Contains(out, "stopped buildkitd") {
		t.Errorf("stop: %s", out)
	}
	if out := bk("buildkit", "status"); out != "not running\n" {
		t.Errorf("status after stop: %s", out)
	}
}

// TestBuildKitEngineRemoteTLS reaches a buildkitd in another network namespace over TCP with
// mutual TLS, as a team's build host: the image is the local engine's; a client without a
// certificate, or with one its CA did not sign, is refused.
func TestBuildKitEngineRemoteTLS(t *testing.T) {
	need(t, "runc", "mmdebstrap", "buildkitd", "ip")
	if rootless.Active() {
		t.Skip("makes a network namespace and runs buildkitd as root")
	}
	ns, ip := netnsWithVeth(t)
	certs := t.TempDir()
	ca := newCA(t, certs, "ca")
	ca.issue(t, certs, "server", ip)
	ca.issue(t, certs, "client", "")
	newCA(t, certs, "rogue-ca").issue(t, certs, "rogue", "")
	tcp := "tcp://" + ip + ":1234"
	buildkitdIn(t, ns, "--addr", tcp, "--tlscacert", filepath.Join(certs, "ca.pem"),
		"--tlscert", filepath.Join(certs, "server.pem"), "--tlskey", filepath.Join(certs, "server-key.pem"))
	use := func(name string) {
		t.Setenv("STRATA_BUILDKIT_CA", filepath.Join(certs, "ca.pem"))
		t.Setenv("STRATA_BUILDKIT_CERT", filepath.Join(certs, name+".pem"))
		t.Setenv("STRATA_BUILDKIT_KEY", filepath.Join(certs, name+"-key.pem"))
	}
	// The daemon listens on TCP only after its unix socket; wait for it.
	for i := 0; i < 50; i++ {
		if c, err := net.DialTimeout("tcp", ip+":1234", time.Second); err == nil {
			c.Close()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	use("client")
	u := unique(t)
	img := base().RunCommands("echo " + u + " > /remote && useradd -u 1234 remote").Env(map[string]string{"WHERE": "remote"}).Workdir("/w")
	local, bk := bothEngines(t, img, "it-bk-tls", tcp)
	sameImages(t, bk, local)
	for _, rogue := range []string{"rogue", ""} {
		if rogue == "" {
			t.Setenv("STRATA_BUILDKIT_CERT", "")
			t.Setenv("STRATA_BUILDKIT_KEY", "")
		} else {
			use(rogue)
		}
		c, cancel := context.WithTimeout(ctx(t), 30*time.Second)
		_, err := img.Build(c, strata.WithHome(home), strata.WithEngine("buildkit", tcp))
		cancel()
		if err == nil || !strings.Contains(err.Error(), "no buildkitd answers at "+tcp) {
			t.Errorf("client certificate %q: want a refusal, got %v", rogue, err)
		}
	}
}

// netnsWithVeth makes a network namespace joined to the host's by a veth pair, and returns
// its name and its end's address.
func netnsWithVeth(t *testing.T) (string, string) {
	t.Helper()
	n := 10 + time.Now().Nanosecond()%200
	ns := fmt.Sprintf("strata-bk-%d", n)
	host, peer := fmt.Sprintf("vbkh%d", n), fmt.Sprintf("vbkn%d", n)
	hostIP, nsIP := fmt.Sprintf("10.231.%d.1", n), fmt.Sprintf("10.231.%d.2", n)
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	sh("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
	sh("ip", "link", "set", peer, "netns", ns)
	sh("ip", "addr", "add", hostIP+"/30", "dev", host)
	sh("ip", "link", "set", host, "up")
	sh("ip", "netns", "exec", ns, "ip", "addr", "add", nsIP+"/30", "dev", peer)
	sh("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")
	sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	return ns, nsIP
}

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

// issue writes name.pem and name-key.pem: a server certificate for ip, or a client's.
func (ca *testCA) issue(t *testing.T, dir, name, ip string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if ip != "" {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP(ip)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kb)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBuildKitEngineRegistryCache: one buildkitd exports BuildKit's registry cache with
// --cache-to; another daemon, with nothing cached, builds the same spec from it with
// --cache-from, executing no step.
func TestBuildKitEngineRegistryCache(t *testing.T) {
	need(t, "runc", "mmdebstrap", "docker-registry")
	first, second := buildkitd(t), buildkitd(t)
	reg := registry(t)
	repo := reg + "/bk/cache"
	u := unique(t)
	img := base().RunCommands("echo " + u + " > /a").Env(map[string]string{"STEP": "2"}).RunCommands("cat /a > /b; echo $STEP >> /b")
	build(t, img, "it-bk-cache-1", strata.WithEngine("buildkit", first), strata.WithCacheTo(repo))
	var events []strata.Event
	b := build(t, img, "it-bk-cache-2", strata.WithEngine("buildkit", second), strata.WithCacheFrom(repo),
		strata.WithProgress(func(e strata.Event) { events = append(events, e) }))
	cached := 0
	for _, e := range events {
		switch {
		case e.Status == "done" && e.Method == "run_commands":
			t.Errorf("the second daemon executed %s (%s)", e.Method, e.Key)
		case e.Status == "cached" && e.Method == "run_commands":
			cached++
		}
	}
	if cached != 2 {
		t.Errorf("want both run_commands layers from the registry cache, got %d cached", cached)
		for _, e := range events {
			if e.Line == "" {
				t.Logf("%d %s %s %s", e.Index, e.Method, e.Status, e.Key)
			}
		}
	}
	if got := run(t, b, "cat", "/b"); got != u+"\n2\n" {
		t.Errorf("run: %q", got)
	}
}
