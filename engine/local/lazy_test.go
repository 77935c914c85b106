package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-build/strata/engine"
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

// Check finds each kind of damage, changes nothing without repair, and with repair removes
// what is broken (never an image's name) and keeps what is whole.
func TestCheckFindsAndRepairsDamage(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{store: s}
	ctx := context.Background()
	put := func(b string) string {
		d, err := s.PutBlob([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	record := func(key string, layers ...store.LayerDesc) {
		if err := s.PutRecord(&store.Record{Key: key, Method: "run_commands", Layers: layers}); err != nil {
			t.Fatal(err)
		}
	}
	key := func(n int) string { return fmt.Sprintf("sha256:%064x", n) }

	good := store.LayerDesc{Digest: put("good layer"), DiffID: key(100), MediaType: layer.MediaTypeGzip}
	record(key(1), good)
	corrupt := store.LayerDesc{Digest: put("corrupt layer"), DiffID: key(101), MediaType: layer.MediaTypeGzip}
	os.WriteFile(s.BlobPath(corrupt.Digest), []byte("flipped bits"), 0o644)
	record(key(2), corrupt)
	upper := filepath.Join(t.TempDir(), "upper")
	os.MkdirAll(filepath.Join(upper, "etc"), 0o755)
	os.WriteFile(filepath.Join(upper, "etc/app.conf"), []byte("a=1\n"), 0o644)
	built, err := commitLayer(func(w io.Writer) error { return layer.WriteTar(upper, w, layer.Options{}) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CommitSnapshot(upper, built.DiffID); err != nil {
		t.Fatal(err)
	}
	record(key(3), built)
	os.WriteFile(filepath.Join(s.SnapshotPath(built.DiffID), "etc/app.conf"), []byte("a=2\n"), 0o644)
	os.WriteFile(s.Path("cache", strings.TrimPrefix(key(4), "sha256:")+".json"), []byte("{half a rec"), 0o644)
	if err := s.PutVariant(good.DiffID, "zstd", store.LayerDesc{Digest: key(200), DiffID: good.DiffID}); err != nil {
		t.Fatal(err)
	}
	manifest := put(fmt.Sprintf(`{"schemaVersion":2,"config":{"digest":%q},"layers":[{"digest":%q,"mediaType":%q}]}`, good.Digest, corrupt.Digest, layer.MediaTypeGzip))
	if err := s.PutImage(&store.Image{Name: "broken", Manifest: manifest, Config: good.Digest}); err != nil {
		t.Fatal(err)
	}

	want := []string{"blob " + corrupt.Digest, "cache entry " + key(2), "cache entry " + key(3), "cache entry " + key(4), "image broken", "snapshot " + built.DiffID, "variant zstd of " + good.DiffID}
	objects := func(r *engine.CheckReport) []string {
		var out []string
		for _, p := range r.Problems {
			out = append(out, p.Object)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	r, err := e.Check(ctx, engine.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := objects(r); !slices.Equal(got, want) {
		t.Errorf("found %q\nwant %q", got, want)
	}
	for _, p := range r.Problems {
		if p.Repaired || p.Repair == "" {
			t.Errorf("without repair: %+v", p)
		}
	}
	if !s.HasBlob(corrupt.Digest) || !s.HasSnapshot(built.DiffID) {
		t.Error("a check without repair removed something")
	}

	if r, err = e.Check(ctx, engine.CheckOptions{Repair: true}); err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		if p.Repaired != (p.Object != "image broken") {
			t.Errorf("repair: %+v", p)
		}
	}
	if s.HasBlob(corrupt.Digest) || s.HasSnapshot(built.DiffID) {
		t.Error("repair left the corrupt blob or the changed snapshot")
	}
	if _, err := s.Record(key(1)); err != nil {
		t.Errorf("repair lost the whole cache entry: %v", err)
	}
	if _, err := s.Image("broken"); err != nil {
		t.Errorf("repair removed an image's name: %v", err)
	}
	if r, err = e.Check(ctx, engine.CheckOptions{}); err != nil || !slices.Equal(objects(r), []string{"image broken"}) {
		t.Errorf("after repair: %v %+v", err, r)
	}
}
