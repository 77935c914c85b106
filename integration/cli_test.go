package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func spec(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "image.yaml", body)
	return filepath.Join(dir, "image.yaml")
}

func TestConcurrentBuildsOfOneSpec(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	file := spec(t, fmt.Sprintf(`image:
  - debian_slim: {python_version: "3.13"}
  - run_commands: {commands: ["sleep 2; echo %s > /made; cat /proc/sys/kernel/random/uuid > /id"]}
  - env: {vars: {DONE: "yes"}}
`, unique(t)))
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			outs[i], errs[i] = cli(t, "build", "-f", file, "-t", fmt.Sprintf("it-conc-%d", i), "--progress", "plain")
		}(i)
	}
	wg.Wait()
	for i := range outs {
		if errs[i] != nil {
			t.Fatalf("build %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	// The step ran once: one of the builds took it from the other's cache entry.
	if strings.Count(outs[0]+outs[1], "run_commands building") != 1 {
		t.Errorf("the step ran more (or less) than once:\n%s\n---\n%s", outs[0], outs[1])
	}
	id0, err0 := cli(t, "run", "it-conc-0", "--", "cat", "/id")
	id1, err1 := cli(t, "run", "it-conc-1", "--", "cat", "/id")
	if err0 != nil || err1 != nil || id0 != id1 {
		t.Errorf("the two images differ: %q (%v) and %q (%v)", id0, err0, id1, err1)
	}
}

func TestSIGKILLedBuildLeavesAUsableStore(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	u := unique(t)
	file := spec(t, fmt.Sprintf(`image:
  - debian_slim: {python_version: "3.13"}
  - run_commands: {commands: ["echo %s > /a; sleep 1; head -c 20000000 /dev/urandom > /big"]}
  - run_commands: {commands: ["sleep 1; echo second > /b"]}
`, u))
	// Kill at several points: starting, mid-step, while committing a layer.
	for _, d := range []time.Duration{50 * time.Millisecond, 400 * time.Millisecond, 1200 * time.Millisecond, 1700 * time.Millisecond, 2500 * time.Millisecond} {
		cmd := exec.Command(strataBin, "build", "-f", file, "-t", "it-kill", "--progress", "plain")
		cmd.Env = append(os.Environ(), "STRATA_HOME="+home)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	out, err := cli(t, "build", "-f", file, "-t", "it-kill", "--progress", "plain")
	if err != nil {
		t.Fatalf("build after kills: %v\n%s", err, out)
	}
	got, err := cli(t, "run", "it-kill", "--", "sh", "-c", "cat /a /b; wc -c < /big")
	if err != nil || got != u+"\nsecond\n20000000\n" {
		t.Errorf("run: %v %q", err, got)
	}
	// Recovery removed what the killed builds left: no work folders, no mounts.
	if _, err := cli(t, "images"); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(filepath.Join(home, "tmp"))
	for _, e := range left {
		if e.IsDir() {
			t.Errorf("work folder left after recovery: %s", e.Name())
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), filepath.Join(home, "tmp")) {
		t.Error("a mount from a killed build is still there")
	}
}

func TestCLIImagesInspectLogsRmPrune(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	u := unique(t)
	file := spec(t, fmt.Sprintf("image:\n  - debian_slim: {python_version: \"3.13\"}\n  - run_commands: {commands: [\"echo %s-log-line; echo %s > /x\"]}\n", u, u))
	if out, err := cli(t, "build", "-f", file, "-t", "it-cli", "--progress", "json"); err != nil || !strings.Contains(out, `"status":"done"`) {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := cli(t, "images")
	if err != nil || !strings.Contains(out, "it-cli") {
		t.Errorf("images: %v\n%s", err, out)
	}
	out, err = cli(t, "inspect", "it-cli")
	if err != nil || !strings.Contains(out, "run_commands") || !strings.Contains(out, "manifest:") {
		t.Errorf("inspect: %v\n%s", err, out)
	}
	out, err = cli(t, "logs", "it-cli", "--layer", "1")
	if err != nil || !strings.Contains(out, u+"-log-line") {
		t.Errorf("logs: %v\n%s", err, out)
	}
	if out, err := cli(t, "run", "it-cli", "--", "sh", "-c", "exit 42"); err == nil {
		t.Errorf("exit code not passed through: %s", out)
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 42 {
		t.Errorf("run exit: %v", err)
	}
	if out, err := cli(t, "rm", "it-cli"); err != nil {
		t.Fatalf("rm: %v %s", err, out)
	}
	out, err = cli(t, "prune")
	if err != nil || !strings.Contains(out, "freed") {
		t.Fatalf("prune: %v %s", err, out)
	}
	// After prune, images that remain still run and rebuild from cache.
	if out, err := cli(t, "images"); err != nil || strings.Contains(out, "it-cli") {
		t.Errorf("images after rm: %v %s", err, out)
	}
}

func TestRunPassesSignalsSecretsEnvAndMounts(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	file := spec(t, "image:\n  - debian_slim: {python_version: \"3.13\"}\n  - workdir: {path: /srv}\n")
	if out, err := cli(t, "build", "-f", file, "-t", "it-run", "--progress", "plain"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	dotenv := filepath.Join(t.TempDir(), ".env")
	os.WriteFile(dotenv, []byte("RUN_TOKEN=from-dotenv\n"), 0o600)
	if out, err := cli(t, "secret", "create", "it-run-secret", "--from-dotenv", dotenv, "EXTRA=1"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := cli(t, "secret", "ls"); err != nil || !strings.Contains(out, "EXTRA, RUN_TOKEN") || strings.Contains(out, "from-dotenv") {
		t.Errorf("secret ls: %v\n%s", err, out)
	}
	data := t.TempDir()
	write(t, data, "in.txt", "local data")
	out, err := cli(t, "run", "it-run", "-e", "A=1", "--secret", "it-run-secret", "--mount", data+":/data", "--workdir", "/data", "--",
		"sh", "-c", "echo $A $RUN_TOKEN $(pwd) $(cat in.txt); echo written > out.txt")
	if err != nil || out != "1 from-dotenv /data local data\n" {
		t.Errorf("run: %v %q", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "out.txt")); string(b) != "written\n" {
		t.Errorf("--mount is not read-write: %q", b)
	}
	if out, err := cli(t, "secret", "rm", "it-run-secret"); err != nil {
		t.Errorf("secret rm: %v %s", err, out)
	}
	// Ctrl-C reaches the process, which may handle it; its exit code is strata's.
	cmd := exec.Command(strataBin, "run", "it-run", "--", "sh", "-c", `trap 'echo got-int; exit 5' INT; echo ready; while :; do sleep 0.1; done`)
	cmd.Env = append(os.Environ(), "STRATA_HOME="+home)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := stdout.Read(buf)
	if !strings.Contains(string(buf[:n]), "ready") {
		t.Fatalf("process did not start: %q", buf[:n])
	}
	cmd.Process.Signal(os.Interrupt)
	rest := make([]byte, 64)
	m, _ := stdout.Read(rest)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 5 || !strings.Contains(string(rest[:m]), "got-int") {
		t.Errorf("after Ctrl-C: %v, output %q", err, rest[:m])
	}
}
