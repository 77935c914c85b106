package local

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
)

// artifactFiles fetches artifacts (archives a plan names by digest, such as a
// python-build-standalone build) and unpacks each into dir: the context files under each
// artifact's Path, for the layer's COPY instructions.
func (e *Engine) artifactFiles(ctx context.Context, artifacts []spec.Artifact, dir string, log io.Writer) ([]spec.ContextFile, error) {
	var files []spec.ContextFile
	for i, a := range artifacts {
		blob, err := e.artifact(ctx, a, log)
		if err != nil {
			return nil, err
		}
		root := filepath.Join(dir, fmt.Sprint(i))
		if err := unpackArtifact(blob, root); err != nil {
			return nil, fmt.Errorf("%s %s (%s): %w", a.Name, a.Version, a.Digest, err)
		}
		f, err := localfiles.Walk(filepath.Join(root, filepath.FromSlash(a.Path)), a.Path, localfiles.Matcher{})
		if err != nil {
			return nil, fmt.Errorf("%s %s has no folder %q at its top: %w", a.Name, a.Version, a.Path, err)
		}
		files = append(files, f...)
	}
	return files, nil
}

// artifact returns the path of an artifact's archive in the store, downloading it first when
// the store does not have it. The download becomes a blob only if its digest is the one the
// plan pinned; one download of a digest runs at a time.
func (e *Engine) artifact(ctx context.Context, a spec.Artifact, log io.Writer) (string, error) {
	if !strings.HasPrefix(a.Digest, "sha256:") {
		return "", fmt.Errorf("%s %s: no sha256 digest to check it against", a.Name, a.Version)
	}
	if e.store.HasBlob(a.Digest) {
		fmt.Fprintf(log, "%s %s: in the store (%s)\n", a.Name, a.Version, a.Digest)
		return e.store.BlobPath(a.Digest), nil
	}
	lock, err := e.store.Lock("artifact-" + strings.TrimPrefix(a.Digest, "sha256:"))
	if err != nil {
		return "", err
	}
	defer lock.Unlock()
	if e.store.HasBlob(a.Digest) {
		return e.store.BlobPath(a.Digest), nil
	}
	if a.URL == "" {
		return "", fmt.Errorf("%s %s (%s) is not in the store, and the plan names no URL for it", a.Name, a.Version, a.Digest)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", a.Name, a.Version, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: GET %s: %s", a.Name, a.Version, a.URL, resp.Status)
	}
	w, err := e.store.NewBlob()
	if err != nil {
		return "", err
	}
	defer w.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return "", fmt.Errorf("%s %s: GET %s: %w", a.Name, a.Version, a.URL, err)
	}
	if _, err := w.Commit(a.Digest); err != nil {
		return "", fmt.Errorf("%s %s from %s is not the pinned build: %w", a.Name, a.Version, a.URL, err)
	}
	fmt.Fprintf(log, "downloaded %s %s from %s (%d bytes, %s)\n", a.Name, a.Version, a.URL, n, a.Digest)
	return e.store.BlobPath(a.Digest), nil
}

// unpackArtifact unpacks a .tar.gz archive into dir, refusing the entries a hostile layer
// would have (paths out of dir, links through it) and what only layers may hold (whiteouts,
// device nodes), and dropping setuid and setgid bits.
func unpackArtifact(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("not a .tar.gz archive: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return layer.Extract(gz, dir, layer.ExtractOptions{Plain: true})
}
