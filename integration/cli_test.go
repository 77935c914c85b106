package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-build/strata"
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

// buildEvents starts strata build with JSON progress and sends each event it prints.
func buildEvents(t *testing.T, file string) (*exec.Cmd, <-chan strata.Event) {
	t.Helper()
	cmd := exec.Command(strataBin, "build", "-f", file, "-t", "it-kill", "--progress", "json")
	cmd.Env = append(os.Environ(), "STRATA_HOME="+home)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan strata.Event, 1000)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var ev strata.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev
			}
		}
	}()
	return cmd, events
}

// committing reports whether strata (the process pid itself, not the step's container) is
// reading the step's file /big from the layer's upper folder: writing the layer's tar to
// hash it, before its snapshot and record are committed.
func committing(pid int) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasSuffix(target, "/upper/big") {
			return true
		}
	}
	return false
}

func TestSIGKILLedBuildLeavesAUsableStore(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	u := unique(t)
	file := spec(t, fmt.Sprintf(`image:
  - debian_slim: {python_version: "3.13"}
  - run_commands: {commands: ["echo %s > /a; sleep 1; head -c 40000000 /dev/urandom > /big"]}
  - run_commands: {commands: ["sleep 1; echo second > /b"]}
`, u))
	// Each kill waits for its moment, seen in the build's progress or in the process, and the
	// test checks that it came: before the first step, inside it, while its layer is being
	// committed, and inside the second step.
	type point struct {
		name  string
		until func(seen map[string]bool) bool
	}
	var cmd *exec.Cmd
	var events <-chan strata.Event
	points := []point{
		{"at start", func(map[string]bool) bool { return true }},
		{"mid-step", func(seen map[string]bool) bool { return seen["1 building"] }},
		{"committing the layer", func(seen map[string]bool) bool { return seen["1 building"] && committing(cmd.Process.Pid) }},
		{"in the second step", func(seen map[string]bool) bool { return seen["2 building"] }},
	}
	for _, p := range points {
		cmd, events = buildEvents(t, file)
		seen := map[string]bool{}
		deadline := time.Now().Add(2 * time.Minute)
	wait:
		for !p.until(seen) {
			select {
			case ev, ok := <-events:
				if !ok {
					break wait
				}
				seen[fmt.Sprintf("%d %s", ev.Index, ev.Status)] = true
			case <-time.After(2 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				break
			}
		}
		if p.name == "mid-step" || p.name == "in the second step" {
			time.Sleep(300 * time.Millisecond) // into the step's sleep
		}
		reached := p.until(seen)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		for ev := range events { // what the build printed before it died
			seen[fmt.Sprintf("%d %s", ev.Index, ev.Status)] = true
		}
		landed := reached && !seen["2 done"]
		if p.name != "in the second step" {
			landed = landed && !seen["1 done"]
		}
		if !landed {
			t.Fatalf("the kill %s did not land there: events %v", p.name, seen)
		}
	}
	out, err := cli(t, "build", "-f", file, "-t", "it-kill", "--progress", "plain")
	if err != nil {
		t.Fatalf("build after kills: %v\n%s", err, out)
	}
	got, err := cli(t, "run", "it-kill", "--", "sh", "-c", "cat /a /b; wc -c < /big")
	if err != nil || got != u+"\nsecond\n40000000\n" {
		t.Errorf("run: %v %q", err, got)
	}
	// Recovery (every command opens the store with it) removed what the killed builds left:
	// no work folders, no half-written blobs or records, no mounts.
	if _, err := cli(t, "images"); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(filepath.Join(home, "tmp"))
	for _, e := range left {
		t.Errorf("left in the store's tmp after recovery: %s", e.Name())
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), strings.ReplaceAll(filepath.Join(home, "tmp"), " ", `\040`)) {
		t.Error("a mount from a killed build is still there")
	}
	// The store's own check finds every blob, snapshot, cache entry and image whole.
	if out, err := cli(t, "check"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Errorf("strata check after the kills: %v\n%s", err, out)
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
	// An image that stays: after the prune it runs, and rebuilds from the cache alone.
	keep := spec(t, fmt.Sprintf("image:\n  - debian_slim: {python_version: \"3.13\"}\n  - run_commands: {commands: [\"echo %s-kept > /kept\"]}\n  - env: {vars: {KEPT: \"1\"}}\n", u))
	if out, err := cli(t, "build", "-f", keep, "-t", "it-cli-keep", "--progress", "plain"); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if out, err := cli(t, "rm", "it-cli"); err != nil {
		t.Fatalf("rm: %v %s", err, out)
	}
	out, err = cli(t, "prune")
	if err != nil || !strings.Contains(out, "freed") || strings.HasPrefix(out, "removed 0 cache entries") {
		t.Fatalf("prune: %v %s", err, out)
	}
	if out, err := cli(t, "images"); err != nil || strings.Contains(out, "it-cli ") || !strings.Contains(out, "it-cli-keep") {
		t.Errorf("images after rm and prune: %v %s", err, out)
	}
	if out, err := cli(t, "run", "it-cli-keep", "--", "cat", "/kept"); err != nil || out != u+"-kept\n" {
		t.Errorf("run after prune: %v %q", err, out)
	}
	out, err = cli(t, "build", "-f", keep, "-t", "it-cli-keep", "--progress", "plain")
	if err != nil || strings.Count(out, " cached ") != 3 || strings.Contains(out, "building") {
		t.Errorf("the kept image did not rebuild from the cache alone: %v\n%s", err, out)
	}
	// The pruned image's own layer is gone: building it again runs its step.
	out, err = cli(t, "build", "-f", file, "-t", "it-cli", "--progress", "plain")
	if err != nil || !strings.Contains(out, "run_commands building") {
		t.Errorf("the pruned layer was still cached: %v\n%s", err, out)
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
	// :ro mounts it read-only; the container knows it is one (STRATA_CONTAINER), and the
	// image's config does not carry that.
	out, err = cli(t, "run", "it-run", "--mount", data+":/data:ro", "--", "sh", "-c", "echo $STRATA_CONTAINER; cat /data/in.txt; (echo x > /data/out.txt) 2>/dev/null || echo refused")
	if err != nil || out != "1\nlocal datarefused\n" {
		t.Errorf("run --mount :ro: %v %q", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "out.txt")); string(b) != "written\n" {
		t.Errorf("a :ro mount was written: %q", b)
	}
	if out, err := cli(t, "inspect", "it-run"); err != nil || strings.Contains(out, "STRATA_CONTAINER") {
		t.Errorf("inspect: %v, the config holds STRATA_CONTAINER:\n%s", err, out)
	}
	if out, err := cli(t, "run", "it-run", "--mount", data+":/data:rx", "--", "true"); err == nil || !strings.Contains(out, "LOCAL:REMOTE[:ro]") {
		t.Errorf("--mount with a bad mode: %v %s", err, out)
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

// TestDetachedContainers: `run -d` starts a container of an image whose USER is not root,
// `ps` lists it, `logs` shows its output, and `stop` (another strata process) ends its
// processes and removes it. (TestRootlessBuildsTheSameLayers stops one from another user
// namespace.)
func TestDetachedContainers(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	u := unique(t)
	file := spec(t, "image:\n  - debian_slim: {python_version: \"3.13\"}\n  - run_commands: {commands: [\"useradd -u 1234 app\"]}\n  - dockerfile_commands: {commands: [\"USER app\"]}\n")
	if out, err := cli(t, "build", "-f", file, "-t", "it-detached", "--progress", "plain"); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	secs := fmt.Sprint(40000 + rand.Intn(20000)) // marks the container's process on the host
	out, err := cli(t, "run", "-d", "it-detached", "--", "sh", "-c", "echo started-"+u+" as $(id -u); exec sleep "+secs)
	if err != nil {
		t.Fatalf("run -d: %v\n%s", err, out)
	}
	id := strings.TrimSpace(out)
	if out, err := cli(t, "ps"); err != nil || !strings.Contains(out, id) || !strings.Contains(out, "running") {
		t.Errorf("ps: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err = cli(t, "logs", id)
		if strings.Contains(out, "started-"+u+" as 1234") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out, "started-"+u+" as 1234") {
		t.Errorf("logs: %v\n%s", err, out)
	}
	if len(awaitSleeping(secs)) == 0 {
		t.Fatalf("no process sleep %s on the host", secs)
	}
	if out, err := cli(t, "stop", id); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if pids := sleeping(secs); len(pids) > 0 {
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		t.Errorf("stop left the container's process running: %v", pids)
	}
	if out, _ := cli(t, "ps"); strings.Contains(out, id) {
		t.Errorf("ps after stop:\n%s", out)
	}
}

// awaitSleeping waits up to ten seconds for a host process that runs `sleep secs`: a
// detached container's command may not have exec'd its sleep yet when run -d returns.
func awaitSleeping(secs string) []int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pids := sleeping(secs); len(pids) > 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sleeping lists the host's processes that run `sleep secs`.
func sleeping(secs string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == "sleep\x00"+secs+"\x00" {
			out = append(out, pid)
		}
	}
	return out
}

// runFast runs the strata front bin and says whether it answered from the cache-hit path:
// whether strata-core's heavy packages were initialised (GODEBUG=inittrace=1), all of them
// or none.
func runFast(t *testing.T, bin string, env []string, args ...string) (out string, fast bool) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "STRATA_HOME="+home, "GODEBUG=inittrace=1"), env...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	var lines, inits []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "init ") {
			inits = append(inits, strings.Fields(l)[1])
		} else {
			lines = append(lines, l)
		}
	}
	heavy := []string{"github.com/strata-build/strata/internal/cli", "github.com/moby/buildkit/frontend/dockerfile/parser",
		"github.com/google/go-containerregistry/pkg/v1/remote", "net/http", "github.com/spf13/cobra"}
	n := 0
	for _, p := range inits {
		if slices.Contains(heavy, p) {
			n++
		}
	}
	if n != 0 && n != len(heavy) {
		t.Fatalf("%d of the heavy packages %v were initialised: %v", n, heavy, inits)
	}
	return strings.Join(lines, "\n"), n == 0
}

// TestStrataFrontAndCore: the strata front runs strata-core from beside itself, says how to
// install it when it is not there, and answers from a memo only for the front and the
// strata-core that wrote it: either one replaced (the same bytes, another file) takes the
// full path once.
func TestStrataFrontAndCore(t *testing.T) {
	file := spec(t, fmt.Sprintf("image:\n  - from_scratch: {}\n  - env: {vars: {V: %q}}\n", unique(t)))
	alone, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	copyExe(t, strataBin, filepath.Join(alone, "strata"))
	empty := t.TempDir()
	runAlone := func() ([]byte, error) {
		cmd := exec.Command(filepath.Join(alone, "strata"), "build", "-f", file)
		cmd.Env = append(os.Environ(), "STRATA_HOME="+home, "PATH="+empty)
		return cmd.CombinedOutput()
	}
	out, err := runAlone()
	if err == nil || !strings.Contains(string(out), "no executable strata-core beside "+filepath.Join(alone, "strata")+" or on PATH") ||
		!strings.Contains(string(out), "go build -o "+alone+"/ ./cmd/...") {
		t.Errorf("the front without strata-core: %v\n%s", err, out)
	}

	// A copy of the front where strata-core should be is refused, not run in a loop.
	copyExe(t, strataBin, filepath.Join(alone, "strata-core"))
	out, err = runAlone()
	if err == nil || !strings.Contains(string(out), "is this program, the strata front, not strata-core") {
		t.Errorf("the front as strata-core: %v\n%s", err, out)
	}

	bin := t.TempDir()
	front, core := filepath.Join(bin, "strata"), filepath.Join(bin, "strata-core")
	copyExe(t, strataBin, front)
	copyExe(t, strataBin+"-core", core)
	build := func() (string, bool) {
		t.Helper()
		return runFast(t, front, nil, "build", "-f", file, "-t", "it-front", "--progress", "plain")
	}
	if out, fast := build(); fast || !strings.Contains(out, "it-front sha256:") {
		t.Fatalf("the first build (fast path %v):\n%s", fast, out)
	}
	for _, replaced := range []string{core, front, ""} {
		if replaced != "" {
			copyExe(t, replaced, replaced)
		}
		if out, fast := build(); fast == (replaced != "") {
			t.Errorf("with %q replaced, fast path %v:\n%s", replaced, fast, out)
		}
		if out, fast := build(); !fast {
			t.Errorf("the build after %q was replaced left no memo:\n%s", replaced, out)
		}
	}
}

// copyExe copies an executable to dst by way of a new file renamed over it: another inode.
func copyExe(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst+".new", b, 0o755)
	}
	if err == nil {
		err = os.Rename(dst+".new", dst)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestCachedBuildTakesTheFastPath: a spec-file build that is all cache hits answers from its
// last build's memo (internal/fasthit) before the heavy packages are initialised, prints
// exactly what the full build prints, and stops doing so when an input changes.
func TestCachedBuildTakesTheFastPath(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	text := fmt.Sprintf("image:\n  - debian_slim: {python_version: \"3.13\"}\n  - run_commands: {commands: [\"echo %s > /made\"]}\n  - env: {vars: {V: \"1\"}}\n", unique(t))
	file := spec(t, text)
	run := func(args []string, env ...string) (out string, fast bool) {
		t.Helper()
		return runFast(t, strataBin, env, args...)
	}
	build := func(env ...string) (out string, fast bool) {
		t.Helper()
		return run([]string{"build", "-f", file, "-t", "it-fast", "--progress", "plain"}, env...)
	}
	if out, fast := build(); fast || !strings.Contains(out, "run_commands building") {
		t.Fatalf("the first build (fast path %v):\n%s", fast, out)
	}
	hit, fast := build()
	if !fast {
		t.Fatalf("a rebuild that changed nothing took the full path:\n%s", hit)
	}
	full, fast := build("STRATA_NO_FAST_HIT=1")
	if fast || full != hit {
		t.Errorf("the fast path printed\n%s\nthe full build\n%s", hit, full)
	}
	if !strings.Contains(hit, "#1 run_commands cached") || !strings.Contains(hit, "it-fast sha256:") {
		t.Errorf("the fast path printed\n%s", hit)
	}

	// Every input the memo holds takes the full path when it changes: a cache entry gone
	// (the env layer's, found by its short key in the hit's output) is built again.
	short := regexp.MustCompile(`#2 env cached ([0-9a-f]{12})`).FindStringSubmatch(hit)
	if short == nil {
		t.Fatalf("no env layer in\n%s", hit)
	}
	entries, _ := filepath.Glob(filepath.Join(home, "cache", short[1]+"*.json"))
	if len(entries) != 1 || os.Remove(entries[0]) != nil {
		t.Fatalf("the env layer's cache entry: %v", entries)
	}
	if out, fast := build(); fast || !strings.Contains(out, "env building") {
		t.Errorf("with a cache entry gone (fast path %v):\n%s", fast, out)
	}
	if out, fast := build(); !fast {
		t.Errorf("the full build left no memo:\n%s", out)
	}
	if out, err := cli(t, "rm", "it-fast"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, fast := build(); fast || !strings.Contains(out, "it-fast sha256:") {
		t.Errorf("after strata rm (fast path %v):\n%s", fast, out)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(text, `V: "1"`, `V: "2"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, fast := build(); fast || !strings.Contains(out, "env building") {
		t.Errorf("after the spec changed (fast path %v):\n%s", fast, out)
	}

	// A spec that copies a local folder and file: its memo holds them by identity. Files
	// changed in the two seconds before a run are left to the full path (racily clean).
	dir := filepath.Dir(file)
	write(t, dir, "tree/a.txt", "a\n")
	write(t, dir, "tree/sub/b.txt", "b\n")
	write(t, dir, "greeting.txt", "hello\n")
	text = strings.Replace(text, "  - env:", "  - add_local_dir: {local_path: tree, remote_path: /tree, copy: true}\n  - add_local_file: {local_path: greeting.txt, remote_path: /greeting.txt, copy: true}\n  - env:", 1)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	build()
	if out, fast := build(); fast || strings.Contains(out, "building") {
		t.Errorf("a spec with local files changed just now (fast path %v):\n%s", fast, out)
	}
	settle := func() { time.Sleep(2100 * time.Millisecond) }
	settle()
	build()
	hit, fast = build()
	if !fast || !strings.Contains(hit, "#2 add_local_dir cached") {
		t.Fatalf("a rebuild with local files unchanged took the full path:\n%s", hit)
	}
	if full, _ := build("STRATA_NO_FAST_HIT=1"); full != hit {
		t.Errorf("with local files, the fast path printed\n%s\nthe full build\n%s", hit, full)
	}

	// strata spec answers from its own memo, with what the full resolve prints.
	resolve := func(env ...string) (string, bool) {
		t.Helper()
		return run([]string{"spec", "-f", file}, env...)
	}
	resolve()
	specHit, fast := resolve()
	if !fast || !strings.Contains(specHit, "add_local_dir") {
		t.Errorf("an unchanged strata spec took the full path:\n%s", specHit)
	}
	if full, _ := resolve("STRATA_NO_FAST_HIT=1"); full != specHit {
		t.Errorf("strata spec's fast path printed\n%s\nthe full resolve\n%s", specHit, full)
	}

	// A file made in a copied folder, or a copied file changed, takes the full path.
	write(t, dir, "tree/sub/c.txt", "c\n")
	if out, fast := build(); fast || !strings.Contains(out, "add_local_dir building") {
		t.Errorf("after a file was made in the copied folder (fast path %v):\n%s", fast, out)
	}
	if out, fast := resolve(); fast || out == specHit {
		t.Errorf("strata spec after a file was made in the copied folder (fast path %v):\n%s", fast, out)
	}
	settle()
	build()
	if _, fast := build(); !fast {
		t.Error("the full build after the folder changed left no memo")
	}
	write(t, dir, "greeting.txt", "hello again\n")
	if out, fast := build(); fast || !strings.Contains(out, "add_local_file building") {
		t.Errorf("after the local file changed (fast path %v):\n%s", fast, out)
	}
}
