package integration

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/faultproxy"
)

// faultyRegistry is Debian's docker-registry behind a fault-injecting proxy, and a small
// image (tinyImage) with a 20 MB layer of random bytes, more than two upload chunks, to push
// and pull through it.
type faultyRegistry struct {
	reg      string // the registry itself
	proxy    *faultproxy.Proxy
	image    string // a built image's name in the shared store
	greeting string // what the image prints
	random   string // the random file
}

func newFaultyRegistry(t *testing.T) *faultyRegistry {
	t.Helper()
	need(t, "runc", "docker-registry")
	f := &faultyRegistry{reg: registry(t), image: "it-faults", greeting: unique(t)}
	f.proxy = faultproxy.Start(f.reg)
	t.Cleanup(f.proxy.Close)
	b := make([]byte, 20_000_000)
	rand.Read(b)
	f.random = filepath.Join(t.TempDir(), "random")
	if err := os.WriteFile(f.random, b, 0o644); err != nil {
		t.Fatal(err)
	}
	build(t, tinyImage(t, f.greeting).AddLocalFileWith(strata.AddLocalFileOptions{LocalPath: f.random, RemotePath: "/random", Copy: true}), f.image)
	return f
}

// push pushes the image to repo:tag through the proxy and returns its largest layer.
func (f *faultyRegistry) push(t *testing.T, ref string) string {
	t.Helper()
	if out, err := f.strata(t, home, nil, "push", f.image, f.proxy.Host+"/"+ref); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	return f.bigLayer(t, ref)
}

// strata runs the CLI on a store, with a short silence allowed to registries.
func (f *faultyRegistry) strata(t *testing.T, home string, extra []string, args ...string) (string, error) {
	t.Helper()
	return cliEnv(t, append([]string{"STRATA_HOME=" + home, "STRATA_REGISTRY_TIMEOUT=2s"}, extra...), "", args...)
}

// bigLayer is the digest of the largest layer of the images at refs ("repo:tag"), read from
// the registry directly.
func (f *faultyRegistry) bigLayer(t *testing.T, refs ...string) string {
	t.Helper()
	var big v1.Descriptor
	for _, ref := range refs {
		m := f.manifest(t, ref)
		if m == nil {
			t.Fatalf("%s is not in the registry", ref)
		}
		for _, l := range m.Layers {
			if l.Size > big.Size {
				big = l
			}
		}
	}
	return big.Digest.String()
}

// tags are a repository's tags, as "repo:tag".
func (f *faultyRegistry) tags(t *testing.T, repo string) []string {
	t.Helper()
	r, err := name.NewRepository(f.reg+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(r)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tags {
		tags[i] = repo + ":" + tags[i]
	}
	return tags
}

// manifest is ref's manifest in the registry (not through the proxy), or nil if it has none.
func (f *faultyRegistry) manifest(t *testing.T, ref string) *v1.Manifest {
	t.Helper()
	r, err := name.ParseReference(f.reg+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		return nil
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// storeWhole checks a store after a failure: strata check finds nothing wrong, its tmp is
// empty, nothing is mounted under it, and no blob of digest is kept.
func storeWhole(t *testing.T, home, when string, digests ...string) {
	t.Helper()
	if out, err := cliEnv(t, []string{"STRATA_HOME=" + home}, "", "check"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Errorf("%s: strata check: %v\n%s", when, err, out)
	}
	if left, _ := os.ReadDir(filepath.Join(home, "tmp")); len(left) > 0 {
		t.Errorf("%s: left in the store's tmp: %v", when, left)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), home+"/") {
		t.Errorf("%s: a mount is left under the store", when)
	}
	for _, d := range digests {
		if _, err := os.Stat(filepath.Join(home, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))); err == nil {
			t.Errorf("%s: blob %s is in the store", when, d)
		}
	}
}

// TestRegistryFaultsArePassedThrough: a push and a pull through a registry that drops
// connections, answers 5xx and 429 with Retry-After, stalls, and cuts bodies and uploads
// short, succeed: requests are retried (after the Retry-After); a download goes on from the
// byte it reached with a ranged GET; an upload chunk that failed goes on in the same upload
// when the registry has kept it (docker-registry keeps an upload only when nothing of the
// failed chunk arrived), else the upload starts again. The pushed image is whole in the
// registry and the pulled one runs.
func TestRegistryFaultsArePassedThrough(t *testing.T) {
	f := newFaultyRegistry(t)
	p := f.proxy
	ref := p.Host + "/faults/img:1"
	p.Add(
		faultproxy.Rule{Method: "HEAD", Path: "/blobs/", Times: 1, Fault: faultproxy.Fault{Drop: true}},
		faultproxy.Rule{Method: "POST", Path: "/blobs/uploads/", Times: 1, Fault: faultproxy.Fault{Status: 503}},
		faultproxy.Rule{Method: "PATCH", Header: "Content-Range", Times: 1, Fault: faultproxy.Fault{BreakUploadAfter: 3 << 20}},
		faultproxy.Rule{Method: "PATCH", Header: "Content-Range", Times: 1, Fault: faultproxy.Fault{Status: 502}},
		faultproxy.Rule{Method: "PUT", Path: "/manifests/", Times: 1, Fault: faultproxy.Fault{Status: 500}},
		faultproxy.Rule{Method: "PUT", Path: "/manifests/", Times: 1, Fault: faultproxy.Fault{Status: 429, RetryAfter: "1"}},
	)
	if out, err := f.strata(t, home, []string{"STRATA_REGISTRY_CHUNK_SIZE=8M"}, "push", f.image, ref); err != nil {
		t.Fatalf("push through faults: %v\n%s\nrequests: %v", err, out, p.Requests())
	}
	r, _ := name.ParseReference(f.reg+"/faults/img:1", name.Insecure)
	if img, err := remote.Image(r); err != nil {
		t.Fatalf("the registry has no faults/img:1 after the push: %v", err)
	} else if err := validate.Image(img); err != nil {
		t.Errorf("the pushed image: %v", err)
	}
	reqs := p.Requests()
	faults := map[string]int{}
	for i, r := range reqs {
		if r.Fault == "" {
			continue
		}
		faults[strings.Fields(r.Fault)[0]]++
		same := samePath(reqs[i+1:], r.Path)
		switch {
		case strings.HasPrefix(r.Fault, "break upload"):
			// The registry is asked what it has. docker-registry has dropped the upload (its
			// size is not what the location's state says), so it starts again.
			if len(same) < 1 || same[0].Method != "GET" || !anyAfter(reqs[i+1:], "POST", "/blobs/uploads/") {
				t.Errorf("after an upload broke off: %v, then %v", same, reqs[i+1:])
			}
		case r.Fault == "status 502":
			// Nothing of the chunk arrived: the same upload goes on with it.
			if len(same) < 2 || same[0].Method != "GET" || same[1].Method != "PATCH" || same[1].ContentRange != r.ContentRange {
				t.Errorf("after a chunk got 502: %v", same)
			}
		case r.Fault == "status 429":
			if next := nextLike(reqs, i); next == nil || next.At.Sub(r.At) < 900*time.Millisecond {
				t.Errorf("the manifest was pushed again too soon after a 429 with Retry-After: 1: %v", next)
			}
		}
	}
	if fmt.Sprint(faults) != "map[break:1 drop:1 status:4]" {
		t.Errorf("faults given: %v (requests %v)", faults, reqs)
	}
	if out, err := cli(t, "check"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Errorf("after the push: strata check: %v\n%s", err, out)
	}

	// Without chunks (the default), the blob goes in one PATCH; one that breaks off starts
	// its upload again. (Another registry: this one would mount the blobs it has.)
	plain := &faultyRegistry{reg: registry(t), image: f.image}
	plain.proxy = faultproxy.Start(plain.reg)
	t.Cleanup(plain.proxy.Close)
	plain.proxy.Add(faultproxy.Rule{Method: "PATCH", Times: 1, Fault: faultproxy.Fault{BreakUploadAfter: 100}})
	if out, err := plain.strata(t, home, nil, "push", f.image, plain.proxy.Host+"/faults/img:1"); err != nil {
		t.Fatalf("push without chunks through a broken upload: %v\n%s", err, out)
	}
	var patches, posts int
	for _, r := range plain.proxy.Requests() {
		switch {
		case r.Method == "PATCH" && r.ContentRange != "":
			t.Errorf("a chunk without STRATA_REGISTRY_CHUNK_SIZE: %v", r)
		case r.Method == "PATCH":
			patches++
		case r.Method == "POST":
			posts++
		}
	}
	if layers := len(plain.manifest(t, "faults/img:1").Layers) + 1; patches != layers+1 || posts != layers+1 {
		t.Errorf("%d PATCHes and %d POSTs for %d blobs, one upload started again: %v", patches, posts, layers, plain.proxy.Requests())
	}

	// The pull: the manifest answers 503 then drops; the big blob is cut at 5 MB, then stalls
	// at 2 MB more (STRATA_REGISTRY_TIMEOUT=2s), then answers 429.
	big := f.bigLayer(t, "faults/img:1")
	p.Reset()
	p.Add(
		faultproxy.Rule{Method: "GET", Path: "/manifests/1", Times: 1, Fault: faultproxy.Fault{Status: 503}},
		faultproxy.Rule{Method: "GET", Path: "/manifests/1", Times: 1, Fault: faultproxy.Fault{Drop: true}},
		faultproxy.Rule{Method: "GET", Path: big, Times: 1, Fault: faultproxy.Fault{CutAfter: 5000000}},
		faultproxy.Rule{Method: "GET", Path: big, Times: 1, Fault: faultproxy.Fault{StallAfter: 2000000}},
		faultproxy.Rule{Method: "GET", Path: big, Times: 1, Fault: faultproxy.Fault{Status: 429, RetryAfter: "1"}},
	)
	fresh := t.TempDir()
	if out, err := f.strata(t, fresh, nil, "pull", ref); err != nil {
		t.Fatalf("pull through faults: %v\n%s\nrequests: %v", err, out, p.Requests())
	}
	var ranges []string
	for _, r := range p.Requests() {
		if r.Method == "GET" && strings.Contains(r.Path, big) {
			ranges = append(ranges, r.Range)
		}
	}
	if want := []string{"", "bytes=5000000-", "bytes=7000000-", "bytes=7000000-"}; fmt.Sprint(ranges) != fmt.Sprint(want) {
		t.Errorf("the big blob's GETs had ranges %q, want %q", ranges, want)
	}
	if out, err := f.strata(t, fresh, nil, "run", ref); err != nil || out != "[hi] "+f.greeting+"\n" {
		t.Errorf("run the pulled image: %v %q", err, out)
	}
	storeWhole(t, fresh, "after the pull")
}

// samePath are the requests to path.
func samePath(reqs []faultproxy.Request, path string) []faultproxy.Request {
	var out []faultproxy.Request
	for _, r := range reqs {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// anyAfter says whether one of reqs has the method and a path containing path.
func anyAfter(reqs []faultproxy.Request, method, path string) bool {
	for _, r := range reqs {
		if r.Method == method && strings.Contains(r.Path, path) {
			return true
		}
	}
	return false
}

// nextLike is the first request after reqs[i] with its method and path.
func nextLike(reqs []faultproxy.Request, i int) *faultproxy.Request {
	for j := i + 1; j < len(reqs); j++ {
		if reqs[j].Method == reqs[i].Method && reqs[j].Path == reqs[i].Path {
			return &reqs[j]
		}
	}
	return nil
}

// TestRegistryFaultsThatStay: a fault that does not pass fails the pull or push with an error
// that names the registry, the object and the status, after the retries STRATA_REGISTRY_RETRIES
// allows (none for a 403); nothing of it is kept: the store is whole and holds no blob of
// it, no image is named, the registry has no manifest.
func TestRegistryFaultsThatStay(t *testing.T) {
	f := newFaultyRegistry(t)
	p := f.proxy
	big := f.push(t, "faults/img:1")
	ref := p.Host + "/faults/img:1"
	retries := []string{"STRATA_REGISTRY_RETRIES=3"}
	for _, c := range []struct {
		fault faultproxy.Fault
		want  []string
		tries int
	}{
		{faultproxy.Fault{Status: 500}, []string{"registry " + p.Host, big, "500 Internal Server Error, 3 times"}, 3},
		{faultproxy.Fault{Status: 403}, []string{"registry " + p.Host, big, "403 Forbidden"}, 1},
	} {
		p.Reset()
		p.Add(faultproxy.Rule{Method: "GET", Path: big, Fault: c.fault})
		fresh := t.TempDir()
		out, err := f.strata(t, fresh, retries, "pull", ref)
		for _, w := range c.want {
			if err == nil || !strings.Contains(out, w) {
				t.Errorf("pull with %s on the big blob: %v, want %q in\n%s", c.fault, err, w, out)
			}
		}
		if n := len(p.Requests()) - len(requestsNot(p.Requests(), big)); n != c.tries {
			t.Errorf("%s: %d GETs of the blob, want %d", c.fault, n, c.tries)
		}
		storeWhole(t, fresh, "after a pull that failed with "+c.fault.String(), big)
		if out, _ := f.strata(t, fresh, nil, "images"); strings.Contains(out, "faults/img") {
			t.Errorf("a failed pull named an image:\n%s", out)
		}
	}

	// A manifest the registry never takes: the error says so, and the registry has no tag.
	p.Reset()
	p.Add(faultproxy.Rule{Method: "PUT", Path: "/manifests/", Fault: faultproxy.Fault{Status: 500}})
	out, err := f.strata(t, home, retries, "push", f.image, p.Host+"/faults/never:1")
	if err == nil || !strings.Contains(out, "registry "+p.Host) || !strings.Contains(out, "/manifests/1") || !strings.Contains(out, "500 Internal Server Error") {
		t.Errorf("push whose manifest gets 500: %v\n%s", err, out)
	}
	if f.manifest(t, "faults/never:1") != nil {
		t.Errorf("the registry has faults/never:1 after a failed push")
	}
}

// requestsNot are the requests whose path does not contain s.
func requestsNot(reqs []faultproxy.Request, s string) []faultproxy.Request {
	var out []faultproxy.Request
	for _, r := range reqs {
		if !strings.Contains(r.Path, s) {
			out = append(out, r)
		}
	}
	return out
}

// TestInterruptedPullAndPush: Ctrl-C during a pull whose blob stalls, and during a push whose
// upload stalls, ends strata within seconds; the store keeps nothing of the pull (strata
// check, tmp empty, no blob), the registry no manifest of the push and none of its uploads
// (each is deleted), and the next pull and push, without faults, succeed.
func TestInterruptedPullAndPush(t *testing.T) {
	f := newFaultyRegistry(t)
	p := f.proxy
	big := f.push(t, "faults/img:1")
	interrupt := func(home string, until func([]faultproxy.Request) bool, args ...string) {
		t.Helper()
		cmd := exec.Command(strataBin, args...)
		cmd.Env = append(os.Environ(), "STRATA_HOME="+home, "STRATA_REGISTRY_TIMEOUT=10m")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for !until(p.Requests()) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("strata %v ended well after Ctrl-C:\n%s", args, out.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("strata %v was still running 15 s after Ctrl-C:\n%s", args, out.String())
		}
	}
	seen := func(method, path string) func([]faultproxy.Request) bool {
		return func(reqs []faultproxy.Request) bool {
			for _, r := range reqs {
				if r.Method == method && strings.Contains(r.Path, path) {
					return true
				}
			}
			return false
		}
	}

	p.Reset()
	p.Add(faultproxy.Rule{Method: "GET", Path: big, Fault: faultproxy.Fault{StallAfter: 1 << 20}})
	fresh := t.TempDir()
	interrupt(fresh, seen("GET", big), "pull", p.Host+"/faults/img:1")
	storeWhole(t, fresh, "after Ctrl-C in a pull", big)
	p.Reset()
	if out, err := f.strata(t, fresh, nil, "pull", p.Host+"/faults/img:1"); err != nil {
		t.Errorf("the pull after Ctrl-C: %v\n%s", err, out)
	}

	p.Reset()
	p.Add(faultproxy.Rule{Method: "PATCH", Fault: faultproxy.Fault{StallHeaders: 10 * time.Minute}})
	interrupt(home, seen("PATCH", "/blobs/uploads/"), "push", f.image, p.Host+"/faults/stopped:1")
	if f.manifest(t, "faults/stopped:1") != nil {
		t.Errorf("the registry has faults/stopped:1 after Ctrl-C in its push")
	}
	// The stopped upload is deleted, not left to expire.
	for _, r := range p.Requests() {
		if r.Method == "PATCH" && !anyAfter(samePath(p.Requests(), r.Path), "DELETE", r.Path) {
			t.Errorf("the upload at %s was not deleted after Ctrl-C: %v", r.Path, p.Requests())
		}
	}
	if out, err := cli(t, "check"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Errorf("after Ctrl-C in a push: strata check: %v\n%s", err, out)
	}
	p.Reset()
	if out, err := f.strata(t, home, nil, "push", f.image, p.Host+"/faults/stopped:1"); err != nil || f.manifest(t, "faults/stopped:1") == nil {
		t.Errorf("the push after Ctrl-C: %v\n%s", err, out)
	}
}

// TestCacheLookupsRideOutFaults: a build with --cache-from through a registry that answers
// a lookup with 503 and cuts a cached layer's blob short still takes every layer from the
// cache, building none.
func TestCacheLookupsRideOutFaults(t *testing.T) {
	f := newFaultyRegistry(t)
	p := f.proxy
	file := spec(t, fmt.Sprintf("image:\n  - from_scratch: {}\n  - add_local_file: {local_path: %s, remote_path: /random, copy: true}\n", f.random))
	repo := p.Host + "/faults/cache"
	if out, err := f.strata(t, home, nil, "build", "-f", file, "-t", "it-faults-cache", "--cache-to", repo, "--progress", "plain"); err != nil {
		t.Fatalf("build --cache-to: %v\n%s", err, out)
	}
	big := f.bigLayer(t, f.tags(t, "faults/cache")...)
	p.Reset()
	p.Add(
		faultproxy.Rule{Method: "HEAD", Path: "/manifests/", Times: 2, Fault: faultproxy.Fault{Status: 503}},
		faultproxy.Rule{Method: "GET", Path: big, Times: 1, Fault: faultproxy.Fault{CutAfter: 1000}},
	)
	out, err := f.strata(t, t.TempDir(), nil, "build", "-f", file, "-t", "it-faults-cache", "--cache-from", repo, "--progress", "plain")
	if err != nil || strings.Contains(out, "building") || strings.Count(out, "fetched from the registry cache") != 2 {
		t.Errorf("build --cache-from through faults: %v\n%s", err, out)
	}
	var faults int
	for _, r := range p.Requests() {
		if r.Fault != "" {
			faults++
		}
	}
	if faults != 3 {
		t.Errorf("%d faults given, want 3: %v", faults, p.Requests())
	}
}
