package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/strata-build/strata/internal/faultproxy"
)

// gzipLayer is a gzip-compressed layer whose tar write gives.
func gzipLayer(t *testing.T, write func(*tar.Writer)) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	write(tw)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pushLayers pushes an image of layers to ref.
func pushLayers(t *testing.T, ref string, layers ...v1.Layer) {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers"}, Config: v1.Config{Cmd: []string{"sh"}}})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(ref, name.Insecure)
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// pullMeasured pulls ref into a fresh store and returns the output, the error, the time it
// took and the strata process's peak resident memory in MiB.
func pullMeasured(t *testing.T, home string, env []string, ref string) (string, error, time.Duration, int64) {
	t.Helper()
	cmd := exec.Command(strataBin, "pull", ref)
	cmd.Env = append(append(os.Environ(), "STRATA_HOME="+home), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss >> 10
	return string(out), err, time.Since(start), rss
}

// TestResourceBounds: a decompression bomb (1 GiB of zeros in 1 MB of gzip) stops at
// STRATA_MAX_LAYER_SIZE; a layer of 100,000 files extracts in bounded memory, and one past
// STRATA_MAX_LAYER_FILES stops there; a manifest of 3,000 layers is refused before any layer
// is downloaded (overlayfs stacks 500). Each refusal names the limit and keeps nothing.
func TestResourceBounds(t *testing.T) {
	need(t, "runc", "docker-registry")
	reg := registry(t)
	p := faultproxy.Start(reg)
	t.Cleanup(p.Close)

	// The bomb.
	bomb := gzipLayer(t, func(tw *tar.Writer) {
		const size = 1 << 30
		tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
		zero := make([]byte, 1<<20)
		for n := 0; n < size; n += len(zero) {
			tw.Write(zero)
		}
	})
	pushLayers(t, reg+"/bounds/bomb:1", bomb)
	bombDigest, _ := bomb.Digest()
	bombSize, _ := bomb.Size()
	t.Logf("the bomb: 1 GiB of zeros in %d bytes of gzip", bombSize)
	home := t.TempDir()
	out, err, took, rss := pullMeasured(t, home, []string{"STRATA_MAX_LAYER_SIZE=100M"}, p.Host+"/bounds/bomb:1")
	if err == nil || !strings.Contains(out, "layer "+bombDigest.String()+" uncompresses to more than 100.0 MB") || !strings.Contains(out, "STRATA_MAX_LAYER_SIZE") {
		t.Errorf("pull the bomb with a 100M limit: %v\n%s", err, out)
	}
	t.Logf("the bomb refused in %s, peak RSS %d MiB", took.Round(time.Millisecond), rss)
	storeWhole(t, home, "after the bomb", bombDigest.String())

	// Many files.
	const files = 100000
	many := gzipLayer(t, func(tw *tar.Writer) {
		for d := 0; d < files/1000; d++ {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("many/%03d/", d), Typeflag: tar.TypeDir, Mode: 0o755})
			for f := 0; f < 1000; f++ {
				tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("many/%03d/%04d", d, f), Typeflag: tar.TypeReg, Mode: 0o644})
			}
		}
	})
	pushLayers(t, reg+"/bounds/many:1", many)
	manyDigest, _ := many.Digest()
	home = t.TempDir()
	out, err, took, rss = pullMeasured(t, home, nil, p.Host+"/bounds/many:1")
	if err != nil {
		t.Fatalf("pull %d files: %v\n%s", files, err, out)
	}
	t.Logf("%d files pulled in %s, peak RSS %d MiB", files, took.Round(time.Millisecond), rss)
	if rss > 400 {
		t.Errorf("pulling %d files took %d MiB of memory", files, rss)
	}
	diffID, _ := many.DiffID()
	var n int
	filepath.WalkDir(filepath.Join(home, "snapshots", diffID.Hex, "many"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if n != files {
		t.Errorf("%d files in the pulled layer's snapshot, want %d", n, files)
	}
	home = t.TempDir()
	out, err, _, _ = pullMeasured(t, home, []string{"STRATA_MAX_LAYER_FILES=1000"}, p.Host+"/bounds/many:1")
	if err == nil || !strings.Contains(out, "layer "+manyDigest.String()+" holds more than 1000 files and folders (STRATA_MAX_LAYER_FILES sets the limit)") {
		t.Errorf("pull %d files with a limit of 1000: %v\n%s", files, err, out)
	}
	storeWhole(t, home, "after too many files", manyDigest.String())

	// Thousands of layers: the same small layer, 3,000 times.
	small := gzipLayer(t, func(tw *tar.Writer) {
		tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
		tw.Write([]byte("x"))
	})
	layers := make([]v1.Layer, 3000)
	for i := range layers {
		layers[i] = small
	}
	pushLayers(t, reg+"/bounds/deep:1", layers...)
	smallDigest, _ := small.Digest()
	p.Reset()
	home = t.TempDir()
	out, err, _, _ = pullMeasured(t, home, nil, p.Host+"/bounds/deep:1")
	if err == nil || !strings.Contains(out, "has 3000 layers; overlayfs stacks at most 500") {
		t.Errorf("pull 3000 layers: %v\n%s", err, out)
	}
	for _, r := range p.Requests() {
		if strings.Contains(r.Path, smallDigest.String()) {
			t.Errorf("a layer of the 3000-layer image was downloaded: %v", r)
		}
	}
	storeWhole(t, home, "after 3000 layers", smallDigest.String())
}
