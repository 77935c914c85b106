package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordsAreMissingUnlessWholeAndBacked(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.PutBlob([]byte("layer"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasBlob(d) {
		t.Fatal("blob not stored")
	}
	r := &Record{Key: "sha256:aaaa", Method: "run_commands", Layers: []LayerDesc{{Digest: d}}}
	if err := s.PutRecord(r); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Record("sha256:aaaa"); err != nil || got.Method != "run_commands" {
		t.Fatalf("record: %v %v", got, err)
	}
	// A record whose blob is gone is a miss, so the layer is rebuilt.
	os.Remove(s.BlobPath(d))
	if _, err := s.Record("sha256:aaaa"); !errors.Is(err, ErrNotFound) {
		t.Errorf("record without its blob: %v", err)
	}
	// So is a torn or corrupt record.
	os.WriteFile(s.RecordPath("sha256:bbbb"), []byte(`{"key": "sha256:bb`), 0o644)
	if _, err := s.Record("sha256:bbbb"); !errors.Is(err, ErrNotFound) {
		t.Errorf("corrupt record: %v", err)
	}
	// A blob whose content does not match the expected digest is discarded.
	w, _ := s.NewBlob()
	w.Write([]byte("other"))
	if _, err := w.Commit("sha256:0000"); err == nil {
		t.Error("a mismatching blob was committed")
	}
}

func TestRecoveryRemovesOnlyAbandonedWork(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	live, err := s.NewWorkDir("build-")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := s.NewWorkDir("build-")
	if err != nil {
		t.Fatal(err)
	}
	dead.lock.Unlock() // as if its process died
	old := time.Now().Add(-time.Hour)
	os.Chtimes(dead.Path, old, old)
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live.Path); err != nil {
		t.Error("recovery removed a work folder in use")
	}
	if _, err := os.Stat(dead.Path); err == nil {
		t.Error("recovery kept an abandoned work folder")
	}
	// A new work folder's lock file is held from the moment it has its name: recovery never
	// sees it unheld (the window between open and flock that concurrent runs fell into).
	if unlocked(filepath.Join(live.Path, ".lock")) {
		t.Error("a live work folder's .lock is not held")
	}
	if _, err := os.Stat(filepath.Join(live.Path, ".lock-new")); err == nil {
		t.Error("the lock file was not renamed into place")
	}
	live.Remove()
}

func TestImagesByName(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, n := range []string{"b", "registry:5000/team/a:v1"} {
		if err := s.PutImage(&Image{Name: n, Manifest: "sha256:m"}); err != nil {
			t.Fatal(err)
		}
	}
	imgs, _ := s.Images()
	if len(imgs) != 2 || imgs[0].Name != "b" || imgs[1].Name != "registry:5000/team/a:v1" {
		t.Errorf("images: %+v", imgs)
	}
	if _, err := s.Image("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing image: %v", err)
	}
	if err := s.DeleteImage("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "images", "b.json")); err == nil {
		t.Error("image not removed")
	}
}

// TestRecoveryRemovesWhatDeadWritersLeft: a blob or record being written holds a lock on
// its temp file; when its process dies the lock goes, and recovery removes the file, as
// containerd cleans its ingest folder. A live writer's file stays.
func TestRecoveryRemovesWhatDeadWritersLeft(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	live, err := s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	live.Write([]byte("still writing"))
	dead, err := s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	dead.Write([]byte("half a layer"))
	deadPath := dead.f.Name()
	dead.f.Close() // as if its process died: the lock goes with the file descriptor
	var released []string
	if _, err := Open(root, WithRelease(func(dir string) { released = append(released, dir) })); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(deadPath); err == nil {
		t.Error("recovery kept a dead writer's temp file")
	}
	if _, err := os.Stat(live.f.Name()); err != nil {
		t.Error("recovery removed a live writer's temp file")
	}
	if d, err := live.Commit(""); err != nil || !s.HasBlob(d) {
		t.Errorf("the live writer could not commit: %v", err)
	}
	left, _ := os.ReadDir(filepath.Join(root, "tmp"))
	if len(left) != 0 {
		t.Errorf("left in tmp: %v", left)
	}
}

// TestSnapshotLinksAreShortAndUnique: two snapshots whose digests share the first 12 hex
// characters get different links.
func TestSnapshotLinksAreShortAndUnique(t *testing.T) {
	s, _ := Open(t.TempDir())
	a := "sha256:" + strings.Repeat("a", 12) + strings.Repeat("1", 52)
	b := "sha256:" + strings.Repeat("a", 12) + strings.Repeat("2", 52)
	for _, d := range []string{a, b} {
		dir := filepath.Join(t.TempDir(), "snap")
		os.Mkdir(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "f"), []byte(d), 0o644)
		if err := s.CommitSnapshot(dir, d); err != nil {
			t.Fatal(err)
		}
	}
	la, _ := s.SnapshotLink(a)
	lb, _ := s.SnapshotLink(b)
	if filepath.Base(la) != strings.Repeat("a", 12) || filepath.Base(lb) != strings.Repeat("a", 12)+"2222" {
		t.Errorf("links %s %s", la, lb)
	}
	for d, l := range map[string]string{a: la, b: lb} {
		if got, err := os.ReadFile(filepath.Join(l, "f")); err != nil || string(got) != d {
			t.Errorf("%s leads to %q (%v)", l, got, err)
		}
	}
	if err := s.DeleteSnapshot(a); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(la); err == nil {
		t.Error("the link of a deleted snapshot is still there")
	}
}
