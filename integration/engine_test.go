package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/pyindex"
	"github.com/strata-build/strata/secrets"
	"github.com/strata-build/strata/store"
)

func base() strata.Image { return strata.DebianSlim("3.13") }

func TestPipInstallFromLocalIndex(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	idx := packageIndex(t, map[string][]byte{
		pyindex.WheelName("greet", "1.0"): pyindex.Wheel("greet", "1.0", map[string]string{"greet/__init__.py": "def hello():\n    return 'hello from greet 1.0'\n"}),
	})
	img := base().PipInstallWith(strata.PipInstallOptions{Packages: []string{"greet==1.0"}, PipOptions: strata.PipOptions{IndexURL: idx}})
	b := build(t, img, "it-pip")
	if got := run(t, b, "python", "-c", "import greet; print(greet.hello())"); got != "hello from greet 1.0\n" {
		t.Errorf("got %q", got)
	}
	// pip kept no cache in the layer.
	if out := run(t, b, "sh", "-c", "ls /root/.cache/pip 2>/dev/null | wc -l"); strings.TrimSpace(out) != "0" {
		t.Errorf("pip cache in the image: %s", out)
	}
}

func TestCopiedAndMountedLocalFiles(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	dir := t.TempDir()
	write(t, dir, "baked/data.txt", "baked-"+unique(t))
	write(t, dir, "live/config.txt", "mounted-content")
	img := base().
		AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: filepath.Join(dir, "baked"), RemotePath: "/opt/baked", Copy: true}).
		RunCommands("cat /opt/baked/data.txt > /opt/seen-at-build").
		AddLocalDir(filepath.Join(dir, "live"), "/opt/live")
	b := build(t, img, "it-local")
	if got := run(t, b, "cat", "/opt/seen-at-build", "/opt/live/config.txt"); !strings.HasPrefix(got, "baked-") || !strings.HasSuffix(got, "mounted-content") {
		t.Errorf("got %q", got)
	}
	// The mounted file is in no layer; the copied one is.
	found := layerFiles(t, b)
	if !found["opt/baked/data.txt"] {
		t.Error("copied file not in any layer")
	}
	if found["opt/live/config.txt"] || found["opt/live"] {
		t.Error("runtime-mounted file is in a layer")
	}
	// Nor is anything the build steps were lent: DNS, hosts, the CA bundle.
	for _, p := range []string{".strata", ".strata/ca-certificates.crt", "etc/resolv.conf", "etc/hostname"} {
		if found[p] {
			t.Errorf("%s is in a layer", p)
		}
	}
	// Changing the mounted file needs no rebuild, and runs see the new content.
	write(t, dir, "live/config.txt", "changed")
	b2 := build(t, img, "it-local")
	if b2.Manifest != b.Manifest {
		t.Error("changing a runtime-mounted file changed the image")
	}
	if got := run(t, b2, "cat", "/opt/live/config.txt"); got != "changed" {
		t.Errorf("run saw %q", got)
	}
	// As in Modal, mounted files are listed when a container starts: a file added after the
	// build is there without a rebuild.
	write(t, dir, "live/added-later.txt", "later")
	if got := run(t, b2, "cat", "/opt/live/added-later.txt"); got != "later" {
		t.Errorf("run saw %q", got)
	}
	// The mount is read-only underneath: a write lands in the container, not in the local file.
	run(t, b2, "sh", "-c", "echo overwritten > /opt/live/config.txt")
	if data, _ := os.ReadFile(filepath.Join(dir, "live/config.txt")); string(data) != "changed" {
		t.Errorf("the container changed the local file: %q", data)
	}
}

// ociImage exports a built image as an OCI layout and opens it with go-containerregistry.
func ociImage(t *testing.T, b *strata.Built) v1.Image {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "oci")
	if err := b.Export(ctx(t), dir, strata.ExportOptions{Format: "oci"}); err != nil {
		t.Fatal(err)
	}
	return layoutImage(t, dir)
}

// layoutImage opens the one image of an OCI layout with go-containerregistry.
func layoutImage(t *testing.T, dir string) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("index: %v %v", m, err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// layerFilesOf lists the paths in all layers of the named image of the shared store.
func layerFilesOf(t *testing.T, name string) map[string]bool {
	t.Helper()
	c, err := strata.Open(strata.WithHome(home))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Image(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return layerFiles(t, b)
}

// layerFiles lists the paths in all layers of an image.
func layerFiles(t *testing.T, b *strata.Built) map[string]bool {
	t.Helper()
	layers, err := ociImage(t, b).Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			out[strings.TrimSuffix(h.Name, "/")] = true
		}
		rc.Close()
	}
	return out
}

// notInExport exports an image as an OCI layout and fails the test if value is in any of its
// files (layers decompressed). It returns how many files it read, and how many were layers.
func notInExport(t *testing.T, image, value string) (scanned, layers int) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "oci")
	if o, err := cli(t, "export", image, "--format", "oci", "-o", out); err != nil {
		t.Fatalf("%v: %s", err, o)
	}
	return scanForValue(t, out, value)
}

// notInLogs fails the test if value is in any build log of the store; it returns whether
// some log holds want.
func notInLogs(t *testing.T, value, want string) bool {
	t.Helper()
	scanForValue(t, filepath.Join(home, "logs"), value)
	logs, _ := filepath.Glob(filepath.Join(home, "logs", "*"))
	for _, l := range logs {
		if data, err := os.ReadFile(l); err == nil && bytes.Contains(data, []byte(want)) {
			return true
		}
	}
	return false
}

func TestSecretsReachTheStepAndNothingElse(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	value := "s3cr3t-" + strings.ReplaceAll(unique(t), "/", "-")
	if err := secrets.Open(filepath.Join(home, "secrets")).Create("it-token", map[string]string{"API_TOKEN": value}); err != nil {
		t.Fatal(err)
	}
	// The step proves it saw the value by its hash; the value itself is in no instruction.
	sum := sha256.Sum256([]byte(value))
	img := base().RunCommandsWith(strata.RunCommandsOptions{
		Commands:     []string{`printf %s "$API_TOKEN" | sha256sum | cut -d' ' -f1 > /token-hash`, `echo "the token is $API_TOKEN"`},
		LayerOptions: strata.LayerOptions{Secrets: []string{"it-token"}},
	})
	b := build(t, img, "it-secret")
	if got := run(t, b, "cat", "/token-hash"); got != hex.EncodeToString(sum[:])+"\n" {
		t.Fatalf("the step did not see the secret: %q", got)
	}
	if got := run(t, b, "sh", "-c", "echo ${API_TOKEN:-unset}"); got != "unset\n" {
		t.Errorf("the secret is in the image's environment: %q", got)
	}
	// Nowhere in the exported image: layers, config, history, manifest.
	// The index, the layout file, a manifest, a config and both layers at least.
	if scanned, layers := notInExport(t, "it-secret", value); scanned < 6 || layers != 2 {
		t.Errorf("scanned %d files, %d of them layers: the export is not what the scan expects", scanned, layers)
	}
	// Nor in any log; the step's echo was masked.
	if !notInLogs(t, value, "the token is ****") {
		t.Error("no log shows the masked echo")
	}
	// A missing secret is an error that names it.
	_, err := base().RunCommandsWith(strata.RunCommandsOptions{Commands: []string{"true"}, LayerOptions: strata.LayerOptions{Secrets: []string{"no-such-secret"}}}).
		Build(ctx(t), strata.WithHome(home))
	if err == nil || !strings.Contains(err.Error(), `secret "no-such-secret"`) {
		t.Errorf("missing secret: %v", err)
	}
}

func TestChangingTheLastLayerReusesEarlierLayers(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	u := unique(t)
	first := build(t, base().RunCommands("echo "+u+" > /a").RunCommands("echo one > /b"), "it-last")
	second := build(t, base().RunCommands("echo "+u+" > /a").RunCommands("echo two > /b"), "it-last")
	l1, l2 := manifestLayers(t, first), manifestLayers(t, second)
	if len(l1) != len(l2) || len(l1) < 3 {
		t.Fatalf("layers %d and %d", len(l1), len(l2))
	}
	for i := 0; i < len(l1)-1; i++ {
		if l1[i] != l2[i] {
			t.Errorf("layer %d digest changed: %s -> %s", i, l1[i], l2[i])
		}
	}
	if l1[len(l1)-1] == l2[len(l2)-1] {
		t.Error("the last layer did not change")
	}
	if got := run(t, second, "cat", "/a", "/b"); got != u+"\ntwo\n" {
		t.Errorf("got %q", got)
	}
}

// manifestLayers lists the layer digests of a build (by its manifest: names move).
func manifestLayers(t *testing.T, b *strata.Built) []string {
	t.Helper()
	m, err := ociImage(t, b).Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

func TestFailedStepCachesNothingAndSaysWhy(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	u := unique(t)
	img := base().RunCommands("echo "+u, "echo about to fail; echo detail-line >&2; exit 7")
	_, err := img.Build(ctx(t), strata.WithHome(home), strata.WithName("it-fail"))
	var be *strata.BuildError
	if !errors.As(err, &be) {
		t.Fatalf("got %v, want a BuildError", err)
	}
	msg := err.Error()
	for _, want := range []string{"layer 1 (run_commands)", "exit code 7", "echo about to fail", "detail-line", "full log:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
	s, err := store.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(be.Key); err == nil {
		t.Error("the failed step was cached")
	}
	if data, err := os.ReadFile(be.Log); err != nil || !strings.Contains(string(data), u) {
		t.Errorf("log %s: %v %q", be.Log, err, data)
	}
	if _, err := s.Image("it-fail"); err == nil {
		t.Error("a failed build named an image")
	}
}

func TestForceBuildReplacesAndIgnoreCacheKeeps(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	// --ignore-cache rebuilds every layer, the base too: a base pulled from a local registry
	// (its blobs already in the store) keeps that cheap.
	reg := registry(t)
	pushImage(t, build(t, base(), "it-force-base"), reg+"/force/base:1")
	img := strata.FromRegistry(reg + "/force/base:1").RunCommands("echo " + unique(t) + "; cat /proc/sys/kernel/random/uuid > /id")
	first := build(t, img, "it-force")
	id1 := run(t, first, "cat", "/id")
	if id := run(t, build(t, img, "it-force"), "cat", "/id"); id != id1 {
		t.Fatal("a cached rebuild ran the step again")
	}
	ignored := build(t, img, "it-force", strata.WithIgnoreCache())
	if id := run(t, ignored, "cat", "/id"); id == id1 {
		t.Error("--ignore-cache reused the cached layer")
	}
	if id := run(t, build(t, img, "it-force"), "cat", "/id"); id != id1 {
		t.Error("--ignore-cache replaced the cached entry")
	}
	forced := build(t, img, "it-force", strata.WithForceBuild())
	id2 := run(t, forced, "cat", "/id")
	if id2 == id1 {
		t.Error("--force-build reused the cached layer")
	}
	if id := run(t, build(t, img, "it-force"), "cat", "/id"); id != id2 {
		t.Error("--force-build did not replace the cached entry")
	}
	// The environment takes Go's booleans: true as well as 1.
	t.Setenv("STRATA_FORCE_BUILD", "true")
	id3 := run(t, build(t, img, "it-force"), "cat", "/id")
	if id3 == id2 {
		t.Error("STRATA_FORCE_BUILD=true reused the cached layer")
	}
	t.Setenv("STRATA_FORCE_BUILD", "")
	t.Setenv("STRATA_IGNORE_CACHE", "1")
	if id := run(t, build(t, img, "it-force"), "cat", "/id"); id == id3 {
		t.Error("STRATA_IGNORE_CACHE=1 reused the cached layer")
	}
}

func TestExportedImagesWorkWithOtherTools(t *testing.T) {
	need(t, "runc", "mmdebstrap", "skopeo", "umoci", "podman")
	b := build(t, base().RunCommands("echo exported > /marker").Env(map[string]string{"GREETING": "hi"}), "it-export")
	dir := t.TempDir()
	oci := filepath.Join(dir, "oci")
	if out, err := cli(t, "export", "it-export", "--format", "oci", "-o", oci); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	out, err := exec.Command("skopeo", "inspect", "oci:"+oci).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "GREETING=hi") {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", oci+":it-export:latest", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	if data, err := os.ReadFile(filepath.Join(bundle, "rootfs", "marker")); err != nil || string(data) != "exported\n" {
		t.Errorf("unpacked marker: %v %q", err, data)
	}
	archive := filepath.Join(dir, "image.tar")
	if out, err := cli(t, "export", "it-export", "--format", "docker", "-o", archive); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("podman", "load", "-i", archive).CombinedOutput(); err != nil {
		t.Fatalf("podman load: %v\n%s", err, out)
	}
	defer exec.Command("podman", "rmi", "-f", "localhost/it-export:latest").Run()
	out, err = exec.Command("podman", "run", "--rm", "--runtime", "runc", "--network", "host",
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
		"localhost/it-export:latest", "sh", "-c", "cat /marker; echo $GREETING; python3 -c 'print(6*7)'").CombinedOutput()
	if err != nil || string(out) != "exported\nhi\n42\n" {
		t.Errorf("podman run: %v\n%s", err, out)
	}
	_ = b
}

// TestExportTwiceCompressesNothing: a layer built here is kept as its snapshot and diff ID,
// with no compressed blob on the build's path; the first export compresses it, the second
// gives the same blobs and writes none; inspect shows the manifest of the compression asked
// for last.
func TestExportTwiceCompressesNothing(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	b := build(t, base().RunCommands("head -c 4000000 /dev/urandom > /big && echo "+unique(t)+" > /marker"), "it-export-twice")
	in, err := b.Inspect(ctx(t)) // makes the gzip blobs, as the default push would
	if err != nil {
		t.Fatal(err)
	}
	built := in.Layers[1].Blobs[0]
	var rec store.Record
	raw, err := os.ReadFile(filepath.Join(home, "cache", strings.TrimPrefix(in.Layers[1].Key, "sha256:")+".json"))
	if err != nil || json.Unmarshal(raw, &rec) != nil || len(rec.Layers) != 1 {
		t.Fatalf("the record of the built layer: %v %s", err, raw)
	}
	if l := rec.Layers[0]; l.MediaType != store.MediaTypeTar || l.Digest != l.DiffID || l.DiffID != built.DiffID {
		t.Errorf("the built layer is recorded as %+v, not by its diff ID as an uncompressed layer", l)
	}
	if built.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" || built.Digest == built.DiffID {
		t.Errorf("inspect shows the layer as %+v, not as its gzip blob", built)
	}
	blobs := func() map[string]time.Time {
		out := map[string]time.Time{}
		es, _ := os.ReadDir(filepath.Join(home, "blobs", "sha256"))
		for _, e := range es {
			if info, err := e.Info(); err == nil {
				out[e.Name()] = info.ModTime()
			}
		}
		return out
	}
	export := func(args ...string) (string, []v1.Hash) {
		dir := filepath.Join(t.TempDir(), "oci")
		if out, err := cli(t, append([]string{"export", "it-export-twice", "--format", "oci", "-o", dir}, args...)...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		img := layoutImage(t, dir)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		var out []v1.Hash
		for _, l := range ls {
			h, _ := l.Digest()
			out = append(out, h)
		}
		return d.String(), out
	}
	first, firstLayers := export()
	if first != in.Manifest || firstLayers[1].String() != built.Digest {
		t.Errorf("export gave %s %v; inspect showed %s %s", first, firstLayers, in.Manifest, built.Digest)
	}
	before := blobs()
	second, secondLayers := export()
	if second != first || fmt.Sprint(secondLayers) != fmt.Sprint(firstLayers) {
		t.Errorf("the second export gave %s %v, the first %s %v", second, secondLayers, first, firstLayers)
	}
	if after := blobs(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the second export wrote blobs: %d before, %d after", len(before), len(after))
	}
	zstd, _ := export("--compression", "zstd")
	if in, err := b.Inspect(ctx(t)); err != nil || in.Manifest != zstd || zstd == first {
		t.Errorf("after a zstd export inspect shows %v (%v); the export was %s", in.Manifest, err, zstd)
	}
}

// pushImage pushes a stored image to a registry with go-containerregistry.
func pushImage(t *testing.T, b *strata.Built, ref string) {
	t.Helper()
	img := ociImage(t, b)
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func TestFromRegistryPullsAndExtends(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	reg := registry(t)
	pushed := build(t, base().RunCommands("echo from-the-registry > /origin").Env(map[string]string{"FROM_BASE": "yes"}), "it-push")
	pushImage(t, pushed, reg+"/team/base:v1")
	img := strata.FromRegistry(reg + "/team/base:v1").RunCommands("cat /origin > /copied; echo $FROM_BASE >> /copied")
	b := build(t, img, "it-pulled")
	if got := run(t, b, "cat", "/copied"); got != "from-the-registry\nyes\n" {
		t.Errorf("got %q", got)
	}
	// The pulled layers are the pushed ones.
	pl, bl := manifestLayers(t, pushed), manifestLayers(t, b)
	for i := range pl {
		if pl[i] != bl[i] {
			t.Errorf("pulled layer %d is %s, pushed %s", i, bl[i], pl[i])
		}
	}
}

// TestImagesWithARepeatedLayer: an image may hold the same layer twice (Docker's and
// BuildKit's empty layers, for steps that changed nothing); overlayfs refuses a folder twice
// in lowerdir, so strata mounts it once. Steps and containers of such an image run.
func TestImagesWithARepeatedLayer(t *testing.T) {
	need(t, "runc", "mmdebstrap", "docker-registry")
	reg := registry(t)
	var buf bytes.Buffer
	tar.NewWriter(&buf).Close()
	data := buf.Bytes()
	emptyLayer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(ociImage(t, build(t, base().RunCommands("echo one > /one"), "it-repeated-base")), emptyLayer, emptyLayer)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg + "/repeated/layer:1"
	r, _ := name.ParseReference(ref, name.Insecure)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	b := build(t, strata.FromRegistry(ref).RunCommands("cat /one > /two"), "it-repeated")
	if got := run(t, b, "cat", "/two"); got != "one\n" {
		t.Errorf("got %q", got)
	}
}

func TestPullRefusesUnsafeLayers(t *testing.T) {
	need(t, "runc")
	reg := registry(t)
	for kind, entries := range map[string][][3]string{
		"dotdot":  {{"../../escaped", "0", "x"}},
		"symlink": {{"etc/", "5", ""}, {"etc/evil", "2", "../../../../tmp"}},
	} {
		t.Run(kind, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, e := range entries {
				h := &tar.Header{Name: e[0], Typeflag: e[1][0], Mode: 0o755}
				if h.Typeflag == tar.TypeSymlink {
					h.Linkname = e[2]
				} else if h.Typeflag == tar.TypeReg {
					h.Size = int64(len(e[2]))
				}
				tw.WriteHeader(h)
				if h.Typeflag == tar.TypeReg {
					tw.Write([]byte(e[2]))
				}
			}
			tw.Close()
			data := buf.Bytes()
			l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
			if err != nil {
				t.Fatal(err)
			}
			img, err := mutate.AppendLayers(empty.Image, l)
			if err != nil {
				t.Fatal(err)
			}
			ref := reg + "/evil/" + kind + ":1"
			r, _ := name.ParseReference(ref, name.Insecure)
			if err := remote.Write(r, img); err != nil {
				t.Fatal(err)
			}
			_, err = strata.FromRegistry(ref).Build(ctx(t), strata.WithHome(home))
			if err == nil || !strings.Contains(err.Error(), "unsafe layer entry") {
				t.Errorf("pulling %s: %v", kind, err)
			}
		})
	}
}

func TestDebianSlimIsReproducible(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	first := manifestLayers(t, build(t, base(), "it-repro"))
	again := manifestLayers(t, build(t, base(), "it-repro", strata.WithForceBuild()))
	if len(first) != 1 || len(again) != 1 || first[0] != again[0] {
		t.Errorf("two bootstraps of the same package set gave %v and %v", first, again)
	}
}

func TestDockerfileInstructions(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	dir := t.TempDir()
	write(t, dir, "tool.sh", "#!/bin/sh\necho tool\n")
	var archive bytes.Buffer
	zw := gzip.NewWriter(&archive)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "pkg/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "pkg/data.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 8})
	tw.Write([]byte("unpacked"))
	tw.Close()
	zw.Close()
	write(t, dir, "bundle.tar.gz", archive.String())
	img := base().
		RunCommandsWith(strata.RunCommandsOptions{
			Commands:     []string{"echo $BUILD_ONLY > /build-only; useradd -m app"},
			LayerOptions: strata.LayerOptions{Env: map[string]string{"BUILD_ONLY": "seen"}},
		}).
		DockerfileCommandsWith(strata.DockerfileCommandsOptions{ContextDir: dir, Commands: []string{
			"ARG GREETING=hello",
			"COPY --chown=app:app --chmod=750 tool.sh /opt/tool.sh",
			"ADD bundle.tar.gz /opt/bundle",
			"ADD tool.sh /opt/added/",
			"USER app",
			"WORKDIR /home/app/work",
			"RUN id -un > whoami && echo $GREETING > greeting",
			`SHELL ["/bin/bash", "-c"]`,
			"RUN [[ -n $BASH_VERSION ]] && echo bash > shell",
			"LABEL team=ml",
			"EXPOSE 8080",
			`ENTRYPOINT ["/bin/sh", "-c"]`,
			`CMD ["echo default-cmd from $(pwd)"]`,
		}})
	b := build(t, img, "it-dockerfile")
	if got := run(t, b); got != "default-cmd from /home/app/work\n" {
		t.Errorf("default command: %q", got)
	}
	got := run(t, b, "cat whoami greeting shell /build-only; stat -c '%U %a' /opt/tool.sh; echo ${BUILD_ONLY:-unset}; cat /opt/bundle/pkg/data.txt /opt/added/tool.sh")
	if want := "app\nhello\nbash\nseen\napp 750\nunset\nunpacked#!/bin/sh\necho tool\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// COPY --from takes files from another image (here a local one, by name).
	from := build(t, base().DockerfileCommands("COPY --from=it-dockerfile /opt/tool.sh /copied.sh"), "it-copy-from")
	if got := run(t, from, "sh", "/copied.sh"); got != "tool\n" {
		t.Errorf("COPY --from: %q", got)
	}
	out, err := cli(t, "inspect", "it-dockerfile", "--json")
	if err != nil || !strings.Contains(out, `"team": "ml"`) || !strings.Contains(out, `"8080/tcp"`) || !strings.Contains(out, `"User": "app"`) {
		t.Errorf("inspect: %v\n%s", err, out)
	}
}
