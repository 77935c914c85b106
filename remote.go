package strata

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"

	"github.com/strata-build/strata/spec"
)

// remoteSources lists what a layer's ADD instructions download (URLs, git repositories),
// their words expanded with vars when the caller knows the Dockerfile's variables.
func remoteSources(ins []spec.Instruction, expand func(string) (string, error)) ([]spec.RemoteRef, error) {
	var out []spec.RemoteRef
	for _, in := range ins {
		if in.Op != spec.OpAdd {
			continue
		}
		flags, err := in.CopyFlags()
		if err != nil {
			return nil, err
		}
		if flags.From != "" {
			continue
		}
		for _, src := range in.Args[:len(in.Args)-1] {
			if spec.IsHeredocSource(in, src) {
				continue
			}
			if expand != nil {
				if src, err = expand(src); err != nil {
					return nil, err
				}
			}
			if !spec.IsRemoteSource(src) {
				continue
			}
			if strings.Contains(src, "$") {
				return nil, fmt.Errorf("ADD %s: strata resolves what ADD downloads before the build, so write the address literally or with build args", src)
			}
			ref := spec.RemoteRef{Ref: src}
			if flags.Checksum != "" && !spec.IsGitSource(src) {
				ref.Version = flags.Checksum // the content itself: no need to ask
			}
			out = append(out, ref)
		}
	}
	return out, nil
}

// resolveRemote finds what each of a layer's downloads holds now: the commit a git ref
// names (git ls-remote), or a URL's ETag or Last-Modified time (a HEAD request), as BuildKit
// checks them, so that a moved branch or a changed file rebuilds the layer.
func resolveRemote(ctx context.Context, l *spec.Layer, o *resolveOptions) error {
	if l.Remote == nil {
		refs, err := remoteSources(l.Instructions, nil)
		if err != nil {
			return err
		}
		l.Remote = refs
	}
	if !o.remote {
		return nil
	}
	for i, r := range l.Remote {
		if r.Version != "" {
			continue
		}
		v, err := remoteVersion(ctx, r.Ref)
		if err != nil {
			return fmt.Errorf("ADD %s: %w", r.Ref, err)
		}
		l.Remote[i].Version = v
	}
	return nil
}

func remoteVersion(ctx context.Context, src string) (string, error) {
	if spec.IsGitSource(src) {
		repo, ref, _ := spec.SplitGitSource(src)
		if ref == "" {
			ref = "HEAD"
		}
		if len(ref) == 40 && strings.Trim(ref, "0123456789abcdef") == "" {
			return ref, nil // a commit already
		}
		cmd := exec.CommandContext(ctx, "git", "ls-remote", repo, ref, ref+"^{}")
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("git ls-remote %s %s: %v: %s", repo, ref, err, strings.TrimSpace(errb.String()))
		}
		// An annotated tag lists its tag object, then the commit ("^{}"), which wins.
		commit := ""
		for _, line := range strings.Split(out.String(), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && (commit == "" || strings.HasSuffix(f[1], "^{}")) {
				commit = f[0]
			}
		}
		if commit == "" {
			return "", fmt.Errorf("%s has no ref %q", repo, ref)
		}
		return commit, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, src, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HEAD %s: %s", src, resp.Status)
	}
	if etag := resp.Header.Get("ETag"); etag != "" {
		return "etag:" + etag, nil
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		return fmt.Sprintf("modified:%s;length:%d", lm, resp.ContentLength), nil
	}
	// Nothing says when it changes: the address alone keys it, as without --checksum in
	// Docker's classic builder.
	return "", nil
}
