package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-build/strata"
	_ "github.com/strata-build/strata/engine/buildkit" // the buildkit engine, for strata.WithEngine
	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/secrets"
)

// buildkitd starts a buildkitd (the one scripts/test.sh builds from BuildKit's module, on
// PATH or at STRATA_TEST_BUILDKITD) with its state in a folder of the test, and returns its
// unix socket's address. It stops when the test ends.
func buildkitd(t *testing.T, args ...string) string {
	t.Helper()
	bin := os.Getenv("STRATA_TEST_BUILDKITD")
	if bin == "" {
		need(t, "runc", "buildkitd")
		bin, _ = exec.LookPath("buildkitd")
	}
	if rootless.Active() {
		t.Skip("buildkitd runs as root here: rootless buildkitd needs rootlesskit, which is not installed")
	}
	dir, err := os.MkdirTemp("/tmp", "bk-") // a short path: a socket's is at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "buildkitd.sock")
	addr := "unix://" + sock
	var log bytes.Buffer
	cmd := exec.Command(bin, append([]string{"--root", filepath.Join(dir, "root"), "--addr", addr,
		"--oci-worker-net", "host", "--containerd-worker=false"}, args...)...)
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
// as a user, ENV, WORKDIR, USER, local files copied with their modes, a heredoc, a
// Dockerfile's COPY --chown and a multi-stage COPY --from; the file systems and configs must
// be the same.
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
	u := unique(t)
	img := base().
		RunCommands("useradd -u 1234 -m app && install -o app -d /data", "echo "+u+" > /hello && ln -s /hello /link && mkdir -p /opt/x && chmod 1777 /opt/x").
		Env(map[string]string{"GREETING": "hi there", "APP_HOME": "/srv/app"}).
		Workdir("/srv/app").
		AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: filepath.Join(dir, "app"), RemotePath: "/srv/app/src", Copy: true}).
		DockerfileCommands(
			"USER app",
			"RUN echo \"$GREETING\" > /data/greeting && id -u > /data/uid && touch /data/owned",
			"USER root",
			"COPY <<EOF /etc/motd\nwelcome $GREETING\nEOF",
			"RUN <<EOF\n#!/bin/sh\necho from a script > /script-out\nEOF",
			"RUN --mount=type=cache,target=/cache echo cached > /cache/x && cat /cache/x > /from-cache",
			"LABEL team=strata",
			"EXPOSE 8080",
		).
		Entrypoint("/bin/sh", "-c").
		Cmd("cat /hello")
	local, bk := bothEngines(t, img, "it-bk-same", addr)
	if len(bk.fs) < 1000 || len(bk.fs) != len(local.fs) {
		t.Errorf("BuildKit's image has %d paths, the local one %d", len(bk.fs), len(local.fs))
	}
	sameImages(t, bk, local)
	for _, p := range []string{"/data/greeting", "/data/uid", "/srv/app/src/main.py", "/srv/app/src/link.py", "/etc/motd", "/script-out", "/from-cache"} {
		if bk.fs[p] == nil {
			t.Errorf("%s is missing from BuildKit's image", p)
		}
	}
	if e := bk.fs["/data/uid"]; e != nil && e.small != "1234\n" {
		t.Errorf("/data/uid: %q", e.small)
	}
}

// TestBuildKitEngineImagesRunAndCache: an image built on BuildKit is in the local store
// (run works on it), and a second client with another store sharing the daemon builds the
// same spec with every vertex cached.
func TestBuildKitEngineImagesRunAndCache(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	addr := buildkitd(t)
	u := unique(t)
	img := base().RunCommands("echo " + u + " > /marker").Env(map[string]string{"X": "1"}).RunCommands("cat /marker > /copy")
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
	if !built["run_commands"] {
		t.Errorf("no done event for run_commands: %+v", events)
	}
	// Another store: its base is bootstrapped there again (byte-identical), and BuildKit has
	// every step cached.
	other := t.TempDir()
	events = nil
	if _, err := img.Build(ctx(t), strata.WithHome(other), strata.WithEngine("buildkit", addr), strata.WithResolveOptions(strata.WithHashCache("")),
		strata.WithProgress(func(e strata.Event) { events = append(events, e) })); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Status == "done" && e.Method != "debian_slim" {
			t.Errorf("the second client executed %s (%s) again", e.Method, e.Key)
		}
	}
	var cached int
	for _, e := range events {
		if e.Status == "cached" && e.Method == "run_commands" {
			cached++
		}
	}
	if cached != 2 {
		t.Errorf("want both run_commands layers cached on the daemon, got %d: %+v", cached, events)
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
	}).DockerfileCommands(`RUN --mount=type=secret,id=build,required=true sha256sum /run/secrets/build | cut -d' ' -f1 > /build-hash`)
	var lines []string
	b := build(t, img, "it-bk-secret", strata.WithEngine("buildkit", addr), strata.WithBuildSecret("build", []byte(value)),
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
	_, err = base().RunCommandsWith(strata.RunCommandsOptions{Commands: []string{"true"}, LayerOptions: strata.LayerOptions{GPU: "any"}}).
		Build(ctx(t), strata.WithHome(home), strata.WithEngine("buildkit", addr))
	if err == nil || !strings.Contains(err.Error(), "not supported by the buildkit engine") {
		t.Errorf("a GPU step: %v", err)
	}
	_, err = base().Build(ctx(t), strata.WithHome(home), strata.WithEngine("buildkit", "unix:///nonexistent/buildkitd.sock"))
	if err == nil || !strings.Contains(err.Error(), "no buildkitd answers at unix:///nonexistent/buildkitd.sock") {
		t.Errorf("no daemon: %v", err)
	}
}
