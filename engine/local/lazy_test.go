package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/store"
)

// A layer built here is recorded by its diff ID and kept as its snapshot. Its gzip blob,
// made on first need from the snapshot's tar, is byte for byte the blob that strata wrote at
// commit before (layer.Gzip over the same tar); made once, it is not made again; and a
// snapshot changed since it was built is refused, with nothing committed from it.
func TestSnapshotOnlyLayerCompressesAsAtCommit(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{store: s}
	upper := filepath.Join(t.TempDir(), "upper")
	big := make([]byte, 3<<20) // several pgzip blocks
	rand.Read(big)
	files := map[string][]byte{"etc/app.conf": []byte("a=1\n"), "opt/data/big.bin": big, "opt/data/small": []byte("x")}
	for name, b := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(upper, name)), 0o755)
		if err := os.WriteFile(filepath.Join(upper, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Link(filepath.Join(upper, "opt/data/small"), filepath.Join(upper, "opt/data/small-link"))
	os.Symlink("../etc/app.conf", filepath.Join(upper, "opt/conf"))
	write := func(w io.Writer) error { return layer.WriteTar(upper, w, layer.Options{}) }

	var atCommit bytes.Buffer
	wantDiffID, err := layer.Gzip(&atCommit, write)
	if err != nil {
		t.Fatal(err)
	}
	d, err := commitLayer(write)
	if err != nil {
		t.Fatal(err)
	}
	if d.DiffID != wantDiffID || d.Digest != d.DiffID || d.MediaType != store.MediaTypeTar || !d.SnapshotOnly() {
		t.Fatalf("committed %+v, diff ID %s", d, wantDiffID)
	}
	if s.HasLayer(d) {
		t.Fatal("the layer is in the store before its snapshot is")
	}
	if err := s.CommitSnapshot(upper, d.DiffID); err != nil {
		t.Fatal(err)
	}
	if !s.HasLayer(d) {
		t.Fatal("the layer is not in the store with its snapshot")
	}

	ctx := context.Background()
	v, err := e.variant(ctx, d, "gzip")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(atCommit.Bytes())
	if want := "sha256:" + hex.EncodeToString(sum[:]); v.Digest != want || v.DiffID != d.DiffID || v.Size != int64(atCommit.Len()) {
		t.Errorf("gzip made from the snapshot: %+v; at commit it was %s, %d bytes", v, want, atCommit.Len())
	}
	info, err := os.Stat(s.BlobPath(v.Digest))
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.variants(ctx, []store.LayerDesc{d}, "gzip")
	if err != nil || again[0].Digest != v.Digest {
		t.Fatalf("second time: %+v, %v", again, err)
	}
	if info2, err := os.Stat(s.BlobPath(v.Digest)); err != nil || !os.SameFile(info, info2) || !info2.ModTime().Equal(info.ModTime()) {
		t.Error("the second request wrote the blob again")
	}

	// The snapshot changes behind strata's back: the tar no longer has the diff ID.
	blobs := func() int { es, _ := os.ReadDir(s.Path("blobs", "sha256")); return len(es) }
	before := blobs()
	os.WriteFile(filepath.Join(s.SnapshotPath(d.DiffID), "etc/app.conf"), []byte("a=2\n"), 0o644)
	if _, err := e.variant(ctx, d, "zstd"); err == nil || !strings.Contains(err.Error(), "changed since it was built") {
		t.Errorf("a changed snapshot: %v", err)
	}
	if _, err := s.Variant(d.DiffID, "zstd"); err == nil || blobs() != before {
		t.Errorf("a blob of the changed snapshot was kept: %d blobs, %d before", blobs(), before)
	}
}
