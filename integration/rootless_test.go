package integration

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/internal/rootless"
)

// TestRootlessBuildsTheSameLayers: the same spec built by root and by an ordinary user
// (rootless, in a user namespace mapped from the user's subordinate ids) gives the same
// manifest and layer digests, deletions (whiteouts, opaque folders) included; the owners a
// step gives (useradd -u 1234 app && install -o app -d /data: owner 1234, group root as
// install leaves it) stay in the layer,
// and a pulled layer's 1000:1000 and 65534 files keep theirs in the rootless snapshot. A
// rootless debian_slim bootstrap gives root's base layer byte for byte.
//
// It runs in the root run of the suite, as the user named by STRATA_TEST_ROOTLESS_USER
// (scripts/test.sh makes one with a subordinate range); the rootless run of the suite checks
// everything else rootless.
func TestRootlessBuildsTheSameLayers(t *testing.T) {
	need(t, "runc", "mmdebstrap", "setpriv", "newuidmap", "newgidmap")
	if rootless.Active() {
		t.Skip("compares a root build with a rootless one: it runs in the root run of the suite")
	}
	as := rootlessUser(t)
	reg := registry(t)
	pushImage(t, build(t, base().RunCommands(
		"install -o 1000 -g 1000 -d /home/u1000 && echo x > /home/u1000/f && chown 1000:1000 /home/u1000/f && install -o 65534 -g 65534 -d /nobody && mkdir /opaque && touch /opaque/old"),
		"it-rootless-base"), reg+"/rootless/base:1")
	dir := as.dir(t)
	as.store = filepath.Join(dir, "store") // a new store: the base is pulled and bootstrapped anew
	file := filepath.Join(dir, "image.yaml")
	write(t, dir, "image.yaml", fmt.Sprintf(`image:
  - from_registry: {tag: %q}
  - run_commands: {commands: ["useradd -u 1234 app && install -o app -d /data && echo data > /data/f && chown app:app /data/f && rm /home/u1000/f && rm -rf /opaque && mkdir /opaque"]}
  - env: {vars: {ROOTLESS: "same"}}
  - dockerfile_commands: {commands: ["USER app"]}
`, reg+"/rootless/base:1"))
	os.Chmod(file, 0o644)
	epoch := []string{"SOURCE_DATE_EPOCH=1700000000"}
	if out, err := cliEnv(t, epoch, "", "build", "-f", file, "-t", "it-rootless", "--progress", "plain"); err != nil {
		t.Fatalf("root build: %v\n%s", err, out)
	}
	if out, err := as.strata(t, epoch, "build", "-f", file, "-t", "it-rootless", "--progress", "plain"); err != nil {
		t.Fatalf("rootless build: %v\n%s", err, out)
	}
	rootIn, userIn := inspectJSON(t, rootCLI, "it-rootless"), inspectJSON(t, as.strata, "it-rootless")
	if rootIn.Manifest != userIn.Manifest {
		t.Errorf("root built %s, rootless %s", rootIn.Manifest, userIn.Manifest)
	}
	if r, u := fmt.Sprint(rootIn.Config.RootFS.DiffIDs), fmt.Sprint(userIn.Config.RootFS.DiffIDs); r != u {
		t.Errorf("layers differ:\nroot     %s\nrootless %s", r, u)
	}

	// The owners, in the rootless layer and the rootless snapshot of the pulled layer.
	owners, err := as.strata(t, nil, "run", "it-rootless", "--", "sh", "-c", "stat -c '%u:%g %n' /home/u1000 /nobody /data /data/f && ls -A /home/u1000 /opaque && id -u")
	if want := "1000:1000 /home/u1000\n65534:65534 /nobody\n1234:0 /data\n1234:1234 /data/f\n/home/u1000:\n\n/opaque:\n1234\n"; err != nil || owners != want {
		t.Errorf("owners in a rootless container: %v\n%s\nwant\n%s", err, owners, want)
	}
	oci := filepath.Join(dir, "oci")
	if out, err := as.strata(t, nil, "export", "it-rootless", "--format", "oci", "-o", oci); err != nil {
		t.Fatalf("rootless export: %v\n%s", err, out)
	}
	found := lastLayerOwners(t, oci)
	// The deleted file is a whiteout, the replaced folder opaque (from user.overlay.opaque).
	for p, want := range map[string]string{"data": "1234:0", "data/f": "1234:1234", "home/u1000/.wh.f": "any", "opaque/.wh..wh..opq": "any"} {
		if found[p] != want && (want != "any" || found[p] == "") {
			t.Errorf("%s in the rootless layer is owned by %q, want %s (all: %v)", p, found[p], want, found)
		}
	}

	// A detached container whose process runs as 1234, stopped by another strata process:
	// each has a user namespace of its own, and the stop goes through the parent of the
	// second, which owns both.
	secs := fmt.Sprint(40000 + rand.Intn(20000))
	out, err := as.strata(t, nil, "run", "-d", "it-rootless", "--", "sh", "-c", "exec sleep "+secs)
	if err != nil {
		t.Fatalf("rootless run -d: %v\n%s", err, out)
	}
	if len(awaitSleeping(secs)) == 0 {
		t.Errorf("no process sleep %s on the host", secs)
	}
	if out, err := as.strata(t, nil, "stop", strings.TrimSpace(out)); err != nil {
		t.Errorf("rootless stop: %v\n%s", err, out)
	}
	if pids := sleeping(secs); len(pids) > 0 {
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		t.Errorf("a rootless stop left the container's process running: %v", pids)
	}

	// debian_slim bootstrapped by mmdebstrap in the user namespace: root's bytes.
	write(t, dir, "base.yaml", "image:\n  - debian_slim: {python_version: \"3.13\"}\n")
	if out, err := cliEnv(t, nil, "", "build", "-f", filepath.Join(dir, "base.yaml"), "-t", "it-rootless-slim", "--progress", "plain"); err != nil {
		t.Fatalf("root build: %v\n%s", err, out)
	}
	if out, err := as.strata(t, nil, "build", "-f", filepath.Join(dir, "base.yaml"), "-t", "it-rootless-slim", "--progress", "plain"); err != nil {
		t.Fatalf("rootless build: %v\n%s", err, out)
	}
	// Without SOURCE_DATE_EPOCH the configs' times differ, so the manifests do; the layer
	// is fixed by the base's own epoch.
	if r, u := fmt.Sprint(inspectJSON(t, rootCLI, "it-rootless-slim").Config.RootFS.DiffIDs), fmt.Sprint(inspectJSON(t, as.strata, "it-rootless-slim").Config.RootFS.DiffIDs); r != u {
		t.Errorf("debian_slim: root's layer %s, rootless %s", r, u)
	}
}

// TestRootlessErrors: an ordinary user without subordinate ids is told what to run.
func TestRootlessErrors(t *testing.T) {
	need(t, "setpriv", "newuidmap")
	if rootless.Active() {
		t.Skip("runs the CLI as other users: it runs in the root run of the suite")
	}
	as := rootlessUser(t)
	// nobody has a home but no subordinate ids.
	nobody := rootlessAs{name: "nobody", uid: "65534", gid: "65534", home: t.TempDir()}
	os.Chown(nobody.home, 65534, 65534)
	out, err := nobody.strata(t, nil, "images")
	if err == nil || !strings.Contains(out, "no subordinate ids in /etc/subuid") || !strings.Contains(out, "usermod --add-subuids") {
		t.Errorf("no subordinate ids: %v\n%s", err, out)
	}
	// version and help need no user namespace.
	if out, err := nobody.strata(t, nil, "version"); err != nil {
		t.Errorf("version as nobody: %v\n%s", err, out)
	}
	// The rootless store is the user's, under XDG_DATA_HOME.
	xdg := filepath.Join(as.dir(t), "xdg")
	out, err = as.strataEnv(t, []string{"XDG_DATA_HOME=" + xdg}, "images")
	if err != nil {
		t.Fatalf("images: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(xdg, "strata")); err != nil {
		t.Errorf("no store under XDG_DATA_HOME: %v", err)
	}
}

// rootCLI runs the CLI as root on the shared store, with more environment.
func rootCLI(t *testing.T, env []string, args ...string) (string, error) {
	return cliEnv(t, env, "", args...)
}

// rootlessAs runs the strata binary as an ordinary user.
type rootlessAs struct{ name, uid, gid, home, store string }

// rootlessUser is the user STRATA_TEST_ROOTLESS_USER names, who must have subordinate ids.
func rootlessUser(t *testing.T) rootlessAs {
	t.Helper()
	name := os.Getenv("STRATA_TEST_ROOTLESS_USER")
	if name == "" {
		if os.Getenv("STRATA_INTEGRATION") == "1" {
			t.Fatal("STRATA_TEST_ROOTLESS_USER is not set: scripts/test.sh makes a user with subordinate ids and sets it")
		}
		t.Skip("set STRATA_TEST_ROOTLESS_USER to an ordinary user with subordinate ids")
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	// The binary's folder is private to root; the user needs to run it.
	os.Chmod(filepath.Dir(strataBin), 0o755)
	return rootlessAs{name: name, uid: u.Uid, gid: u.Gid, home: u.HomeDir}
}

// dir is a fresh folder the user owns, with a store in it (STRATA_HOME for strata calls).
func (a rootlessAs) dir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "strata-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The store's files belong to the user's subordinate ids: root removes them.
		exec.Command("rm", "-rf", d).Run()
	})
	uid, _ := strconv.Atoi(a.uid)
	gid, _ := strconv.Atoi(a.gid)
	if err := os.Chown(d, uid, gid); err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	return d
}

// strata runs the CLI as the user on a.store (strataEnv finds the store as strata does).
func (a rootlessAs) strata(t *testing.T, env []string, args ...string) (string, error) {
	return a.strataEnv(t, append([]string{"STRATA_HOME=" + a.store}, env...), args...)
}

func (a rootlessAs) strataEnv(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("setpriv", append([]string{"--reuid=" + a.uid, "--regid=" + a.gid, "--init-groups", "env", "-i",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + a.home, "USER=" + a.name, "LOGNAME=" + a.name}, append(env, append([]string{strataBin}, args...)...)...)...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// inspectJSON reads `strata inspect --json` of an image, through a runner of the CLI.
func inspectJSON(t *testing.T, runCLI func(*testing.T, []string, ...string) (string, error), name string) engine.Inspect {
	t.Helper()
	out, err := runCLI(t, nil, "inspect", name, "--json")
	if err != nil {
		t.Fatalf("inspect %s: %v\n%s", name, err, out)
	}
	var in engine.Inspect
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("inspect %s: %v\n%s", name, err, out)
	}
	return in
}

// lastLayerOwners reads the last layer of the one image in an OCI layout: path → "uid:gid".
func lastLayerOwners(t *testing.T, dir string) map[string]string {
	t.Helper()
	img := layoutImage(t, dir)
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 {
		t.Fatalf("layers: %v", err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		out[strings.TrimSuffix(h.Name, "/")] = fmt.Sprintf("%d:%d", h.Uid, h.Gid)
	}
	return out
}
