package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFullDisk: with the store on a small file system (a tmpfs the test mounts), a step that
// fills the disk, and a step that leaves it full so that the layer's commit finds no room,
// both fail with an error that says the disk holding the store is full and names it. Neither
// leaves a blob, cache entry, snapshot, mount or work folder (strata check finds the store
// whole, its tmp is empty, its space is back), and the next build succeeds.
func TestFullDisk(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system for the store needs root")
	}
	reg := registry(t)
	pushImage(t, build(t, base(), "it-disk-base"), reg+"/disk/base:1")
	disk := smallDisk(t, "1500m")
	small := filepath.Join(disk, "store")
	env := []string{"STRATA_HOME=" + small}
	strata := func(args ...string) (string, error) { return cliEnv(t, env, "", args...) }
	specFile := func(step string) string {
		return spec(t, fmt.Sprintf("image:\n  - from_registry: {tag: %q}\n  - run_commands: {commands: [%q]}\n", reg+"/disk/base:1", step))
	}
	if out, err := strata("pull", reg+"/disk/base:1"); err != nil {
		t.Fatalf("pull: %v\n%s", err, out)
	}
	freeBytes := func() int64 {
		out, err := exec.Command("df", "--output=avail", "-B1", small).Output()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		fmt.Sscan(strings.TrimSpace(strings.Split(strings.TrimSpace(string(out)), "\n")[1]), &n)
		return n
	}
	before := freeBytes()
	whole := func(when string, grown int64) {
		t.Helper()
		if out, err := strata("check"); err != nil || !strings.Contains(out, ": 0 problems") {
			t.Errorf("%s: strata check: %v\n%s", when, err, out)
		}
		if left, _ := os.ReadDir(filepath.Join(small, "tmp")); len(left) > 0 {
			t.Errorf("%s: left in the store's tmp: %v", when, left)
		}
		if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), filepath.Join(small, "tmp")) {
			t.Errorf("%s: a mount is left under the store", when)
		}
		// Logs of failed steps stay, as after any failure; everything else is freed.
		if free := freeBytes(); free < before-grown-(1<<20) {
			t.Errorf("%s: %d bytes free, %d before the build", when, free, before)
		}
	}
	// A step that fills the disk itself.
	out, err := strata("build", "-f", specFile("dd if=/dev/zero of=/fill bs=1M"), "-t", "it-disk-full", "--progress", "plain")
	if err == nil || !strings.Contains(out, "the disk holding the store "+small+" is full") || !strings.Contains(out, "run_commands") {
		t.Errorf("a step that fills the disk: %v\n%s", err, out)
	}
	whole("after a step that filled the disk", 0)

	// A step that succeeds and leaves the disk full: the layer's commit finds no room for its
	// cache entry, made large by 20,000 packages the step "installs" into dpkg's status.
	fill := `python3 -c "open('/var/lib/dpkg/status', 'a').write(''.join('Package: fake-%d\\nStatus: install ok installed\\nVersion: 1.%d\\nArchitecture: all\\n\\n' % (i, i) for i in range(20000)))"` +
		"; dd if=/dev/zero of=/fill bs=1M || true; dd if=/dev/zero of=/fill2 bs=4k || true"
	out, err = strata("build", "-f", specFile(fill), "-t", "it-disk-full", "--progress", "plain")
	if err == nil || !strings.Contains(out, "the disk holding the store "+small+" is full") || !strings.Contains(out, "layer 1 (run_commands): writing its cache entry") {
		t.Errorf("a commit with no room left: %v\n%s", err, out)
	}
	t.Logf("a commit with no room left: %s", out)
	whole("after a commit with no room left", 0)

	out, err = strata("build", "-f", specFile("head -c 1000000 /dev/zero > /fits"), "-t", "it-disk-ok", "--progress", "plain")
	if err != nil {
		t.Fatalf("the next build: %v\n%s", err, out)
	}
	if got, err := strata("run", "it-disk-ok", "--", "sh", "-c", "wc -c < /fits"); err != nil || strings.TrimSpace(got) != "1000000" {
		t.Errorf("run: %v %q", err, got)
	}
	whole("after the next build", 1000000)

	// Layers are compressed when first exported: with the disk all but full, the 30 MB of
	// random bytes of this layer find no room. The export fails naming the store's disk and
	// leaves no output and no blob; with room again it succeeds.
	if out, err := strata("build", "-f", specFile("head -c 30000000 /dev/urandom > /r"), "-t", "it-disk-rand", "--progress", "plain"); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	filler := filepath.Join(disk, "filler")
	allocate(t, filler, freeBytes()-10<<20)
	before = freeBytes()
	oci := filepath.Join(disk, "oci")
	out, err = strata("export", "it-disk-rand", "--format", "oci", "-o", oci)
	if err == nil || !strings.Contains(out, "the disk holding the store "+small+" is full") {
		t.Errorf("an export with no room to compress: %v\n%s", err, out)
	}
	if _, err := os.Stat(oci); err == nil {
		t.Errorf("a failed export left %s", oci)
	}
	whole("after an export with no room to compress", 0)
	os.Remove(filler)
	if out, err := strata("export", "it-disk-rand", "--format", "oci", "-o", oci); err != nil {
		t.Fatalf("export with room: %v\n%s", err, out)
	}
	// An export to a disk of its own that fills names that disk, not the store's.
	other := smallDisk(t, "5m")
	out, err = strata("export", "it-disk-rand", "--format", "docker", "-o", filepath.Join(other, "image.tar"))
	if err == nil || !strings.Contains(out, "the disk holding "+other+" is full") || !strings.Contains(out, "export to another disk") {
		t.Errorf("an export to a full disk: %v\n%s", err, out)
	}
	if left, _ := os.ReadDir(other); len(left) > 0 {
		t.Errorf("a failed export left %v", left)
	}
}

// smallDisk mounts a tmpfs of size for the test and returns its folder.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// allocate makes a file of size bytes, allocated.
func allocate(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		t.Fatalf("fallocate %d bytes: %v", size, err)
	}
}
