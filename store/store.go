// Package store is strata's local state: content-addressed blobs laid out as in an OCI image
// layout, extracted layer snapshots, the build cache index, named images, build logs and
// secrets. Every write is atomic (a temp file or folder, fsync, rename), so a crash or a
// failed build never leaves a partial entry, and concurrent builds never corrupt it.
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/spec"
	"golang.org/x/sys/unix"
)

// ErrNotFound is returned when a record, image or blob does not exist.
var ErrNotFound = errors.New("not found")

// Store is a strata home folder.
type Store struct {
	root string
}

// Open opens (creating if needed) the store at root and cleans what crashed builds left.
func Open(root string) (*Store, error) {
	s := &Store{root: root}
	for _, d := range []string{"blobs/sha256", "snapshots", "cache", "images", "logs", "tmp", "locks"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("store %s: %w", root, err)
		}
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	return s, nil
}

// Root is the store's folder.
func (s *Store) Root() string { return s.root }

// Path joins elements below the store's root.
func (s *Store) Path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

// BlobPath is where a blob with the given digest lives.
func (s *Store) BlobPath(digest string) string { return s.Path("blobs", "sha256", hexOf(digest)) }

// HasBlob reports whether the blob exists.
func (s *Store) HasBlob(digest string) bool {
	_, err := os.Stat(s.BlobPath(digest))
	return err == nil
}

// BlobWriter writes a blob to a temp file while hashing it; Commit moves it into place.
type BlobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// NewBlob starts writing a blob.
func (s *Store) NewBlob() (*BlobWriter, error) {
	f, err := os.CreateTemp(s.Path("tmp"), "blob-")
	if err != nil {
		return nil, err
	}
	return &BlobWriter{s: s, f: f, h: sha256.New()}, nil
}

func (w *BlobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Digest is the digest of what was written so far.
func (w *BlobWriter) Digest() string { return "sha256:" + hex.EncodeToString(w.h.Sum(nil)) }

// Size is the number of bytes written.
func (w *BlobWriter) Size() int64 { return w.n }

// Commit syncs the blob and moves it to its content address. If want is not empty and differs
// from the digest written, the blob is discarded and an error returned.
func (w *BlobWriter) Commit(want string) (string, error) {
	defer w.Close()
	d := w.Digest()
	if want != "" && want != d {
		return "", fmt.Errorf("blob digest mismatch: got %s, want %s", d, want)
	}
	if err := w.f.Sync(); err != nil {
		return "", err
	}
	if err := w.f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(w.f.Name(), w.s.BlobPath(d)); err != nil {
		return "", err
	}
	w.done = true
	return d, syncDir(w.s.Path("blobs", "sha256"))
}

// Close discards an uncommitted blob.
func (w *BlobWriter) Close() error {
	if !w.done {
		w.f.Close()
		os.Remove(w.f.Name())
		w.done = true
	}
	return nil
}

// PutBlob writes bytes as a blob and returns its digest.
func (s *Store) PutBlob(b []byte) (string, error) {
	sum := sha256.Sum256(b)
	if d := "sha256:" + hex.EncodeToString(sum[:]); s.HasBlob(d) {
		return d, nil // content-addressed: already there, nothing to write
	}
	w, err := s.NewBlob()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return "", err
	}
	return w.Commit("")
}

// ReadBlob reads a whole blob.
func (s *Store) ReadBlob(digest string) ([]byte, error) {
	b, err := os.ReadFile(s.BlobPath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	return b, err
}

// SnapshotPath is where the extracted layer with the given diff ID lives.
func (s *Store) SnapshotPath(diffID string) string { return s.Path("snapshots", hexOf(diffID)) }

// HasSnapshot reports whether the layer is extracted.
func (s *Store) HasSnapshot(diffID string) bool {
	_, err := os.Stat(s.SnapshotPath(diffID))
	return err == nil
}

// CommitSnapshot moves a finished folder into place as the snapshot of diffID. If another
// build committed the same content first, the folder is removed instead.
func (s *Store) CommitSnapshot(dir, diffID string) error {
	if err := syncTree(dir); err != nil {
		return err
	}
	err := os.Rename(dir, s.SnapshotPath(diffID))
	if err != nil && s.HasSnapshot(diffID) {
		return RemoveAll(dir)
	}
	if err != nil {
		return err
	}
	return syncDir(s.Path("snapshots"))
}

// LayerDesc describes one OCI layer blob.
type LayerDesc struct {
	Digest    string `json:"digest"`
	DiffID    string `json:"diff_id"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
}

// Record is the cache entry of one chain step: the OCI layers it added (none for a step
// that only changes the config, several for a pulled base) and the config after it.
type Record struct {
	Key     string        `json:"key"`
	Method  string        `json:"method"`
	Layers  []LayerDesc   `json:"layers"`
	Config  v1.ConfigFile `json:"config"`
	History []v1.History  `json:"history"`
	Created time.Time     `json:"created"`
	// Seconds is how long the step took to build.
	Seconds float64 `json:"seconds"`
}

func (s *Store) recordPath(key string) string { return s.Path("cache", hexOf(key)+".json") }

// Record returns the cache entry for key, or ErrNotFound. An entry whose blobs are gone (a
// crash between writes, a manual delete) counts as missing, so it is rebuilt.
func (s *Store) Record(key string) (*Record, error) {
	var r Record
	if err := readJSON(s.recordPath(key), &r); err != nil {
		return nil, err
	}
	for _, l := range r.Layers {
		if !s.HasBlob(l.Digest) {
			return nil, fmt.Errorf("cache entry %s: blob %s: %w", key, l.Digest, ErrNotFound)
		}
	}
	return &r, nil
}

// PutRecord writes a cache entry atomically, replacing any entry for the same key.
func (s *Store) PutRecord(r *Record) error { return writeJSON(s.recordPath(r.Key), r) }

// Records lists every cache entry.
func (s *Store) Records() ([]*Record, error) {
	entries, err := os.ReadDir(s.Path("cache"))
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var r Record
		if err := readJSON(s.Path("cache", e.Name()), &r); err == nil {
			out = append(out, &r)
		}
	}
	return out, nil
}

// DeleteRecord removes a cache entry.
func (s *Store) DeleteRecord(key string) error {
	err := os.Remove(s.recordPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// LogPath is where the build log of a step lives.
func (s *Store) LogPath(key string) string { return s.Path("logs", hexOf(key)+".log") }

// MountFile is one local file placed into containers at start.
type MountFile struct {
	Path   string `json:"path"`
	Source string `json:"source"`
	Mode   uint32 `json:"mode"`
	Link   string `json:"link,omitempty"`
}

// Mount is a runtime mount of an image (add_local_* without copy).
type Mount struct {
	Method string      `json:"method"`
	Target string      `json:"target"`
	Files  []MountFile `json:"files"`
	// Sources, when set, are listed again when a container starts.
	Sources []spec.LocalSource `json:"sources,omitempty"`
}

// Image is a named, built image.
type Image struct {
	Name     string    `json:"name"`
	Manifest string    `json:"manifest"`
	Config   string    `json:"config"`
	Size     int64     `json:"size"`
	Keys     []string  `json:"keys"`
	Methods  []string  `json:"methods"`
	Mounts   []Mount   `json:"mounts,omitempty"`
	Created  time.Time `json:"created"`
}

func (s *Store) imagePath(name string) string {
	return s.Path("images", strings.NewReplacer("/", "%2F", ":", "%3A").Replace(name)+".json")
}

// Image returns the named image or ErrNotFound.
func (s *Store) Image(name string) (*Image, error) {
	var img Image
	if err := readJSON(s.imagePath(name), &img); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("image %q: %w (list images with strata images)", name, ErrNotFound)
		}
		return nil, err
	}
	return &img, nil
}

// PutImage names an image, replacing any image of that name.
func (s *Store) PutImage(img *Image) error { return writeJSON(s.imagePath(img.Name), img) }

// DeleteImage removes an image's name. Its blobs stay until prune.
func (s *Store) DeleteImage(name string) error {
	err := os.Remove(s.imagePath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image %q: %w", name, ErrNotFound)
	}
	return err
}

// Images lists named images by name.
func (s *Store) Images() ([]*Image, error) {
	entries, err := os.ReadDir(s.Path("images"))
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, e := range entries {
		var img Image
		if strings.HasSuffix(e.Name(), ".json") && readJSON(s.Path("images", e.Name()), &img) == nil {
			out = append(out, &img)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		// A torn or corrupt entry is treated as missing: it is rebuilt, never trusted.
		return fmt.Errorf("%s: %v: %w", path, err, ErrNotFound)
	}
	return nil
}

// writeJSON writes v to path atomically and durably.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b, 0o644)
}

// WriteFileAtomic writes data to a temp file beside path, syncs it and renames it over path.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncTree flushes a folder's files to disk before it is renamed into place.
func syncTree(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// Lock is a held file lock.
type Lock struct{ f *os.File }

// Unlock releases the lock.
func (l *Lock) Unlock() {
	if l != nil && l.f != nil {
		l.f.Close()
	}
}

func (s *Store) flock(path string, how int) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{f}, nil
}

// LockKey serialises builds of one cache key across processes: the second builder waits and
// then finds the first one's entry.
func (s *Store) LockKey(key string) (*Lock, error) {
	return s.flock(s.Path("locks", hexOf(key)), syscall.LOCK_EX)
}

// Use takes the store's shared lock, held by every build and run; Prune takes it exclusively.
func (s *Store) Use() (*Lock, error) { return s.flock(s.Path("lock"), syscall.LOCK_SH) }

// Exclusive takes the store's lock exclusively: no build or run is under way while held.
func (s *Store) Exclusive() (*Lock, error) { return s.flock(s.Path("lock"), syscall.LOCK_EX) }

// recover removes what dead processes left in tmp: unmounts stale mounts and deletes work
// folders whose owner no longer holds their lock.
func (s *Store) recover() error {
	entries, err := os.ReadDir(s.Path("tmp"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := s.Path("tmp", e.Name())
		if e.IsDir() {
			lock := filepath.Join(p, ".lock")
			if f, err := os.Open(lock); err == nil {
				busy := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil
				f.Close()
				if busy {
					continue
				}
			} else if time.Since(dirTime(p)) < time.Minute {
				continue // being set up right now by another process
			}
			if _, err := os.Stat(filepath.Join(p, "runc")); err == nil {
				(&container.Runner{Runtime: os.Getenv("STRATA_RUNTIME"), Root: filepath.Join(p, "runc")}).Cleanup()
			}
			UnmountAll(p)
			_ = RemoveAll(p)
		} else if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
			os.Remove(p)
		}
	}
	return nil
}

func dirTime(p string) time.Time {
	if info, err := os.Stat(p); err == nil {
		return info.ModTime()
	}
	return time.Time{}
}

// WorkDir is a temp folder that is locked while in use, so recovery leaves it alone.
type WorkDir struct {
	Path string
	lock *Lock
}

// NewWorkDir makes a locked work folder.
func (s *Store) NewWorkDir(prefix string) (*WorkDir, error) {
	p, err := os.MkdirTemp(s.Path("tmp"), prefix)
	if err != nil {
		return nil, err
	}
	l, err := s.flock(filepath.Join(p, ".lock"), syscall.LOCK_EX)
	if err != nil {
		os.RemoveAll(p)
		return nil, err
	}
	return &WorkDir{Path: p, lock: l}, nil
}

// Remove unmounts anything below the folder and removes it.
func (w *WorkDir) Remove() error {
	UnmountAll(w.Path)
	err := RemoveAll(w.Path)
	w.lock.Unlock()
	return err
}

// UnmountAll detaches every mount at or below dir, deepest first.
func UnmountAll(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
}

// RemoveAll removes a tree, first making read-only folders writable (images contain them).
func RemoveAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o755)
		}
		return nil
	})
	return os.RemoveAll(p)
}

var _ io.Writer = (*BlobWriter)(nil)
