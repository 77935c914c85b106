package local

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/store"
)

// openLayer reads a layer's bytes: its blob, or, for a layer kept as its snapshot alone, its
// tar written again from the snapshot. That tar is checked against the diff ID as it streams:
// a snapshot changed since it was built fails the read at its end, and nothing made from it
// is committed (blobs are verified before they are renamed into place).
func (e *Engine) openLayer(d store.LayerDesc) (io.ReadCloser, error) {
	if f, err := os.Open(e.store.BlobPath(d.Digest)); err == nil || !d.SnapshotOnly() {
		return f, err
	}
	dir := e.store.SnapshotPath(d.DiffID)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("layer %s: neither its blob nor its snapshot is in the store: %w", d.DiffID, store.ErrNotFound)
	}
	pr, pw := io.Pipe()
	go func() {
		h := sha256.New()
		err := layer.WriteTar(dir, io.MultiWriter(pw, h), layer.Options{})
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); err == nil && got != d.DiffID {
			err = fmt.Errorf("the snapshot of layer %s (%s) changed since it was built: its tar is now %s; remove the image and build it again with --force-build", d.DiffID, dir, got)
		}
		pw.CloseWithError(err)
	}()
	return pr, nil // closing it stops the writer
}
