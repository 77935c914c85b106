package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/strata-build/strata/internal/rootless"
)

// conformanceDir holds one folder per case; folders whose name starts with "_" are not
// cases (_http holds the files the test serves over http).
const conformanceDir = "../testdata/conformance"

// conformanceToken is the secret the cases read through --secret id=token,env=CONFORMANCE_TOKEN.
const conformanceToken = "conformance-token-value"

// conformanceIgnored are the paths that differ between two builds for reasons outside the
// Dockerfile; they are left out of every comparison. Modification times are not compared
// at all: every build stamps its own.
var conformanceIgnored = []struct{ pattern, why string }{
	{"/var/cache/ldconfig/aux-cache", "ldconfig rewrites it, with the times it saw, at every run"},
	{"**/__pycache__", "Python writes byte-code caches, which embed source mtimes, when a RUN imports modules"},
	{"**/*.pyc", "the same byte-code caches outside __pycache__"},
}

// buildahStubs are files buildah 1.28 leaves, empty, in every image whose Dockerfile has a
// RUN: the mount points of the files it gives containers. BuildKit removes the mount points
// it made (executor/stubs.go), so Docker's image has these files as the base has them, and
// strata's image is compared with the base's for them, not with buildah's. No case writes them.
var buildahStubs = []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}

// conformanceIgnoredLabels are labels a builder adds on its own.
var conformanceIgnoredLabels = map[string]string{
	"io.buildah.version": "buildah stamps its version on every image it commits",
}

// TestDockerfileConformance builds every case of the Dockerfile conformance corpus
// (testdata/conformance, described in its README.md) with strata and with buildah from the
// same base image, and compares the two images: the root file system, path by path, and the
// image config. A case with an expect.json uses a feature that buildah 1.28 lacks: strata's
// image is compared with that hand-written expectation of Docker's behaviour instead. A case
// with an overrides.json is compared with buildah except where buildah departs from Docker.
//
// A difference from buildah fails the test unless the case's README entry lists it, with its
// reason.
func TestDockerfileConformance(t *testing.T) {
	need(t, "runc", "mmdebstrap", "buildah", "skopeo")
	c := &conformance{tmp: t.TempDir(), buildahTime: map[string]time.Duration{}}
	cases := c.loadCases(t)
	c.prepareBase(t)
	c.serve(t)
	// The git repository and the ssh agent are made here, once, for the cases that use them;
	// a case whose tools are missing is skipped (or failed) by need, in its own subtest.
	if _, err := exec.LookPath("git"); err == nil {
		c.gitErr = c.makeGitRepo()
	}
	if usesFlag(cases, "--ssh") {
		if _, err := exec.LookPath("ssh-agent"); err == nil {
			c.agentSock, c.agentErr = c.startAgent(t)
		}
	}
	// Each case is built on the BuildKit engine too, and its image compared with the local
	// engine's: the test matrix of the two engines.
	if rootless.Active() {
		t.Log("the cases are not built on the BuildKit engine in a rootless run: buildkitd runs as root here (no rootlesskit)")
	} else {
		c.bkAddr = buildkitd(t)
	}
	for _, cs := range cases {
		cs := cs
		t.Run(cs.name, func(t *testing.T) { c.run(t, cs) })
	}
	var total time.Duration
	var names []string
	for name, d := range c.buildahTime {
		total += d
		names = append(names, fmt.Sprintf("%s %.1fs", name, d.Seconds()))
	}
	sort.Strings(names)
	t.Logf("buildah builds of the corpus: %.1fs in all, and %.1fs pushing to an OCI layout (%s)",
		total.Seconds(), c.pushTime.Seconds(), strings.Join(names, ", "))
}

// conformance is the state shared by the cases: the base image, the servers, the agent.
type conformance struct {
	tmp         string
	baseTag     string // localhost/conformance-base:<tag> in buildah's storage
	base        fsTree // the base's root file system, for expect.json's changed_only_under
	httpURL     string // files of testdata/conformance/_http
	gitURL      string // bare repositories, over git's dumb http protocol
	gitErr      error
	agentSock   string
	agentErr    error
	buildahTime map[string]time.Duration
	pushTime    time.Duration
	built       map[string]bool // cases whose images both tools have, for {{IMAGE:case}}
	bkAddr      string          // the buildkitd of the BuildKit engine's builds; "" for none
}

// confCase is one folder of the corpus.
type confCase struct {
	name        string
	dir         string   // absolute
	args        []string // the args file: flag and value per line, for both tools
	buildahArgs []string // buildah-args: flags for buildah only (workarounds, see README)
	expect      *expectation
	overrides   *expectation
	allowed     []allowedDiff // from the case's README entry
	// allowedBuildKit are the BuildKit engine's differences from the local engine that the
	// README entry lists.
	allowedBuildKit []allowedDiff
}

// allowedDiff is a README key: "/path" (any field), "/path/**" (the path and everything
// under it), "/path field", or "config.Field".
type allowedDiff struct{ key, field string }

func (a allowedDiff) matches(d confDiff) bool {
	if a.field != "" && a.field != d.field {
		return false
	}
	if strings.HasSuffix(a.key, "/**") {
		dir := strings.TrimSuffix(a.key, "/**")
		return d.path == dir || strings.HasPrefix(d.path, dir+"/")
	}
	return a.key == d.path
}

// loadCases reads the corpus and the README's lists of expected differences.
func (c *conformance) loadCases(t *testing.T) []*confCase {
	t.Helper()
	root, err := filepath.Abs(conformanceDir)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	allowed, allowedBuildKit, err := parseConformanceReadme(string(readme))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	var cases []*confCase
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		cs := &confCase{name: e.Name(), dir: filepath.Join(root, e.Name())}
		if _, ok := allowed[cs.name]; !ok {
			t.Errorf("case %s has no entry (### %s) in README.md", cs.name, cs.name)
		}
		cs.allowed, cs.allowedBuildKit = allowed[cs.name], allowedBuildKit[cs.name]
		if cs.args, err = readArgsFile(filepath.Join(cs.dir, "args")); err != nil {
			t.Fatalf("%s: %v", cs.name, err)
		}
		if cs.buildahArgs, err = readArgsFile(filepath.Join(cs.dir, "buildah-args")); err != nil {
			t.Fatalf("%s: %v", cs.name, err)
		}
		if cs.expect, err = readExpectation(filepath.Join(cs.dir, "expect.json")); err != nil {
			t.Fatalf("%s: %v", cs.name, err)
		}
		if cs.overrides, err = readExpectation(filepath.Join(cs.dir, "overrides.json")); err != nil {
			t.Fatalf("%s: %v", cs.name, err)
		}
		if cs.expect != nil && cs.overrides != nil {
			t.Fatalf("%s: a case has expect.json (strata against Docker's documented result) or overrides.json (strata against buildah, and against Docker where buildah departs), not both", cs.name)
		}
		if o := cs.overrides; o != nil {
			if o.ChangedOnlyUnder != nil {
				t.Fatalf("%s/overrides.json: changed_only_under is for expect.json", cs.name)
			}
			// Every override is a departure of buildah's from Docker: the README says why.
			for _, key := range o.keys() {
				listed := false
				for _, a := range cs.allowed {
					listed = listed || a.matches(confDiff{path: key})
				}
				if !listed {
					t.Errorf("%s/overrides.json: %s is not listed under the case's \"Expected differences:\" in README.md", cs.name, key)
				}
			}
		}
		cases = append(cases, cs)
	}
	for name := range allowed {
		if _, err := os.Stat(filepath.Join(root, name, "Dockerfile")); err != nil {
			t.Errorf("README.md has an entry for %s, which is not a case", name)
		}
	}
	// A case that builds FROM another case's image ({{IMAGE:name}}) comes after the others.
	sort.SliceStable(cases, func(i, j int) bool {
		return !strings.Contains(strings.Join(cases[i].args, " "), "{{IMAGE:") &&
			strings.Contains(strings.Join(cases[j].args, " "), "{{IMAGE:")
	})
	return cases
}

// parseConformanceReadme returns, for each "### <case>" section under "## Cases", the keys
// of the bullets under its "Expected differences:" line ("- `/run/buildkit` reason..."):
// strata's from buildah's; and under its "BuildKit engine differences:" line, the BuildKit
// engine's from the local engine's.
func parseConformanceReadme(s string) (fromBuildah, fromLocal map[string][]allowedDiff, err error) {
	fromBuildah, fromLocal = map[string][]allowedDiff{}, map[string][]allowedDiff{}
	bullet := regexp.MustCompile("^- `([^`]+)`")
	var current string
	var list map[string][]allowedDiff // the list being read, if any
	inCases := false
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			inCases = strings.TrimSpace(line) == "## Cases"
			current, list = "", nil
		case inCases && strings.HasPrefix(line, "### "):
			current = strings.TrimSpace(strings.TrimPrefix(line, "### "))
			fromBuildah[current] = nil
			list = nil
		case current != "" && strings.HasPrefix(line, "Expected differences"):
			list = fromBuildah
		case current != "" && strings.HasPrefix(line, "BuildKit engine differences"):
			list = fromLocal
		case list != nil && strings.TrimSpace(line) == "":
			list = nil
		case list != nil:
			if strings.HasPrefix(line, " ") { // a bullet's continuation line
				continue
			}
			m := bullet.FindStringSubmatch(line)
			if m == nil {
				return nil, nil, fmt.Errorf("section %s: %q: an expected difference is a bullet starting with a `key`", current, line)
			}
			key, field, _ := strings.Cut(m[1], " ")
			list[current] = append(list[current], allowedDiff{key: key, field: field})
		}
	}
	return fromBuildah, fromLocal, nil
}

// readExpectation reads an expect.json or overrides.json; nil when there is none.
func readExpectation(p string) (*expectation, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	x := &expectation{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(x); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(p), err)
	}
	return x, nil
}

// readArgsFile reads lines "--flag value" (or "--flag"); # starts a comment line.
func readArgsFile(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var args []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "--") {
			return nil, fmt.Errorf("%s: %q: each line is a --flag and its value", filepath.Base(p), line)
		}
		flag, value, ok := strings.Cut(line, " ")
		args = append(args, flag)
		if ok {
			args = append(args, strings.TrimSpace(value))
		}
	}
	return args, nil
}

// tool is one of the two builders, for the placeholders of the args files.
type tool struct {
	image func(name string) string // the reference that tool's FROM resolves for a case's image
}

var (
	strataTool  = tool{func(n string) string { return "conf-" + n }}
	buildahTool = tool{func(n string) string { return "localhost/conf-" + n }}
)

// expand fills an args value's placeholders for one tool: {{HTTP}} and {{GIT}} are the
// servers' URLs, {{IMAGE:case}} is that case's image; a secret's src= is relative to the case.
func (c *conformance) expand(t *testing.T, cs *confCase, tl tool, args []string) []string {
	t.Helper()
	out := make([]string, len(args))
	image := regexp.MustCompile(`\{\{IMAGE:([^}]+)\}\}`)
	for i, a := range args {
		if strings.Contains(a, "{{GIT}}") {
			need(t, "git")
			if c.gitErr != nil {
				t.Fatalf("making the git repository: %v", c.gitErr)
			}
		}
		a = strings.ReplaceAll(a, "{{HTTP}}", c.httpURL)
		a = strings.ReplaceAll(a, "{{GIT}}", c.gitURL)
		a = image.ReplaceAllStringFunc(a, func(m string) string {
			dep := image.FindStringSubmatch(m)[1]
			if !c.built[dep] {
				t.Fatalf("this case builds on case %s's image, which was not built", dep)
			}
			return tl.image(dep)
		})
		if i > 0 && args[i-1] == "--secret" {
			var parts []string
			for _, p := range strings.Split(a, ",") {
				if src, ok := strings.CutPrefix(p, "src="); ok && !filepath.IsAbs(src) {
					p = "src=" + filepath.Join(cs.dir, src)
				}
				parts = append(parts, p)
			}
			a = strings.Join(parts, ",")
		}
		out[i] = a
	}
	return out
}

// env is the environment of both builders: the secret, and the ssh agent when asked for.
func (c *conformance) env(t *testing.T, args []string) []string {
	t.Helper()
	env := []string{"CONFORMANCE_TOKEN=" + conformanceToken}
	for i, a := range args {
		if a == "--ssh" && i+1 < len(args) {
			need(t, "ssh-agent", "ssh-keygen", "ssh-add")
			if c.agentErr != nil {
				t.Fatalf("starting ssh-agent: %v", c.agentErr)
			}
			env = append(env, "SSH_AUTH_SOCK="+c.agentSock)
		}
	}
	return env
}

// prepareBase builds the base once with strata and gives buildah the same bytes.
func (c *conformance) prepareBase(t *testing.T) {
	t.Helper()
	write(t, c.tmp, "base.yaml", "image:\n  - debian_slim: {python_version: \"3.13\"}\n")
	if out, err := cli(t, "build", "-f", filepath.Join(c.tmp, "base.yaml"), "-t", "conformance-base", "--progress", "plain"); err != nil {
		t.Fatalf("building the base: %v\n%s", err, out)
	}
	out, err := cli(t, "inspect", "conformance-base")
	if err != nil {
		t.Fatalf("strata inspect: %v\n%s", err, out)
	}
	// buildah's copy is tagged by strata's manifest digest (as bench/bench.sh does), so a
	// rebuilt base is copied again and both tools always start from the same bytes.
	m := regexp.MustCompile(`(?m)^manifest:\s+sha256:([0-9a-f]{12})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no manifest digest in strata inspect:\n%s", out)
	}
	c.baseTag = "localhost/conformance-base:" + m[1]
	dir := filepath.Join(c.tmp, "base-oci")
	if out, err := cli(t, "export", "conformance-base", "--format", "oci", "-o", dir); err != nil {
		t.Fatalf("strata export: %v\n%s", err, out)
	}
	if _, err := execOut("buildah", "inspect", "--type", "image", c.baseTag); err != nil {
		if out, err := execOut("skopeo", "copy", "-q", "oci:"+dir+":conformance-base:latest", "containers-storage:"+c.baseTag); err != nil {
			t.Fatalf("skopeo copy: %v\n%s", err, out)
		}
	}
	// COPY --from=<an image reference> cannot take an ARG, so the cases name the base
	// literally: localhost/conformance-base:latest, tagged so in both tools.
	if out, err := execOut("buildah", "tag", c.baseTag, "localhost/conformance-base:latest"); err != nil {
		t.Fatalf("buildah tag: %v\n%s", err, out)
	}
	if out, err := cli(t, "tag", "conformance-base", "localhost/conformance-base:latest"); err != nil {
		t.Fatalf("strata tag: %v\n%s", err, out)
	}
	img, err := readOCI(dir, "")
	if err != nil {
		t.Fatalf("reading the base: %v", err)
	}
	c.base = img.fs
	c.built = map[string]bool{}
}

// serve starts the http server of ADD's URLs: /files/ serves testdata/conformance/_http,
// /git/ the git repositories made by makeGitRepo.
func (c *conformance) serve(t *testing.T) {
	t.Helper()
	gitDir := filepath.Join(c.tmp, "git")
	if err := os.MkdirAll(gitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", http.FileServer(http.Dir(filepath.Join(conformanceDir, "_http")))))
	mux.Handle("/git/", http.StripPrefix("/git/", http.FileServer(http.Dir(gitDir))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c.httpURL = srv.URL + "/files"
	c.gitURL = srv.URL + "/git"
}

// makeGitRepo makes repo.git, served over git's dumb http protocol (update-server-info
// writes the index files a static server needs): tag v1 is the first commit, main the second.
func (c *conformance) makeGitRepo() error {
	work := filepath.Join(c.tmp, "git-work")
	run := func(dir string, args ...string) error {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		// Fixed identities and dates: the commits are the same at every run.
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=conformance", "GIT_AUTHOR_EMAIL=conformance@example.com",
			"GIT_COMMITTER_NAME=conformance", "GIT_COMMITTER_EMAIL=conformance@example.com",
			"GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	files := func(m map[string]string, mode os.FileMode) error {
		for name, content := range m {
			p := filepath.Join(work, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(content), mode); err != nil {
				return err
			}
			if err := os.Chmod(p, mode); err != nil {
				return err
			}
		}
		return nil
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	steps := []func() error{
		func() error { return run(work, "init", "-q", "-b", "main") },
		func() error {
			return files(map[string]string{"README": "version one\n", "docs/guide.md": "# Guide\n"}, 0o644)
		},
		func() error { return files(map[string]string{"bin/tool": "#!/bin/sh\necho tool v1\n"}, 0o755) },
		func() error { return run(work, "add", ".") },
		func() error { return run(work, "commit", "-q", "-m", "one") },
		func() error { return run(work, "tag", "v1") },
		func() error { return files(map[string]string{"README": "version two\n"}, 0o644) },
		func() error { return files(map[string]string{"bin/tool": "#!/bin/sh\necho tool v2\n"}, 0o755) },
		func() error { return run(work, "commit", "-q", "-a", "-m", "two") },
		func() error {
			return run(c.tmp, "clone", "-q", "--bare", work, filepath.Join(c.tmp, "git", "repo.git"))
		},
		func() error { return run(filepath.Join(c.tmp, "git", "repo.git"), "update-server-info") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// startAgent starts an ssh-agent holding one new key, with the comment conformance-key.
func (c *conformance) startAgent(t *testing.T) (string, error) {
	dir, err := os.MkdirTemp("", "conf-agent-")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	key := filepath.Join(dir, "key")
	if out, err := execOut("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "conformance-key", "-f", key); err != nil {
		return "", fmt.Errorf("ssh-keygen: %v\n%s", err, out)
	}
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ssh-add: %v\n%s", err, out)
	}
	return sock, nil
}

// usesFlag says whether a case's args file has the flag.
func usesFlag(cases []*confCase, flag string) bool {
	for _, cs := range cases {
		for _, a := range cs.args {
			if a == flag {
				return true
			}
		}
	}
	return false
}

// run builds one case with both tools (or strata alone against expect.json) and compares.
func (c *conformance) run(t *testing.T, cs *confCase) {
	dockerfile := filepath.Join(cs.dir, "Dockerfile")
	var want *confImage
	if cs.expect == nil {
		args := c.expand(t, cs, buildahTool, cs.args)
		env := c.env(t, args)
		want = c.buildah(t, cs, dockerfile, args, env)
	}

	args := c.expand(t, cs, strataTool, cs.args)
	env := c.env(t, args)
	argv := append([]string{"build", "-f", dockerfile, cs.dir, "-t", strataTool.image(cs.name),
		"--build-arg", "BASE=conformance-base", "--progress", "plain"}, args...)
	out, err := cliEnv(t, env, "", argv...)
	if err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(argv, " "), err, tail(out, 60))
	}
	dir := filepath.Join(t.TempDir(), "strata-oci")
	if out, err := cli(t, "export", strataTool.image(cs.name), "--format", "oci", "-o", dir); err != nil {
		t.Fatalf("strata export: %v\n%s", err, out)
	}
	got, err := readOCI(dir, "")
	if err != nil {
		t.Fatalf("reading strata's image: %v", err)
	}
	if want != nil {
		c.built[cs.name] = true
	}

	if c.bkAddr != "" {
		t.Run("buildkit", func(t *testing.T) { c.buildkit(t, cs, dockerfile, got) })
	}

	var diffs []confDiff
	switch {
	case cs.expect != nil:
		diffs = label(cs.expect.compare(got, c.base), "expect.json")
	case cs.overrides != nil:
		// Where buildah departs from Docker, strata is held to Docker's result instead.
		for _, d := range label(compareImages(got, want, c.base), "buildah") {
			if !cs.overrides.covers(d.path) {
				diffs = append(diffs, d)
			}
		}
		for _, d := range label(cs.overrides.compare(got, c.base), "overrides.json (Docker)") {
			d.strict = true
			diffs = append(diffs, d)
		}
	default:
		diffs = label(compareImages(got, want, c.base), "buildah")
	}
	expected, unexpected := sortDiffs(diffs, cs.allowed)
	if len(expected) > 0 {
		t.Logf("%d difference(s) that README.md lists as expected:\n  %s", len(expected), strings.Join(expected, "\n  "))
	}
	if len(unexpected) > 0 {
		t.Errorf("strata's image differs (a difference from buildah that is right by Docker's behaviour goes, with its reason, under the case's \"Expected differences:\" in testdata/conformance/README.md):\n  %s",
			strings.Join(unexpected, "\n  "))
	}
}

// buildkit builds the case with strata's BuildKit engine, from the same store, and holds
// its image to the local engine's: the same root file system and config, with no expected
// differences.
func (c *conformance) buildkit(t *testing.T, cs *confCase, dockerfile string, local *confImage) {
	args := c.expand(t, cs, strataTool, cs.args)
	ref := "conf-bk-" + cs.name
	argv := append([]string{"--engine", "buildkit", "--addr", c.bkAddr, "build", "-f", dockerfile, cs.dir, "-t", ref,
		"--build-arg", "BASE=conformance-base", "--progress", "plain"}, args...)
	if out, err := cliEnv(t, c.env(t, args), "", argv...); err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(argv, " "), err, tail(out, 60))
	}
	dir := filepath.Join(t.TempDir(), "buildkit-oci")
	if out, err := cli(t, "export", ref, "--format", "oci", "-o", dir); err != nil {
		t.Fatalf("strata export: %v\n%s", err, out)
	}
	got, err := readOCI(dir, "")
	if err != nil {
		t.Fatalf("reading the BuildKit engine's image: %v", err)
	}
	diffs := label(compareImages(got, local, c.base), "the local engine")
	for i := range diffs {
		diffs[i].subject = "the BuildKit engine"
	}
	expected, unexpected := sortDiffs(diffs, cs.allowedBuildKit)
	if len(expected) > 0 {
		t.Logf("%d difference(s) that README.md lists as the BuildKit engine's:\n  %s", len(expected), strings.Join(expected, "\n  "))
	}
	if len(unexpected) > 0 {
		t.Errorf("the BuildKit engine's image differs from the local engine's (a difference that BuildKit makes by design goes, with its reason, under the case's \"BuildKit engine differences:\" in testdata/conformance/README.md):\n  %s", strings.Join(unexpected, "\n  "))
	}
}

// sortDiffs splits differences into those the README lists (allowed, which never excuses a
// strict one) and the others, as lines.
func sortDiffs(diffs []confDiff, allowed []allowedDiff) (expected, unexpected []string) {
	for _, d := range diffs {
		ok := false
		for _, a := range allowed {
			ok = ok || (!d.strict && a.matches(d))
		}
		if ok {
			expected = append(expected, d.String())
		} else {
			unexpected = append(unexpected, d.String())
		}
	}
	return expected, unexpected
}

// buildah builds the case with buildah and reads the image back: the file system from an
// OCI layout, the config from buildah inspect (the push to an OCI layout converts the config
// to OCI's, which has no Healthcheck, OnBuild or Shell).
func (c *conformance) buildah(t *testing.T, cs *confCase, dockerfile string, args, env []string) *confImage {
	t.Helper()
	ref := buildahTool.image(cs.name)
	argv := []string{"bud", "--layers", "--force-rm", "--runtime", "runc", "--network", "host", "--format", "docker",
		"-f", dockerfile, "-t", ref, "--build-arg", "BASE=" + c.baseTag}
	argv = append(append(append(argv, args...), cs.buildahArgs...), cs.dir)
	start := time.Now()
	cmd := exec.Command("buildah", argv...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("buildah %s: %v\n%s", strings.Join(argv, " "), err, tail(string(out), 60))
	}
	c.buildahTime[cs.name] = time.Since(start)
	dir := filepath.Join(c.tmp, "buildah-oci")
	// One layout for every case, so the base layer is written to it once.
	start = time.Now()
	if out, err := execOut("buildah", "push", "-q", ref, "oci:"+dir+":"+cs.name); err != nil {
		t.Fatalf("buildah push: %v\n%s", err, out)
	}
	c.pushTime += time.Since(start)
	img, err := readOCI(dir, cs.name)
	if err != nil {
		t.Fatalf("reading buildah's image: %v", err)
	}
	js, err := execOut("buildah", "inspect", "--type", "image", ref)
	if err != nil {
		t.Fatalf("buildah inspect: %v\n%s", err, js)
	}
	var inspect struct{ Docker json.RawMessage }
	if err := json.Unmarshal([]byte(js), &inspect); err != nil {
		t.Fatalf("buildah inspect: %v", err)
	}
	if img.config, err = parseConfig(inspect.Docker); err != nil {
		t.Fatalf("buildah inspect: %v", err)
	}
	return img
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = append([]string{"..."}, l[len(l)-lines:]...)
	}
	return strings.Join(l, "\n")
}

// confImage is what the comparison sees of an image.
type confImage struct {
	fs     fsTree
	config *confConfig
}

// confConfig are the compared fields of an image config.
type confConfig struct {
	Author string `json:"author"`
	Config struct {
		Env          []string
		WorkingDir   string
		User         string
		Entrypoint   []string
		Cmd          []string
		Labels       map[string]string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		StopSignal   string
		// Kept whole, so that fields newer than go-containerregistry's (StartInterval)
		// are compared too.
		Healthcheck map[string]any
		Shell       []string
		OnBuild     []string
	} `json:"config"`
}

func parseConfig(raw []byte) (*confConfig, error) {
	var c confConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// fields lists the config's fields by name ("config.Env"), normalised: an empty list or
// map is the same as none, and the labels builders add on their own are left out.
func (c *confConfig) fields() map[string]any {
	list := func(s []string) any {
		if len(s) == 0 {
			return nil
		}
		return s
	}
	keys := func(m map[string]struct{}) any {
		if len(m) == 0 {
			return nil
		}
		var k []string
		for x := range m {
			k = append(k, x)
		}
		sort.Strings(k)
		return k
	}
	labels := map[string]string{}
	for k, v := range c.Config.Labels {
		if _, skip := conformanceIgnoredLabels[k]; !skip {
			labels[k] = v
		}
	}
	var lab any
	if len(labels) > 0 {
		lab = labels
	}
	var hc any
	if len(c.Config.Healthcheck) > 0 {
		hc = c.Config.Healthcheck
	}
	// Env is compared as a set: buildah 1.28 moves a variable that ENV sets again to the end,
	// BuildKit keeps its place; a container sees the same environment either way.
	env := append([]string(nil), c.Config.Env...)
	sort.Strings(env)
	return map[string]any{
		"author":              c.Author,
		"config.Env":          list(env),
		"config.WorkingDir":   c.Config.WorkingDir,
		"config.User":         c.Config.User,
		"config.Entrypoint":   list(c.Config.Entrypoint),
		"config.Cmd":          list(c.Config.Cmd),
		"config.Labels":       lab,
		"config.ExposedPorts": keys(c.Config.ExposedPorts),
		"config.Volumes":      keys(c.Config.Volumes),
		"config.StopSignal":   c.Config.StopSignal,
		"config.Healthcheck":  hc,
		"config.Shell":        list(c.Config.Shell),
		"config.OnBuild":      list(c.Config.OnBuild),
	}
}

// readOCI reads an image from an OCI layout: the one whose ref.name annotation is ref, or
// the first.
func readOCI(dir, ref string) (*confImage, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var desc *v1.Descriptor
	for i, m := range im.Manifests {
		if ref == "" || m.Annotations["org.opencontainers.image.ref.name"] == ref {
			desc = &im.Manifests[i]
			break
		}
	}
	if desc == nil {
		return nil, fmt.Errorf("%s has no image %q", dir, ref)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		return nil, err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	fs := fsTree{}
	for _, l := range layers {
		ops, err := readLayer(l)
		if err != nil {
			return nil, err
		}
		fs.apply(ops)
	}
	fs.linkGroups()
	return &confImage{fs: fs, config: cfg}, nil
}

// fsEntry is what is compared of a path. Modification times are not.
type fsEntry struct {
	Type   string // dir, file, symlink, fifo, char, block
	Mode   int64  // permission bits with setuid, setgid and sticky
	UID    int
	GID    int
	Size   int64
	SHA256 string
	Target string // a symlink's
	Dev    string // a device's major:minor
	Xattrs string
	Links  []string // the other paths of its hard-link group
	small  string   // the content of a small text file, to show in differences
}

func (e *fsEntry) String() string {
	s := fmt.Sprintf("%s %04o %d:%d", e.Type, e.Mode, e.UID, e.GID)
	switch e.Type {
	case "file":
		s += fmt.Sprintf(" %d bytes", e.Size)
		if e.small != "" {
			s += fmt.Sprintf(" %q", e.small)
		}
	case "symlink":
		s += " -> " + e.Target
	}
	return s
}

// fsTree is a root file system: absolute clean paths to entries.
type fsTree map[string]*fsEntry

// layerOp is one tar entry of a layer, its content already hashed.
type layerOp struct {
	path     string
	whiteout bool // delete path (and what is under it) from the layers below
	opaque   bool // delete what is under path from the layers below
	link     string
	entry    fsEntry
}

// layerCache keeps parsed layers by diff ID: the base layer is read once for all cases.
var layerCache sync.Map

func readLayer(l v1.Layer) ([]layerOp, error) {
	id, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	if ops, ok := layerCache.Load(id); ok {
		return ops.([]layerOp), nil
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var ops []layerOp
	tr := tar.NewReader(bufio.NewReaderSize(rc, 1<<20))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", id, err)
		}
		p := cleanPath(h.Name)
		dir, base := path.Split(p)
		if base == ".wh..wh..opq" {
			ops = append(ops, layerOp{path: cleanPath(dir), opaque: true})
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			ops = append(ops, layerOp{path: cleanPath(dir + strings.TrimPrefix(base, ".wh.")), whiteout: true})
			continue
		}
		op := layerOp{path: p, entry: fsEntry{Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid}}
		var xattrs []string
		for k, v := range h.PAXRecords {
			// overlayfs's own attributes are not content: strata never writes them, and
			// rootless buildah's layers carry user.overlay.origin and .impure that its
			// storage leaks from the upper folder.
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && !strings.HasPrefix(name, "user.overlay.") && !strings.HasPrefix(name, "trusted.overlay.") {
				sum := sha256.Sum256([]byte(v))
				xattrs = append(xattrs, name+"="+hex.EncodeToString(sum[:8]))
			}
		}
		sort.Strings(xattrs)
		op.entry.Xattrs = strings.Join(xattrs, ",")
		switch h.Typeflag {
		case tar.TypeDir:
			op.entry.Type = "dir"
		case tar.TypeReg: // archive/tar reads the old TypeRegA as TypeReg
			op.entry.Type = "file"
			hash := sha256.New()
			var small bytes.Buffer
			w := io.Writer(hash)
			if h.Size <= 200 {
				w = io.MultiWriter(hash, &small)
			}
			n, err := io.Copy(w, tr)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %s: %w", id, p, err)
			}
			op.entry.Size = n
			op.entry.SHA256 = hex.EncodeToString(hash.Sum(nil))
			if utf8.Valid(small.Bytes()) {
				op.entry.small = small.String()
			}
		case tar.TypeLink:
			op.link = cleanPath(h.Linkname)
		case tar.TypeSymlink:
			op.entry.Type = "symlink"
			op.entry.Target = h.Linkname
		case tar.TypeFifo:
			op.entry.Type = "fifo"
		case tar.TypeChar, tar.TypeBlock:
			op.entry.Type = map[byte]string{tar.TypeChar: "char", tar.TypeBlock: "block"}[h.Typeflag]
			op.entry.Dev = fmt.Sprintf("%d:%d", h.Devmajor, h.Devminor)
		default:
			return nil, fmt.Errorf("layer %s: %s: unknown tar type %q", id, p, h.Typeflag)
		}
		ops = append(ops, op)
	}
	layerCache.Store(id, ops)
	return ops, nil
}

func cleanPath(p string) string { return path.Clean("/" + strings.TrimPrefix(p, "./")) }

// apply applies a layer as OCI's image spec says: its whiteouts hide the layers below
// (whatever their place in the tar), then its entries replace what was there.
func (fs fsTree) apply(ops []layerOp) {
	for _, op := range ops {
		switch {
		case op.opaque:
			fs.removeUnder(op.path)
		case op.whiteout:
			delete(fs, op.path)
			fs.removeUnder(op.path)
		}
	}
	for _, op := range ops {
		if op.opaque || op.whiteout {
			continue
		}
		if old := fs[op.path]; old != nil && old.Type == "dir" && (op.link != "" || op.entry.Type != "dir") {
			fs.removeUnder(op.path) // a directory replaced by something else
		}
		if op.link != "" {
			target, ok := fs[op.link]
			if !ok {
				e := fsEntry{Type: "dangling hard link to " + op.link}
				fs[op.path] = &e
				continue
			}
			fs[op.path] = target // the same inode: one entry under two names
			continue
		}
		e := op.entry // a copy: the cached ops are shared by every image with this layer
		fs[op.path] = &e
	}
}

func (fs fsTree) removeUnder(dir string) {
	prefix := dir + "/"
	if dir == "/" {
		prefix = "/"
	}
	for p := range fs {
		if strings.HasPrefix(p, prefix) && p != dir {
			delete(fs, p)
		}
	}
}

// linkGroups turns shared entries (hard links) into copies that list their group.
func (fs fsTree) linkGroups() {
	groups := map[*fsEntry][]string{}
	for p, e := range fs {
		groups[e] = append(groups[e], p)
	}
	for e, paths := range groups {
		if len(paths) < 2 {
			continue
		}
		sort.Strings(paths)
		for _, p := range paths {
			c := *e
			c.Links = nil
			for _, o := range paths {
				if o != p {
					c.Links = append(c.Links, o)
				}
			}
			fs[p] = &c
		}
	}
}

// ignoredPath says whether a path is on the list of paths never compared.
func ignoredPath(p string) bool {
	for _, ig := range conformanceIgnored {
		pat := ig.pattern
		if rest, ok := strings.CutPrefix(pat, "**/"); ok {
			for _, part := range strings.Split(p, "/") {
				if ok, _ := path.Match(rest, part); ok {
					return true
				}
			}
			continue
		}
		if p == pat || strings.HasPrefix(p, pat+"/") {
			return true
		}
	}
	return false
}

// confDiff is one difference: a path's field, or a config field (path "config.Env"). msg,
// when set, says it all ("only in strata's image").
type confDiff struct {
	path, field string
	got, want   string
	msg         string
	against     string // buildah or expect.json, set by the caller
	subject     string // the image compared: strata's ("strata", the default) or its BuildKit engine's
	// strict differences are from overrides.json, Docker's values where buildah departs:
	// the README's list of expected differences (which lists the departures) does not
	// excuse them.
	strict bool
}

func (d confDiff) String() string {
	if d.msg != "" {
		return d.path + ": " + d.msg
	}
	name := d.path
	if d.field != "" {
		name += " " + d.field
	}
	subject := d.subject
	if subject == "" {
		subject = "strata"
	}
	return fmt.Sprintf("%s: %s %s, %s %s", name, subject, d.got, d.against, d.want)
}

// label says what each difference is against.
func label(diffs []confDiff, against string) []confDiff {
	for i := range diffs {
		diffs[i].against = against
	}
	return diffs
}

// compareImages compares strata's image (got) with buildah's (want), and with the base for
// buildahStubs.
func compareImages(got, want *confImage, base fsTree) []confDiff {
	var diffs []confDiff
	paths := map[string]bool{}
	for p := range got.fs {
		paths[p] = true
	}
	for p := range want.fs {
		paths[p] = true
	}
	var sorted []string
	for p := range paths {
		if !ignoredPath(p) {
			sorted = append(sorted, p)
		}
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		g, w := got.fs[p], want.fs[p]
		for _, stub := range buildahStubs {
			if p == stub {
				w = base[p]
			}
		}
		switch {
		case g == nil && w == nil:
		case w == nil:
			diffs = append(diffs, confDiff{path: p, msg: "only in strata's image (" + g.String() + ")"})
		case g == nil:
			diffs = append(diffs, confDiff{path: p, msg: "missing from strata's image (buildah's: " + w.String() + ")"})
		default:
			diffs = append(diffs, compareEntries(p, g, w)...)
		}
	}
	return append(diffs, compareConfigs(got.config.fields(), want.config.fields())...)
}

// compareEntries lists the fields that differ, content last and shown when small.
func compareEntries(p string, g, w *fsEntry) []confDiff {
	var d []confDiff
	add := func(field, got, want string) {
		if got != want {
			d = append(d, confDiff{path: p, field: field, got: got, want: want})
		}
	}
	add("type", g.Type, w.Type)
	if g.Type != w.Type {
		return d
	}
	add("mode", fmt.Sprintf("%04o", g.Mode), fmt.Sprintf("%04o", w.Mode))
	add("owner", fmt.Sprintf("%d:%d", g.UID, g.GID), fmt.Sprintf("%d:%d", w.UID, w.GID))
	add("target", g.Target, w.Target)
	add("device", g.Dev, w.Dev)
	add("xattrs", g.Xattrs, w.Xattrs)
	add("links", fmt.Sprint(g.Links), fmt.Sprint(w.Links))
	if g.SHA256 != w.SHA256 {
		show := func(e *fsEntry) string {
			if e.small != "" || e.Size == 0 {
				return strconv.Quote(e.small)
			}
			return fmt.Sprintf("%d bytes sha256:%.12s", e.Size, e.SHA256)
		}
		add("content", show(g), show(w))
	}
	return d
}

func compareConfigs(got, want map[string]any) []confDiff {
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var d []confDiff
	for _, k := range keys {
		if !reflect.DeepEqual(jsonNormal(got[k]), jsonNormal(want[k])) {
			d = append(d, confDiff{path: k, got: jsonString(got[k]), want: jsonString(want[k])})
		}
	}
	return d
}

// jsonNormal round-trips a value through JSON, so that expect.json's values and the
// images' compare alike (numbers as float64, lists as []any).
func jsonNormal(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	if s, ok := out.(string); ok && s == "" {
		return nil
	}
	return out
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// expectation is a case's expect.json: what Docker documents for a feature buildah 1.28
// lacks. Only what it lists is checked.
type expectation struct {
	// Why explains why this case is not compared with buildah.
	Why string `json:"why"`
	// Files are paths and what they must be.
	Files map[string]expectFile `json:"files"`
	// Config are fields of the image config, named as in confConfig.fields ("config.Env",
	// "config.Healthcheck", "author"), with their values as an image config writes them;
	// null expects none. They are normalised as the image's are (Env as a set).
	Config map[string]json.RawMessage `json:"config"`
	// ChangedOnlyUnder, when set, are the only paths (and what is under them) where the
	// image's file system may differ from the base's.
	ChangedOnlyUnder []string `json:"changed_only_under"`
}

// expectFile is a path's expected state; a field left out is not checked.
type expectFile struct {
	Absent   bool     `json:"absent"`
	Type     string   `json:"type"`
	Mode     string   `json:"mode"` // octal, with setuid/setgid/sticky: "0644", "4755"
	UID      *int     `json:"uid"`
	GID      *int     `json:"gid"`
	Content  *string  `json:"content"`
	SHA256   string   `json:"sha256"`
	Size     *int64   `json:"size"`
	Target   *string  `json:"target"`
	Children []string `json:"children"` // a directory's entries, exactly
	Links    []string `json:"links"`    // the other paths of its hard-link group
}

// keys are the paths and config fields the expectation checks.
func (x *expectation) keys() []string {
	var k []string
	for p := range x.Files {
		k = append(k, p)
	}
	for f := range x.Config {
		k = append(k, f)
	}
	sort.Strings(k)
	return k
}

// covers says whether the expectation checks this path or config field.
func (x *expectation) covers(key string) bool {
	_, file := x.Files[key]
	_, conf := x.Config[key]
	return file || conf
}

func (x *expectation) compare(got *confImage, base fsTree) []confDiff {
	var diffs []confDiff
	var paths []string
	for p := range x.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		want, e := x.Files[p], got.fs[p]
		if want.Absent {
			if e != nil {
				diffs = append(diffs, confDiff{path: p, msg: "present (" + e.String() + "), expected absent"})
			}
			continue
		}
		if e == nil {
			diffs = append(diffs, confDiff{path: p, msg: "missing from strata's image"})
			continue
		}
		add := func(field, got, want string) {
			if got != want {
				diffs = append(diffs, confDiff{path: p, field: field, got: got, want: want})
			}
		}
		if want.Type != "" {
			add("type", e.Type, want.Type)
		}
		if want.Mode != "" {
			m, err := strconv.ParseInt(want.Mode, 8, 64)
			if err != nil {
				add("mode", "?", "an octal mode, not "+want.Mode)
			}
			add("mode", fmt.Sprintf("%04o", e.Mode), fmt.Sprintf("%04o", m))
		}
		if want.UID != nil {
			add("uid", strconv.Itoa(e.UID), strconv.Itoa(*want.UID))
		}
		if want.GID != nil {
			add("gid", strconv.Itoa(e.GID), strconv.Itoa(*want.GID))
		}
		if want.Content != nil {
			sum := sha256.Sum256([]byte(*want.Content))
			if hex.EncodeToString(sum[:]) != e.SHA256 {
				g := strconv.Quote(e.small)
				if e.small == "" && e.Size > 0 {
					g = fmt.Sprintf("%d bytes sha256:%.12s", e.Size, e.SHA256)
				}
				add("content", g, strconv.Quote(*want.Content))
			}
		}
		if want.SHA256 != "" {
			add("sha256", e.SHA256, want.SHA256)
		}
		if want.Size != nil {
			add("size", strconv.FormatInt(e.Size, 10), strconv.FormatInt(*want.Size, 10))
		}
		if want.Target != nil {
			add("target", e.Target, *want.Target)
		}
		if want.Children != nil {
			add("children", fmt.Sprint(got.fs.children(p)), fmt.Sprint(sorted(want.Children)))
		}
		if want.Links != nil {
			add("links", fmt.Sprint(e.Links), fmt.Sprint(sorted(want.Links)))
		}
	}
	if x.Config != nil {
		have := got.config.fields()
		want := map[string]any{}
		for k, raw := range x.Config {
			if _, ok := have[k]; !ok {
				diffs = append(diffs, confDiff{path: k, msg: "is not a compared config field (see confConfig.fields)"})
				continue
			}
			// The expected value goes through the same normalisation as the image's: it is
			// written as in an image config, {"config": {"Env": [...]}}.
			doc := fmt.Sprintf(`{"author": %s}`, raw)
			if field, ok := strings.CutPrefix(k, "config."); ok {
				doc = fmt.Sprintf(`{"config": {%q: %s}}`, field, raw)
			}
			c, err := parseConfig([]byte(doc))
			if err != nil {
				diffs = append(diffs, confDiff{path: k, msg: "expect.json: " + err.Error()})
				continue
			}
			want[k] = c.fields()[k]
		}
		diffs = append(diffs, compareConfigs(have, want)...)
	}
	if x.ChangedOnlyUnder != nil {
		diffs = append(diffs, changedOutside(got.fs, base, x.ChangedOnlyUnder)...)
	}
	return diffs
}

// changedOutside lists the paths where fs differs from base outside the allowed trees.
func changedOutside(fs, base fsTree, allowed []string) []confDiff {
	inside := func(p string) bool {
		for _, a := range allowed {
			if p == a || strings.HasPrefix(p, strings.TrimSuffix(a, "/")+"/") {
				return true
			}
		}
		return ignoredPath(p)
	}
	var diffs []confDiff
	for p, e := range fs {
		if inside(p) {
			continue
		}
		b := base[p]
		switch {
		case b == nil:
			diffs = append(diffs, confDiff{path: p, msg: "added outside changed_only_under (" + e.String() + ")"})
		default:
			if d := compareEntries(p, e, b); len(d) > 0 {
				diffs = append(diffs, confDiff{path: p, msg: "changed outside changed_only_under: " + d[0].field + " " + d[0].got + ", base " + d[0].want})
			}
		}
	}
	for p := range base {
		if fs[p] == nil && !inside(p) {
			diffs = append(diffs, confDiff{path: p, msg: "removed outside changed_only_under"})
		}
	}
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].path < diffs[j].path })
	return diffs
}

func (fs fsTree) children(dir string) []string {
	var out []string
	for p := range fs {
		if p != dir && path.Dir(p) == dir {
			out = append(out, path.Base(p))
		}
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// TestConformanceCorpus checks the corpus's files without building anything: every case has
// a README entry, its args, expect.json and overrides.json parse, and every override is
// listed in the README with its reason.
func TestConformanceCorpus(t *testing.T) {
	cases := (&conformance{}).loadCases(t)
	if len(cases) < 15 {
		t.Errorf("the corpus has %d cases", len(cases))
	}
}

// TestConformanceTreeModel checks the comparison's model of a root file system on layers
// made here: whiteouts, opaque directories, replaced types, hard-link groups. It needs
// nothing but Go.
func TestConformanceTreeModel(t *testing.T) {
	type ent struct {
		name, link string
		typ        byte
		mode       int64
		body       string
	}
	layer := func(entries ...ent) v1.Layer {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
			if e.typ != tar.TypeReg {
				h.Size = 0
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if e.typ == tar.TypeReg {
				tw.Write([]byte(e.body))
			}
		}
		tw.Close()
		b := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	layers := []v1.Layer{
		layer(
			ent{name: "./", typ: tar.TypeDir, mode: 0o755},
			ent{name: "./a/", typ: tar.TypeDir, mode: 0o755},
			ent{name: "./a/f", typ: tar.TypeReg, mode: 0o4755, body: "f"},
			ent{name: "./a/h", typ: tar.TypeLink, link: "a/f"},
			ent{name: "./a/h2", typ: tar.TypeLink, link: "./a/f"},
			ent{name: "./d/", typ: tar.TypeDir, mode: 0o755},
			ent{name: "./d/x", typ: tar.TypeReg, mode: 0o644, body: "x"},
			ent{name: "./o/", typ: tar.TypeDir, mode: 0o755},
			ent{name: "./o/old", typ: tar.TypeReg, mode: 0o644},
			ent{name: "./r/", typ: tar.TypeDir, mode: 0o755},
			ent{name: "./r/y", typ: tar.TypeReg, mode: 0o644},
		),
		layer(
			// The opaque marker may come after the directory's new entries.
			ent{name: "o/new", typ: tar.TypeReg, mode: 0o644, body: "new"},
			ent{name: "o/.wh..wh..opq", typ: tar.TypeReg},
			ent{name: "d/.wh.x", typ: tar.TypeReg},
			ent{name: "a/.wh.h2", typ: tar.TypeReg},
			ent{name: "r", typ: tar.TypeReg, mode: 0o600, body: "now a file"},
			ent{name: "a/s", typ: tar.TypeSymlink, mode: 0o777, link: "f"},
		),
	}
	fs := fsTree{}
	for _, l := range layers {
		ops, err := readLayer(l)
		if err != nil {
			t.Fatal(err)
		}
		fs.apply(ops)
	}
	fs.linkGroups()
	var got []string
	for p, e := range fs {
		got = append(got, fmt.Sprintf("%s %s %04o %q %v", p, e.Type, e.Mode, e.small+e.Target, e.Links))
	}
	sort.Strings(got)
	want := []string{
		`/ dir 0755 "" []`,
		`/a dir 0755 "" []`,
		`/a/f file 4755 "f" [/a/h]`,
		`/a/h file 4755 "f" [/a/f]`,
		`/a/s symlink 0777 "f" []`,
		`/d dir 0755 "" []`,
		`/o dir 0755 "" []`,
		`/o/new file 0644 "new" []`,
		`/r file 0600 "now a file" []`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tree:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, p := range []string{"/var/cache/ldconfig/aux-cache", "/usr/lib/python3/x/__pycache__/m.cpython-313.pyc", "/x.pyc"} {
		if !ignoredPath(p) {
			t.Errorf("%s should be ignored", p)
		}
	}
	if ignoredPath("/usr/lib/python3/x/m.py") {
		t.Error("a .py file should be compared")
	}
}
