package buildkit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// fakeStore is the local store as the translation sees it: a base that "builds" at once,
// and one local secret.
type fakeStore struct {
	engine.Engine
	root string
}

func (f *fakeStore) Build(context.Context, engine.Plan, engine.BuildOptions) (*engine.Image, error) {
	return &engine.Image{Manifest: "sha256:" + strings.Repeat("a", 64)}, nil
}

func (f *fakeStore) Inspect(context.Context, *engine.Image) (*engine.Inspect, error) {
	return &engine.Inspect{
		Config: &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{Env: []string{"PATH=/usr/bin:/bin"}}},
		Layers: []engine.LayerInfo{{Blobs: []engine.Blob{{Digest: "sha256:" + strings.Repeat("b", 64), DiffID: "sha256:" + strings.Repeat("c", 64), Size: 10, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip"}}}},
	}, nil
}

func (f *fakeStore) BlobRoot() string { return f.root }

func (f *fakeStore) SecretEnv(names []string) ([]string, error) {
	var env []string
	for _, n := range names {
		env = append(env, "API_TOKEN=local-secret-value-of-"+n)
	}
	return env, nil
}

func (f *fakeStore) Import(context.Context, string, string, engine.Plan, string) (*engine.Image, error) {
	return nil, errors.New("not in this test")
}

func (f *fakeStore) ArtifactFiles(context.Context, []spec.Artifact, io.Writer) ([]spec.ContextFile, func(), error) {
	return nil, nil, errors.New("not in this test")
}

func (f *fakeStore) NewBlob() (*store.BlobWriter, error) { return nil, errors.New("not in this test") }
func (f *fakeStore) Hold() (func(), error)               { return func() {}, nil }

func translate(t *testing.T, layers []*spec.Layer, o engine.BuildOptions) ([]byte, error) {
	t.Helper()
	def, _, err := translateOn(t, &Engine{Store: &fakeStore{root: t.TempDir()}}, layers, o)
	return def, err
}

// translateOn translates the layers for engine e and returns the definition and the build.
func translateOn(t *testing.T, e *Engine, layers []*spec.Layer, o engine.BuildOptions) ([]byte, *build, error) {
	t.Helper()
	for i, l := range layers {
		l.Key = "sha256:" + strings.Repeat(string(rune('0'+i)), 64)
	}
	p := engine.Plan{Layers: layers}
	b, err := e.newBuild(p, o)
	if err != nil {
		return nil, nil, err
	}
	c, err := b.translate(context.Background(), p)
	if err != nil {
		return nil, b, err
	}
	def, err := c.st.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, d := range def.Def {
		all = append(all, d...)
	}
	return all, b, nil
}

// TestGPURequest: a GPU request takes the daemon's CDI devices that match it, and asks for
// the device entitlement of those the daemon does not allow every build.
func TestGPURequest(t *testing.T) {
	e := &Engine{Store: &fakeStore{root: t.TempDir()}, addr: "unix:///bk.sock", devices: []client.CDIDevice{
		{Name: "x.com/gpu=0", Annotations: map[string]string{"x.com/gpu.product": "NVIDIA A10G"}, AutoAllow: true},
		{Name: "x.com/gpu=1", Annotations: map[string]string{"x.com/gpu.product": "NVIDIA H100 80GB HBM3"}},
		{Name: "x.com/gpu=all"},
	}}
	run := []spec.Instruction{{Op: spec.OpRun, Args: []string{"true"}}}
	def, b, err := translateOn(t, e, []*spec.Layer{base(), {Method: "run_commands", GPU: &spec.GPU{Type: "ANY", Count: 2}, Instructions: run}}, engine.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(def), "x.com/gpu=0") || !strings.Contains(string(def), "x.com/gpu=1") || strings.Contains(string(def), "x.com/gpu=all") {
		t.Error("the step does not ask for the two GPUs")
	}
	if strings.Join(b.entitlements, " ") != "device=x.com/gpu=1" {
		t.Errorf("entitlements %v, want the H100's alone (the A10G is allowed to every build)", b.entitlements)
	}
	_, _, err = translateOn(t, e, []*spec.Layer{base(), {Method: "run_commands", GPU: &spec.GPU{Type: "B200", Count: 1}, Instructions: run}}, engine.BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "cannot be met on the buildkitd at unix:///bk.sock, which has: x.com/gpu=0 (NVIDIA A10G); x.com/gpu=1 (NVIDIA H100 80GB HBM3)") {
		t.Errorf("an unmet request: %v", err)
	}
}

func base() *spec.Layer {
	return &spec.Layer{Method: "debian_slim", Base: &spec.Base{Kind: spec.BaseDebian, Suite: "trixie"}}
}

// TestSecretsAreNotInTheDefinition: local secrets and build secrets reach a step as session
// secrets; the marshalled LLB names them and holds no value.
func TestSecretsAreNotInTheDefinition(t *testing.T) {
	def, err := translate(t, []*spec.Layer{base(), {
		Method:  "run_commands",
		Secrets: []string{"other"},
		// A key of the same name as the next layer's secret's: each step gets its own.
		Instructions: []spec.Instruction{{Op: spec.OpRun, Args: []string{`echo "$API_TOKEN"`}}},
	}, {
		Method:  "run_commands",
		Secrets: []string{"tok"},
		Instructions: []spec.Instruction{
			{Op: spec.OpRun, Args: []string{`echo "$API_TOKEN"`}},
			{Op: spec.OpRun, Flags: []string{"--mount=type=secret,id=build,required=true"}, Args: []string{"cat /run/secrets/build"}},
		},
	}}, engine.BuildOptions{Secrets: map[string][]byte{"build": []byte("build-secret-value")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"local-secret-value", "build-secret-value"} {
		if strings.Contains(string(def), v) {
			t.Errorf("the definition holds the value %q", v)
		}
	}
	for _, n := range []string{"API_TOKEN", "strata-env:tok:API_TOKEN", "strata-env:other:API_TOKEN", "/run/secrets/build"} {
		if !strings.Contains(string(def), n) {
			t.Errorf("the definition does not name %q", n)
		}
	}
}

// TestRefusals: what the engine does not build is an ErrUnsupported naming it, and a missing
// required build secret names the flag that gives it.
func TestRefusals(t *testing.T) {
	for name, l := range map[string]*spec.Layer{
		"volumes at build time": {Method: "run_function", Function: &spec.FunctionRef{Name: "f"}, Volumes: []spec.VolumeMount{{Name: "v", Path: "/v"}}},
	} {
		_, err := translate(t, []*spec.Layer{base(), l}, engine.BuildOptions{})
		var be *engine.BuildError
		if !errors.Is(err, ErrUnsupported) || !errors.As(err, &be) || !strings.Contains(err.Error(), name) || be.Method != l.Method {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := translate(t, []*spec.Layer{base(), {Method: "dockerfile_commands", Instructions: []spec.Instruction{
		{Op: spec.OpRun, Flags: []string{"--mount=type=ssh,required=true"}, Args: []string{"true"}}}}}, engine.BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "strata build --ssh default") {
		t.Errorf("missing ssh agent: %v", err)
	}
	_, err = translate(t, []*spec.Layer{base(), {Method: "dockerfile_commands", Instructions: []spec.Instruction{
		{Op: spec.OpRun, Flags: []string{"--mount=type=secret,id=npmrc,required=true"}, Args: []string{"true"}}}}}, engine.BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "--secret id=npmrc") {
		t.Errorf("missing build secret: %v", err)
	}
}

// TestGitSourceIsTheResolvedCommit: an ADD of a git repository fetches the commit the plan
// resolved (which is in the layer's key), not the moving ref as written.
func TestGitSourceIsTheResolvedCommit(t *testing.T) {
	commit := strings.Repeat("5", 40)
	src := "http://127.0.0.1:1/repo.git#main:bin"
	def, err := translate(t, []*spec.Layer{base(), {Method: "dockerfile_commands",
		Remote:       []spec.RemoteRef{{Ref: src, Version: commit}},
		Instructions: []spec.Instruction{{Op: spec.OpAdd, Args: []string{src, "/x/"}}}}}, engine.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(def), commit) || !strings.Contains(string(def), "bin") {
		t.Errorf("the definition does not fetch commit %s of the repository's bin folder", commit)
	}
}

// TestContextFS: the files come in filepath.WalkDir's order with their folders, root-owned,
// and a file that changed since it was hashed fails its read.
func TestContextFS(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) spec.ContextFile {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		fi, _ := os.Lstat(p)
		return spec.ContextFile{Path: name, Source: p, Mode: uint32(fi.Mode()), Size: fi.Size(), Digest: "sha256:" + hex.EncodeToString(sum[:]), Info: fi}
	}
	files := []spec.ContextFile{write("a.txt", "a"), write("a/b", "b"), write("a/c/d", "d")}
	c := newContextFS(files)
	var got []string
	if err := c.Walk(context.Background(), "", func(p string, d fs.DirEntry, err error) error {
		fi, _ := d.Info()
		got = append(got, p)
		if st, ok := fi.Sys().(interface{ GetUid() uint32 }); ok && st.GetUid() != 0 {
			t.Errorf("%s is owned by %d", p, st.GetUid())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if want := "a a/b a/c a/c/d a.txt"; strings.Join(got, " ") != want {
		t.Errorf("walk order %q, want %q", got, want)
	}
	got = nil
	c.Walk(context.Background(), "a", func(p string, d fs.DirEntry, err error) error {
		got = append(got, p)
		if p == "a/c" {
			return filepath.SkipDir
		}
		return nil
	})
	if want := "a a/b a/c"; strings.Join(got, " ") != want {
		t.Errorf("walk of a with a/c skipped: %q, want %q", got, want)
	}
	read := func(p string) error {
		r, err := c.Open(p)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.ReadAll(r)
		return err
	}
	if err := read("a/b"); err != nil {
		t.Errorf("read a/b: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "a/b"), []byte("changed"), 0o644)
	if err := read("a/b"); err == nil || !strings.Contains(err.Error(), "changed after the build was planned") {
		t.Errorf("a changed file: %v", err)
	}
	if err := read("a/c"); err == nil {
		t.Error("a folder opened as a file")
	}
}

func TestCacheAttrs(t *testing.T) {
	t.Setenv("STRATA_INSECURE_REGISTRIES", "registry.lan:5000")
	for repo, insecure := range map[string]bool{
		"127.0.0.1:5000/team/cache":  true,
		"localhost:5000/team/cache":  true,
		"registry.lan:5000/cache":    true,
		"registry.example.com/cache": false,
	} {
		a := cacheAttrs(repo)
		if a["ref"] != repo+":"+CacheTag || (a["registry.insecure"] == "true") != insecure {
			t.Errorf("%s: %v", repo, a)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	st := &fakeStore{root: t.TempDir()}
	for o, want := range map[Options]string{
		{}: "needs a daemon's address",
		{Addr: "unix:///x.sock", CACert: "ca.pem"}:              "TLS options are for a tcp:// daemon",
		{Addr: "tcp://h:1234", CACert: "ca.pem", Cert: "c.pem"}: "needs its key",
		{Addr: "tcp://h:1234", CACert: "/nonexistent/ca.pem"}:   "/nonexistent/ca.pem",
	} {
		if _, err := Open(context.Background(), st, o); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", o, err, want)
		}
	}
	// The daemon is reached on the first build only.
	e, err := Open(context.Background(), st, Options{Addr: "unix:///nonexistent/buildkitd.sock"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.connect(context.Background()); err == nil || !strings.Contains(err.Error(), "no buildkitd answers at unix:///nonexistent/buildkitd.sock") {
		t.Errorf("no daemon: %v", err)
	}
}

// TestContentStore: the exporter's writes land in strata's store only with the digest they
// claim; a blob the store has is reported as existing, so it is not sent again.
func TestContentStore(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cs := &contentStore{root: st.Root(), newBlob: st.NewBlob, extra: map[digest.Digest][]byte{}}
	ctx := context.Background()
	data := []byte("a layer's bytes")
	d := digest.FromBytes(data)
	write := func(expected digest.Digest) error {
		w, err := cs.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(ocispecs.Descriptor{Digest: d, Size: int64(len(data))}))
		if err != nil {
			return err
		}
		defer w.Close()
		if _, err := w.Write(data); err != nil {
			return err
		}
		return w.Commit(ctx, int64(len(data)), expected)
	}
	if err := write(digest.FromString("something else")); err == nil {
		t.Error("a blob committed under another digest")
	}
	if _, err := cs.Info(ctx, d); !errdefs.IsNotFound(err) {
		t.Errorf("after a refused commit: %v", err)
	}
	if err := write(d); err != nil {
		t.Fatal(err)
	}
	if info, err := cs.Info(ctx, d); err != nil || info.Size != int64(len(data)) {
		t.Errorf("info: %+v %v", info, err)
	}
	if err := write(d); !errdefs.IsAlreadyExists(err) {
		t.Errorf("a second write of a blob the store has: %v", err)
	}
	ra, err := cs.ReaderAt(ctx, ocispecs.Descriptor{Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, ra.Size())
	ra.ReadAt(got, 0)
	ra.Close()
	if string(got) != string(data) {
		t.Errorf("read back %q", got)
	}
	if err := cs.Delete(ctx, d); err == nil || !st.HasBlob(d.String()) {
		t.Errorf("delete: %v", err)
	}
}

// TestCheckPlatform: a daemon without a worker for this machine's architecture is refused
// before the solve, with the platforms it has.
func TestCheckPlatform(t *testing.T) {
	arm := &client.WorkerInfo{Platforms: []ocispecs.Platform{{OS: "linux", Architecture: "arm64"}}}
	both := &client.WorkerInfo{Platforms: []ocispecs.Platform{{OS: "linux", Architecture: "arm64"}, {OS: "linux", Architecture: "amd64"}}}
	if err := checkPlatform("unix:///x", []*client.WorkerInfo{both}, "amd64"); err != nil {
		t.Errorf("a daemon that builds for amd64 too: %v", err)
	}
	err := checkPlatform("unix:///x", []*client.WorkerInfo{arm}, "amd64")
	if err == nil || !strings.Contains(err.Error(), "builds for linux/arm64, not linux/amd64") {
		t.Errorf("an arm64 daemon for amd64 bases: %v", err)
	}
	if err := checkPlatform("unix:///x", nil, "amd64"); err == nil || !strings.Contains(err.Error(), "no worker") {
		t.Errorf("no worker: %v", err)
	}
}
