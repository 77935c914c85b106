package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goProgram copies a Go program's folder into a new module that uses this checkout of
// strata, applies edit to its source, and builds it (with cgo, as go run would: strata then
// rebuilds it for the container).
func goProgram(t *testing.T, src string, edit map[string]string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for from, to := range edit {
			text = strings.Replace(text, from, to, 1)
		}
		write(t, dir, e.Name(), text)
	}
	write(t, dir, "go.mod", fmt.Sprintf("module example.com/prog\n\ngo 1.26\n\nrequire github.com/strata-build/strata v0.0.0\n\nreplace github.com/strata-build/strata => %s\n", root))
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "go.sum", string(sum))
	cmd := exec.Command("go", "build", "-o", "prog", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "prog")
}

// runProgram runs a built program against the shared store; stdout and stderr apart.
func runProgram(t *testing.T, bin string, env []string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "STRATA_HOME="+home), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", bin, err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// TestGoFunctions: a build-time function writes into the image (a later run_commands reads
// it) and into a volume (which later containers see and no layer holds); functions called
// from the host return results, errors and panics, are stopped past their timeout, and run
// at the same time in separate containers.
func TestGoFunctions(t *testing.T) {
	need(t, "runc", "mmdebstrap", "go")
	u := strings.ReplaceAll(strings.ToLower(unique(t)), "/", "-")
	bin := goProgram(t, "testdata/fnprog", nil)
	out, _ := runProgram(t, bin, []string{"FNPROG_MARKER=" + u})
	for _, want := range []string{
		fmt.Sprintf("echo: %q <nil>", "hi|"+u),
		fmt.Sprintf("boom: %q", "boom, from the container"),
		"fails: function main.init.func3: an ordinary error",
		"slow: timeout=true within=true",
		fmt.Sprintf("concurrent: call0|%s <nil> call1|%s <nil>", u, u),
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if got, err := cli(t, "run", "-v", "fnprog-"+u+":/v", "fnprog", "--", "cat", "/v/in-volume.txt", "/seen-by-run.txt"); err != nil || got != u+"\n"+u+"\n" {
		t.Errorf("the volume or the image after the build: %v %q", err, got)
	}
	files := layerFilesOf(t, "fnprog")
	if !files["in-image.txt"] || files["vol/in-volume.txt"] || files["vol"] || files[".strata/fn"] || files[".strata"] {
		t.Errorf("layers: in-image %v, volume file %v, volume folder %v, function folders %v", files["in-image.txt"], files["vol/in-volume.txt"], files["vol"], files[".strata/fn"])
	}
}

// TestRunFunctionKeysFollowItsSource runs examples/functions: its RunFunction writes a file a
// later RunCommands reads; changing a helper the function calls rebuilds that layer (which
// finds its download in the cache volume), and changing an unrelated function does not.
func TestRunFunctionKeysFollowItsSource(t *testing.T) {
	need(t, "runc", "mmdebstrap", "go")
	u := unique(t)
	edits := map[string]string{`fmt.Sprintf("weights of %s: %s\n"`: `fmt.Sprintf("weights of %s (` + u + `): %s\n"`}
	out, log := runProgram(t, goProgram(t, "../examples/functions", edits), nil)
	if !strings.Contains(log, "#1 run_function building") || !strings.Contains(out, "hello strata, from a container with") || !strings.Contains(out, "the panicking function: this function always panics") {
		t.Fatalf("first run:\nstdout:\n%s\nstderr:\n%s", out, log)
	}
	if _, log := runProgram(t, goProgram(t, "../examples/functions", edits), nil); !strings.Contains(log, "#1 run_function cached") {
		t.Errorf("the same program rebuilt the function's layer:\n%s", log)
	}
	unrelated := map[string]string{"this function always panics": "this function always panics, differently"}
	for k, v := range edits {
		unrelated[k] = v
	}
	if out, log := runProgram(t, goProgram(t, "../examples/functions", unrelated), nil); !strings.Contains(log, "#1 run_function cached") || !strings.Contains(out, "differently") {
		t.Errorf("changing an unrelated function rebuilt the layer:\n%s", log)
	}
	edits[`strings.Repeat("0.5 ", size)`] = `strings.Repeat("0.25 ", size)`
	// The rebuild finds the first build's download in the cache volume, as the seed's
	// Hugging Face cache does.
	if _, log := runProgram(t, goProgram(t, "../examples/functions", edits), nil); !strings.Contains(log, "#1 run_function building") || !strings.Contains(log, "#2 run_commands building") || !strings.Contains(log, "from the cache volume: tiny") {
		t.Errorf("changing the helper the function calls did not rebuild its layer and the next, reading the cache volume:\n%s", log)
	}
}

// TestGPUsThroughCDI: with a CDI spec that grants a harmless device node and environment
// per "GPU", a build step and a run that ask for GPUs get exactly what the spec grants for
// the devices picked; a request the machine cannot meet fails before anything runs, naming
// what it has. (These machines have no GPU; this has not run on a real one.)
// fakeGPUs writes a CDI spec of two GPUs into a new folder and returns it: an H100 and an
// A10G by their product annotations, each of which gives a step a variable and a device
// node (/dev/null and /dev/zero under other names).
func fakeGPUs(t *testing.T) string {
	cdi := t.TempDir()
	write(t, cdi, "strata-test.yaml", `cdiVersion: "0.6.0"
kind: "strata.test/gpu"
devices:
  - name: "0"
    annotations: {strata.test/gpu.product: "NVIDIA H100 80GB HBM3"}
    containerEdits:
      env: ["STRATA_TEST_GPU0=granted"]
      deviceNodes: [{path: "/dev/strata-gpu0", hostPath: "/dev/null"}]
  - name: "1"
    annotations: {strata.test/gpu.product: "NVIDIA A10G"}
    containerEdits:
      env: ["STRATA_TEST_GPU1=granted"]
      deviceNodes: [{path: "/dev/strata-gpu1", hostPath: "/dev/zero"}]
`)
	return cdi
}

func TestGPUsThroughCDI(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	cdi := fakeGPUs(t)
	env := []string{"STRATA_CDI_SPEC_DIRS=" + cdi}
	u := unique(t)
	file := spec(t, fmt.Sprintf(`image:
  - debian_slim: {python_version: "3.13"}
  - run_commands: {commands: ["echo %s; (env | grep STRATA_TEST_GPU; ls /dev/strata-gpu*) > /gpu.txt"], gpu: "h100"}
`, u))
	if out, err := cliEnv(t, env, "", "build", "-f", file, "-t", "it-gpu", "--progress", "plain"); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if got, err := cli(t, "run", "it-gpu", "--", "cat", "/gpu.txt"); err != nil || got != "STRATA_TEST_GPU0=granted\n/dev/strata-gpu0\n" {
		t.Errorf("the build step saw: %v %q", err, got)
	}
	if got, err := cliEnv(t, env, "", "run", "--gpus", "a10g", "it-gpu", "--", "sh", "-c", "env | grep STRATA_TEST_GPU; ls /dev/strata-gpu*"); err != nil || got != "STRATA_TEST_GPU1=granted\n/dev/strata-gpu1\n" {
		t.Errorf("run --gpus a10g saw: %v %q", err, got)
	}
	if got, err := cliEnv(t, env, "", "run", "--gpus", "any:2", "it-gpu", "--", "sh", "-c", "ls /dev/strata-gpu* | wc -l"); err != nil || got != "2\n" {
		t.Errorf("run --gpus any:2 saw: %v %q", err, got)
	}
	bad := spec(t, fmt.Sprintf(`image:
  - debian_slim: {python_version: "3.13"}
  - run_commands: {commands: ["echo %s-first"]}
  - run_commands: {commands: ["echo never"], gpu: "B200:2"}
`, u))
	out, err := cliEnv(t, env, "", "build", "-f", bad, "-t", "it-gpu-bad", "--progress", "plain")
	if err == nil || !strings.Contains(out, "GPU B200:2 cannot be met on this machine, which has: strata.test/gpu=0 (NVIDIA H100 80GB HBM3); strata.test/gpu=1 (NVIDIA A10G)") || strings.Contains(out, "building") {
		t.Errorf("an unsatisfiable request: %v\n%s", err, out)
	}
}
