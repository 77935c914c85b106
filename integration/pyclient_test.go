package integration

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/pyindex"
)

// TestPythonClient runs the Python package's own tests (python/tests, under python3 -m
// unittest) against this build of strata and the suite's store: the Python, YAML and Go
// forms of the same images give the same keys, run_function's key follows its helpers, app
// functions run in containers, and the seed's snippets build and run against the stand-ins
// served here (seedStandIns). None may be skipped here.
func TestPythonClient(t *testing.T) {
	need(t, "python3", "runc", "mmdebstrap", "docker-registry", "git")
	cmd := exec.Command("python3", "-m", "unittest", "discover", "-s", "tests", "-v")
	cmd.Dir = "../python"
	cmd.Env = append(append(os.Environ(), "STRATA_BIN="+strataBin, "STRATA_HOME="+home, "PYTHONDONTWRITEBYTECODE=1"), seedStandIns(t)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "skipped") {
		t.Errorf("Python tests were skipped:\n%s", out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Ran ") || l == "OK" {
			t.Log(l)
		}
	}
}

// seedStandIns serves on 127.0.0.1 what the seed's snippets reach on the internet, and
// returns the environment that tells python/tests/seed where:
//   - STRATA_SEED_INDEX: a PEP 503 index of stand-in wheels for the packages the snippets
//     install (pandas, numpy, diffusers, transformers, scikit-learn, bitsandbytes, slack-sdk);
//     each is a small module of the real name and version, not the real package;
//   - STRATA_SEED_GIT: git repositories over HTTP, for github.com/modal-labs/agi and
//     gpu-glossary;
//   - STRATA_SEED_REGISTRY: a registry, for Docker Hub, holding huanjason/scikit-learn (a
//     Debian image with the stand-in scikit-learn installed);
//   - STRATA_SEED_PRIVATE: a registry that demands a password, for the private registry
//     and ECR snippets, with the secrets my-docker-secret and my-aws-secret (whose
//     AWS_ENDPOINT_URL_ECR is a local server speaking ECR's token API) and the image
//     private-repo/image:tag and my-private-registry:latest;
//   - STRATA_UV_IMAGE and STRATA_MICROMAMBA_IMAGE: the uv and micromamba test doubles of
//     TestUvWithATestDouble and TestMicromambaWithATestDouble (they record their arguments;
//     nothing here runs the real uv or micromamba);
//   - STRATA_CDI_SPEC_DIRS: fakeGPUs' CDI spec, for the GPU snippet (these machines have no GPU).
//
// It also makes the secret huggingface-secret and the volume hf-cache that the run_function
// snippet names.
func seedStandIns(t *testing.T) []string {
	t.Helper()
	wheel := func(name, version, pkg, body string, extra ...string) (string, []byte) {
		files := map[string]string{pkg + "/__init__.py": "__version__ = " + `"` + version + `"` + "\n" + body}
		if len(extra) > 0 {
			meta := "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n"
			for _, e := range extra {
				meta += "Provides-Extra: " + e + "\n"
			}
			files[strings.NewReplacer("-", "_").Replace(name)+"-"+version+".dist-info/METADATA"] = meta
		}
		return pyindex.WheelName(name, version), pyindex.Wheel(name, version, files)
	}
	wheels := map[string][]byte{}
	for _, w := range []struct{ name, version, pkg, body string }{
		{"pandas", "2.2.0", "pandas", "class DataFrame(dict):\n    pass\n"},
		{"numpy", "1.26.4", "numpy", "def array(xs):\n    return list(xs)\n"},
		{"transformers", "4.44.0", "transformers", ""},
		{"bitsandbytes", "0.43.1", "bitsandbytes", ""},
		{"slack-sdk", "3.27.0", "slack_sdk", ""},
	} {
		n, b := wheel(w.name, w.version, w.pkg, w.body)
		wheels[n] = b
	}
	n, b := wheel("diffusers", "0.30.0", "diffusers", diffusersStandIn, "torch")
	wheels[n] = b
	n, b = pyindex.WheelName("scikit-learn", "1.5.0"), pyindex.Wheel("scikit-learn", "1.5.0", map[string]string{
		"sklearn/__init__.py":  "__version__ = \"1.5.0\"\n",
		"sklearn/neighbors.py": knnStandIn,
	})
	wheels[n] = b
	index := packageIndex(t, wheels)

	// Docker Hub: huanjason/scikit-learn, a Debian image with the stand-in installed.
	reg := registry(t)
	sk := build(t, base().PipInstallWith(strata.PipInstallOptions{
		Packages: []string{"scikit-learn==1.5.0"}, PipOptions: strata.PipOptions{IndexURL: index},
	}), "it-seed-sklearn")
	pushImage(t, sk, reg+"/huanjason/scikit-learn:latest")

	// A private registry, and ECR in front of it.
	private := startRegistry(t, regOpts{htpasswd: htpasswd(t, map[string]string{"alice": "wonderland", "AWS": "ecr-password"})})
	dc := t.TempDir()
	if out, err := cliEnv(t, []string{"DOCKER_CONFIG=" + dc}, "wonderland\n", "login", private, "-u", "alice", "--password-stdin"); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	for _, ref := range []string{private + "/private-repo/image:tag", private + "/my-private-registry:latest"} {
		if out, err := cliEnv(t, []string{"DOCKER_CONFIG=" + dc}, "", "push", "it-seed-sklearn", ref); err != nil {
			t.Fatalf("push %s: %v\n%s", ref, err, out)
		}
	}
	ecr := fakeECR(t, private)
	for name, kv := range map[string][]string{
		"my-docker-secret":   {"REGISTRY_USERNAME=alice", "REGISTRY_PASSWORD=wonderland"},
		"my-aws-secret":      {"AWS_ACCESS_KEY_ID=AKIATEST", "AWS_SECRET_ACCESS_KEY=seed-aws-key", "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_ECR=" + ecr.URL},
		"huggingface-secret": {"HF_TOKEN=hf_seed_test_token"},
	} {
		if out, err := cli(t, append([]string{"secret", "create", name}, kv...)...); err != nil && !strings.Contains(out, "exists") {
			t.Fatalf("secret create %s: %v\n%s", name, err, out)
		}
	}
	if out, err := cli(t, "volume", "create", "hf-cache"); err != nil && !strings.Contains(out, "exists") {
		t.Fatalf("volume create: %v\n%s", err, out)
	}

	return []string{
		"STRATA_SEED_INDEX=" + index,
		"STRATA_SEED_GIT=" + gitServer(t, "modal-labs/agi", "modal-labs/gpu-glossary"),
		"STRATA_SEED_REGISTRY=" + reg,
		"STRATA_SEED_PRIVATE=" + private,
		"STRATA_INSECURE_REGISTRIES=" + reg + "," + private,
		"STRATA_UV_IMAGE=" + pushUvDouble(t, reg),
		"STRATA_MICROMAMBA_IMAGE=" + pushMicromambaDouble(t, reg),
		"STRATA_CDI_SPEC_DIRS=" + fakeGPUs(t),
	}
}

// diffusersStandIn is the stand-in diffusers' pipeline: from_pretrained "downloads" into the
// Hugging Face cache (HF_HOME, or ~/.cache/huggingface) and records whether a token was given.
const diffusersStandIn = `import os

class StableDiffusionPipeline:
    @classmethod
    def from_pretrained(cls, name):
        cache = os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
        folder = os.path.join(cache, "hub", "models--" + name.replace("/", "--"))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "model.safetensors"), "w") as f:
            f.write("weights of %s, token given: %s\n" % (name, bool(os.environ.get("HF_TOKEN"))))
        return cls()
`

// knnStandIn is the stand-in scikit-learn's k-nearest-neighbours classifier, small but real.
const knnStandIn = `class KNeighborsClassifier:
    def __init__(self, n_neighbors=5):
        self.n_neighbors = n_neighbors

    def fit(self, X, y):
        self._X, self._y = [list(x) for x in X], list(y)
        return self

    def predict(self, X):
        out = []
        for x in X:
            near = sorted(range(len(self._X)), key=lambda i: sum((a - b) ** 2 for a, b in zip(self._X[i], x)))[: self.n_neighbors]
            votes = [self._y[i] for i in near]
            out.append(max(set(votes), key=votes.count))
        return out
`

// gitServer serves bare git repositories with one commit each (a README naming the repository)
// over git's dumb HTTP protocol on 127.0.0.1, and returns the URL they are under:
// URL/owner/name clones owner/name.
func gitServer(t *testing.T, repos ...string) string {
	t.Helper()
	served := t.TempDir()
	for _, repo := range repos {
		work := t.TempDir()
		write(t, work, "README.md", "# "+repo+"\nServed by a git server on 127.0.0.1, standing in for GitHub.\n")
		bare := filepath.Join(served, repo)
		for _, c := range [][]string{
			{"-C", work, "init", "-q", "-b", "main"},
			{"-C", work, "add", "README.md"},
			{"-C", work, "-c", "user.name=strata", "-c", "user.email=strata@example.invalid", "commit", "-q", "-m", "first"},
			{"clone", "-q", "--bare", work, bare},
			{"-C", bare, "update-server-info"},
		} {
			if out, err := exec.Command("git", c...).CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", c, err, out)
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(served))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}
