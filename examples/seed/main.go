// Command seed builds the first example of Modal's image guide with strata and runs code in
// it:
//
//	modal.Image.debian_slim(python_version="3.13")
//	    .apt_install("git")
//	    .uv_pip_install("torch<3")
//	    .env({"HALT_AND_CATCH_FIRE": "0"})
//	    .run_commands("git clone https://github.com/modal-labs/agi")
//
// This machine reaches neither PyPI nor GitHub, so the example serves its own stand-ins on
// 127.0.0.1: a PEP 503 package index with a small "tinytorch" package, and a git repository
// over HTTP. Nor can it download uv, so the package is installed with pip_install; the
// uv_pip_install step is in the commented line, for a machine that can pull uv's image.
//
// Run it as root or as an ordinary user (rootless): go run ./examples/seed, or
// ./examples/seed/run.sh on a fresh machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/pyindex"
)

func main() {
	strata.Main() // as an ordinary user: runs the program again in a user namespace
	indexAddr := flag.String("index", "127.0.0.1:8731", "where to serve the package index")
	gitAddr := flag.String("git", "127.0.0.1:8732", "where to serve the git repository")
	flag.Parse()
	log.SetFlags(0)

	wheel := pyindex.Wheel("tinytorch", "2.9.0", map[string]string{
		"tinytorch/__init__.py": "__version__ = '2.9.0'\n\ndef tensor(xs):\n    return [float(x) for x in xs]\n",
	})
	serve(*indexAddr, pyindex.Handler(map[string][]byte{pyindex.WheelName("tinytorch", "2.9.0"): wheel}))
	repo, err := gitRepo()
	if err != nil {
		log.Fatalf("making the git repository: %v", err)
	}
	serve(*gitAddr, http.FileServer(http.Dir(repo)))

	img := strata.DebianSlim("3.13").
		AptInstall("git").
		// UvPipInstall("torch<3"), where uv's image and PyPI are reachable.
		PipInstallWith(strata.PipInstallOptions{
			Packages:   []string{"tinytorch<3"},
			PipOptions: strata.PipOptions{IndexURL: "http://" + *indexAddr + "/simple"},
		}).
		Env(map[string]string{"HALT_AND_CATCH_FIRE": "0"}).
		RunCommands("git clone http://" + *gitAddr + "/agi.git /root/agi")

	ctx := context.Background()
	built, err := img.Build(ctx, strata.WithName("seed-example"), strata.WithProgress(func(ev strata.Event) {
		if ev.Status != "log" {
			fmt.Fprintf(os.Stderr, "#%d %-14s %s %s\n", ev.Index, ev.Method, ev.Status, short(ev.Key))
		}
	}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "built %s (%s)\n", built.Name, built.Manifest)
	err = built.Run(ctx, strata.RunOptions{
		Args: []string{"python", "-c", `import os, tinytorch
print("tinytorch", tinytorch.__version__, tinytorch.tensor([1, 2, 3]))
print("HALT_AND_CATCH_FIRE =", os.environ["HALT_AND_CATCH_FIRE"])
print(open("/root/agi/README.md").read().strip())`},
		Stdout: os.Stdout, Stderr: os.Stderr,
	})
	if err != nil {
		log.Fatal(err)
	}
}

func serve(addr string, h http.Handler) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("listening on %s: %v (pass another address with -index or -git)", addr, err)
	}
	go http.Serve(l, h)
}

// gitRepo makes a bare repository "agi.git" that git can clone over plain HTTP.
func gitRepo() (string, error) {
	dir, err := os.MkdirTemp("", "strata-seed-git-")
	if err != nil {
		return "", err
	}
	work := filepath.Join(dir, "work")
	steps := [][]string{
		{"init", "-q", "-b", "main", work},
		{"-C", work, "add", "README.md"},
		{"-C", work, "-c", "user.name=strata", "-c", "user.email=strata@example.invalid", "commit", "-q", "-m", "AGI, at last"},
		{"clone", "-q", "--bare", work, filepath.Join(dir, "agi.git")},
		{"-C", filepath.Join(dir, "agi.git"), "update-server-info"},
	}
	for i, s := range steps {
		if i == 1 {
			if err := os.WriteFile(filepath.Join(work, "README.md"), []byte("# agi\nCloned from a git server on 127.0.0.1.\n"), 0o644); err != nil {
				return "", err
			}
		}
		if out, err := exec.Command("git", s...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("git %v: %v: %s", s, err, out)
		}
	}
	return dir, nil
}

func short(key string) string {
	if len(key) > 19 {
		return key[7:19]
	}
	return key
}
