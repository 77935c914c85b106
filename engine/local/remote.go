package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
)

// download fetches what an ADD names by URL: a git repository (cloned at the commit the
// plan resolved, its contents copied into dst) or a file (verified against --checksum, mode
// 0600 and the Last-Modified time, as Docker gives it, and not unpacked).
func (x *executor) download(ctx context.Context, src string, flags spec.CopyFlags, dst string, dstIsDir bool) ([]spec.CopyItem, error) {
	dir, err := os.MkdirTemp(x.work.Path, "download-")
	if err != nil {
		return nil, err
	}
	version := ""
	for _, r := range x.layer.Remote {
		if r.Ref == src {
			version = r.Version
		}
	}
	if spec.IsGitSource(src) {
		root, err := x.gitCheckout(ctx, src, version, flags.KeepGitDir, dir)
		if err != nil {
			return nil, err
		}
		files, err := localfiles.Walk(root, "", localfiles.Matcher{})
		if err != nil {
			return nil, err
		}
		return spec.CopyPlan(files, []string{"."}, dst, true)
	}
	name, err := spec.URLFileName(src, flags)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", src, resp.Status)
	}
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", src, err)
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if flags.Checksum != "" && flags.Checksum != got {
		return nil, fmt.Errorf("%s has checksum %s, not the %s that --checksum asks for", src, got, flags.Checksum)
	}
	fmt.Fprintf(x.log, "downloaded %s (%d bytes, %s)\n", src, n, got)
	mtime := time.Unix(0, 0)
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		mtime = lm
	}
	_ = os.Chtimes(p, mtime, mtime)
	info, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	file := spec.ContextFile{Path: name, Source: p, Mode: 0o600, Size: info.Size(), Digest: got, Info: info, Remote: true}
	return []spec.CopyItem{{File: file, Target: intoDir(dst, name, dstIsDir)}}, nil
}

// gitCheckout clones a repository ("URL#ref:subdir") into dir at the commit the plan
// resolved (or ref, when it could not be resolved) and returns the folder to copy.
func (x *executor) gitCheckout(ctx context.Context, src, commit string, keepGitDir bool, dir string) (string, error) {
	repo, ref, subdir := spec.SplitGitSource(src)
	if commit == "" {
		commit = ref
	}
	if commit == "" {
		commit = "HEAD"
	}
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
		cmd.Stdout, cmd.Stderr = x.log, x.log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("git %s: %w", args[0], err)
		}
		return nil
	}
	if _, err := exec.LookPath("git"); err != nil {
		return "", fmt.Errorf("ADD of a git repository needs git on this machine: apt-get install -y git")
	}
	root := filepath.Join(dir, "repo")
	if err := git("clone", "--quiet", "--no-checkout", repo, root); err != nil {
		return "", err
	}
	if err := git("-C", root, "-c", "advice.detachedHead=false", "checkout", "--quiet", commit); err != nil {
		return "", err
	}
	if !keepGitDir {
		if err := os.RemoveAll(filepath.Join(root, ".git")); err != nil {
			return "", err
		}
	}
	if subdir != "" {
		return filepath.Join(root, filepath.FromSlash(subdir)), nil
	}
	return root, nil
}
