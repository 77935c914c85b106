package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata"
)

// TestSourceDateEpochMakesImagesReproducible: with SOURCE_DATE_EPOCH, two forced builds of
// a deterministic chain (a copy, a step, an env) give the same manifest digest.
func TestSourceDateEpochMakesImagesReproducible(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	// A base from a local registry, so that forcing every layer re-pulls (from blobs already
	// in the store) rather than bootstraps Debian again.
	reg := registry(t)
	pushImage(t, build(t, base(), "it-repro-base"), reg+"/repro/base:1")
	dir := t.TempDir()
	write(t, dir, "app/main.py", "print('reproducible')\n")
	img := strata.FromRegistry(reg + "/repro/base:1").
		AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: filepath.Join(dir, "app"), RemotePath: "/app", Copy: true}).
		RunCommands("mkdir -p /opt/out && echo " + unique(t) + " > /opt/out/marker && ln -s /app/main.py /opt/out/link").
		Env(map[string]string{"MODE": "repro"})
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	first := build(t, img, "it-repro-epoch", strata.WithForceBuild())
	time.Sleep(1100 * time.Millisecond) // so that unclamped times would differ
	os.Chtimes(filepath.Join(dir, "app/main.py"), time.Now(), time.Now())
	second := build(t, img, "it-repro-epoch", strata.WithForceBuild())
	if first.Manifest != second.Manifest {
		t.Errorf("two forced builds gave %s and %s", first.Manifest, second.Manifest)
	}
	in, err := second.Inspect(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !in.Config.Created.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("config created %v", in.Config.Created)
	}
	for _, h := range in.Config.History {
		if h.Created.Time.After(time.Unix(1700000000, 0)) {
			t.Errorf("history entry %q at %v", h.CreatedBy, h.Created)
		}
	}
	if got := run(t, second, "sh", "-c", "stat -c %Y /app/main.py /opt/out/marker"); got != "1700000000\n1700000000\n" {
		t.Errorf("file times %q", got)
	}
	// The image is for this machine's platform.
	if in.Config.Architecture != runtime.GOARCH || in.Config.OS != "linux" {
		t.Errorf("platform %s/%s", in.Config.OS, in.Config.Architecture)
	}
}

// TestImagesAreUsedByDigest: COPY --from=IMAGE follows a rebuilt image (it is keyed on its
// digest, not its name), and from_registry keeps the digest a tag had when first pulled
// until --pull resolves it again.
func TestImagesAreUsedByDigest(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	u := unique(t)
	tools := func(v string) strata.Image { return base().RunCommands("echo " + u + "-" + v + " > /tool") }
	build(t, tools("1"), "it-digest-tools")
	consumer := base().DockerfileCommands("COPY --from=it-digest-tools /tool /copied")
	if got := run(t, build(t, consumer, "it-digest-consumer"), "cat", "/copied"); got != u+"-1\n" {
		t.Fatalf("copied %q", got)
	}
	build(t, tools("2"), "it-digest-tools")
	if got := run(t, build(t, consumer, "it-digest-consumer"), "cat", "/copied"); got != u+"-2\n" {
		t.Errorf("after the image it copies from was rebuilt, the copy is stale: %q", got)
	}

	reg := registry(t)
	ref := reg + "/digest/base:latest"
	pushImage(t, build(t, tools("v1"), "it-digest-v1"), ref)
	pulled := strata.FromRegistry(ref).RunCommands("cat /tool > /seen")
	if got := run(t, build(t, pulled, "it-digest-pulled"), "cat", "/seen"); got != u+"-v1\n" {
		t.Fatalf("pulled %q", got)
	}
	pushImage(t, build(t, tools("v2"), "it-digest-v2"), ref) // the tag moves
	if got := run(t, build(t, pulled, "it-digest-pulled"), "cat", "/seen"); got != u+"-v1\n" {
		t.Errorf("without --pull the build used the moved tag: %q", got)
	}
	if got := run(t, build(t, pulled, "it-digest-pulled", strata.WithPull()), "cat", "/seen"); got != u+"-v2\n" {
		t.Errorf("with --pull the build kept the old digest: %q", got)
	}
	if out, err := cli(t, "build", "-f", spec(t, "image:\n  - from_registry: {tag: \""+ref+"\"}\n"), "-t", "it-digest-cli", "--pull", "--progress", "plain"); err != nil {
		t.Errorf("strata build --pull: %v\n%s", err, out)
	}
}

// TestExportSaysWhatMountsItLeavesOut: runtime-mounted files are not part of an image; an
// export says so, and --include-mounts adds them as they are now.
func TestExportSaysWhatMountsItLeavesOut(t *testing.T) {
	need(t, "runc", "mmdebstrap", "umoci")
	dir := t.TempDir()
	write(t, dir, "live/config.txt", "mounted "+unique(t))
	b := build(t, base().AddLocalDir(filepath.Join(dir, "live"), "/opt/live"), "it-export-mounts")
	plain := filepath.Join(t.TempDir(), "plain")
	out, err := cli(t, "export", "it-export-mounts", "--format", "oci", "-o", plain)
	if err != nil || !strings.Contains(out, "warning: add_local_dir mounts 1 local file(s) at /opt/live") || !strings.Contains(out, "--include-mounts") {
		t.Errorf("export without the mounts: %v\n%s", err, out)
	}
	if layerFiles(t, b)["opt/live/config.txt"] {
		t.Error("the mounted file is in the image")
	}
	with := filepath.Join(t.TempDir(), "with")
	if out, err := cli(t, "export", "it-export-mounts", "--format", "oci", "-o", with, "--include-mounts"); err != nil || strings.Contains(out, "warning") {
		t.Fatalf("export --include-mounts: %v\n%s", err, out)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := execOut("umoci", "unpack", "--image", with+":it-export-mounts:latest", bundle); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	if data, err := os.ReadFile(filepath.Join(bundle, "rootfs/opt/live/config.txt")); err != nil || !strings.HasPrefix(string(data), "mounted ") {
		t.Errorf("the mounted file in the export: %v %q", err, data)
	}
}

// TestImagesOfAnyDepth: 130 layers, beyond what one overlay mount's options hold when every
// lower is named by its full digest, build and run.
func TestImagesOfAnyDepth(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	dir := t.TempDir()
	u := unique(t)
	img := base()
	const depth = 130
	for i := 0; i < depth; i++ {
		write(t, dir, fmt.Sprintf("f%03d", i), fmt.Sprintf("%s %d\n", u, i))
		img = img.AddLocalFileWith(strata.AddLocalFileOptions{LocalPath: filepath.Join(dir, fmt.Sprintf("f%03d", i)), RemotePath: "/deep/", Copy: true})
	}
	img = img.RunCommands("cat /deep/* | wc -l > /count")
	b := build(t, img, "it-deep")
	if n := len(manifestLayers(t, b)); n != depth+2 {
		t.Errorf("%d OCI layers, want %d", n, depth+2)
	}
	if got := run(t, b, "sh", "-c", "cat /count; cat /deep/f129"); got != fmt.Sprintf("%d\n%s 129\n", depth, u) {
		t.Errorf("got %q", got)
	}
}
