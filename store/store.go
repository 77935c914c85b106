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
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/sbom"
)

// ErrNotFound is returned when a record, image or blob does not exist.
var ErrNotFound = errors.New("not found")

// Store is a strata home folder.
type Store struct {
	root    string
	release func(dir string)
}

// Option configures Open.
type Option func(*Store)

// WithRelease sets what frees the resources a process placed in one of its work folders
// (mounts, containers) before the folder is removed: by WorkDir.Remove, or by recovery when
// the process died. The store itself knows only files.
func WithRelease(f func(dir string)) Option { return func(s *Store) { s.release = f } }

// At is the store at root as it is, to find its files by: unlike Open it neither creates
// nor recovers anything.
func At(root string) *Store { return &Store{root: root, release: func(string) {}} }

// Open opens (creating if needed) the store at root and removes what dead processes left in
// it (see Recover).
func Open(root string, opts ...Option) (*Store, error) {
	s := &Store{root: root, release: func(string) {}}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{"blobs/sha256", "snapshots/l", "cache", "images", "refs", "variants", "sources", "logs", "tmp", "locks"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("store %s: %w", root, err)
		}
	}
	if err := s.Recover(); err != nil {
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

// NewBlob starts writing a blob. Its temp file is locked while the writer lives, so recovery
// removes it if the writer's process dies, as containerd cleans its ingest folder.
func (s *Store) NewBlob() (*BlobWriter, error) {
	f, err := s.tempFile("blob-")
	if err != nil {
		return nil, err
	}
	return &BlobWriter{s: s, f: f, h: sha256.New()}, nil
}

// tempFile creates a file in tmp that holds an exclusive lock until it is closed.
func (s *Store) tempFile(prefix string) (*os.File, error) {
	f, err := os.CreateTemp(s.Path("tmp"), prefix)
	if err != nil {
		return nil, err
	}
	if err := flockFile(f, syscall.LOCK_EX); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
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
	// Renamed while still open, so its lock keeps recovery away until it is in place.
	if err := os.Rename(w.f.Name(), w.s.BlobPath(d)); err != nil {
		return "", err
	}
	w.done = true
	if err := w.f.Close(); err != nil {
		return "", err
	}
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
	if _, err := s.SnapshotLink(diffID); err != nil {
		return err
	}
	return syncDir(s.Path("snapshots"))
}

// SnapshotLink returns a short path to the snapshot of diffID: snapshots/l/ID, a symlink to
// it with ID the shortest prefix of its hex (12 characters at least) that no other snapshot
// uses. Overlay mounts name their lowers by these links, as Docker's overlay2 driver does,
// so that an image of many layers fits in one mount's options.
func (s *Store) SnapshotLink(diffID string) (string, error) {
	h := hexOf(diffID)
	if len(h) < 12 {
		return "", fmt.Errorf("snapshot %q: not a digest", diffID)
	}
	target := filepath.Join("..", h)
	for n := 12; n <= len(h); n += 4 {
		link := s.Path("snapshots", "l", h[:n])
		for {
			got, err := os.Readlink(link)
			if err == nil {
				if got == target {
					return link, nil
				}
				break // another snapshot has this prefix: try a longer one
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
			if err := os.Symlink(target, link); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", err
			}
			// Created, or created by another process at the same time: read it again.
		}
	}
	return "", fmt.Errorf("snapshot %s: no free short link", diffID)
}

// Snapshots lists the diff IDs of the extracted layers.
func (s *Store) Snapshots() ([]string, error) {
	entries, err := os.ReadDir(s.Path("snapshots"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && len(e.Name()) == 64 {
			out = append(out, "sha256:"+e.Name())
		}
	}
	return out, nil
}

// DeleteSnapshot removes the snapshot of diffID and its short link.
func (s *Store) DeleteSnapshot(diffID string) error {
	h := hexOf(diffID)
	links, _ := os.ReadDir(s.Path("snapshots", "l"))
	for _, l := range links {
		if strings.HasPrefix(h, l.Name()) {
			if t, err := os.Readlink(s.Path("snapshots", "l", l.Name())); err == nil && t == filepath.Join("..", h) {
				os.Remove(s.Path("snapshots", "l", l.Name()))
			}
		}
	}
	return RemoveAll(s.SnapshotPath(diffID))
}

// LayerDesc describes one OCI layer blob.
type LayerDesc struct {
	Digest    string `json:"digest"`
	DiffID    string `json:"diff_id"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
	// Annotations go into the manifest with the layer (an eStargz layer's TOC digest).
	Annotations map[string]string `json:"annotations,omitempty"`
}

// MediaTypeTar is the media type of an uncompressed layer: a layer built here is recorded as
// one, with its diff ID as its digest, and kept as its snapshot alone.
const MediaTypeTar = "application/vnd.oci.image.layer.v1.tar"

// SnapshotOnly says the layer may be kept as its snapshot alone: an uncompressed layer, whose
// tar is written again from its snapshot (and checked against its diff ID) when an export,
// push or cache write needs its bytes. Compressed blobs are made then, and kept as variants.
func (d LayerDesc) SnapshotOnly() bool { return d.MediaType == MediaTypeTar && d.Digest == d.DiffID }

// HasLayer reports whether the store holds the layer's bytes: its blob, or, for a layer
// that may be kept as its snapshot alone, its snapshot.
func (s *Store) HasLayer(d LayerDesc) bool {
	_, ok := s.LayerPath(d)
	return ok
}

// LayerPath is where the layer's bytes are: its blob, or, for a layer kept as its snapshot
// alone, the snapshot; false if neither is in the store.
func (s *Store) LayerPath(d LayerDesc) (string, bool) {
	if s.HasBlob(d.Digest) {
		return s.BlobPath(d.Digest), true
	}
	if d.SnapshotOnly() && s.HasSnapshot(d.DiffID) {
		return s.SnapshotPath(d.DiffID), true
	}
	return "", false
}

// Record is the cache entry of one chain step: the OCI layers it added (none for a step
// that only changes the config, several for a pulled base) and the config after it.
type Record struct {
	Key     string        `json:"key"`
	Method  string        `json:"method"`
	Layers  []LayerDesc   `json:"layers"`
	Config  v1.ConfigFile `json:"config"`
	History []v1.History  `json:"history"`
	// Args are the ARG values in scope after the step (a Dockerfile stage's), which the
	// stage's next instruction sees; they are not part of the image.
	Args    []string  `json:"args,omitempty"`
	Created time.Time `json:"created"`
	// Seconds is how long the step took to build.
	Seconds float64 `json:"seconds"`
	// Packages are the packages the step installed, changed or removed, as their package
	// managers' metadata in its layers says; nil in a record made before strata listed them.
	Packages *sbom.Changes `json:"packages,omitempty"`
}

// RecordPath is the file of a key's cache entry.
func (s *Store) RecordPath(key string) string { return s.Path("cache", hexOf(key)+".json") }

// Record returns the cache entry for key, or ErrNotFound. An entry whose layers are gone (a
// crash between writes, a manual delete) counts as missing, so it is rebuilt.
func (s *Store) Record(key string) (*Record, error) {
	var r Record
	if err := readJSON(s.RecordPath(key), &r); err != nil {
		return nil, err
	}
	for _, l := range r.Layers {
		if !s.HasLayer(l) {
			return nil, fmt.Errorf("cache entry %s: layer %s: %w", key, l.Digest, ErrNotFound)
		}
	}
	return &r, nil
}

// PutRecord writes a cache entry atomically, replacing any entry for the same key.
func (s *Store) PutRecord(r *Record) error { return s.writeJSON(s.RecordPath(r.Key), r) }

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
	err := os.Remove(s.RecordPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// LogPath is where the build log of a step lives.
func (s *Store) LogPath(key string) string { return s.Path("logs", hexOf(key)+".log") }

// Image is a named, built image.
type Image struct {
	Name     string   `json:"name"`
	Manifest string   `json:"manifest"`
	Config   string   `json:"config"`
	Size     int64    `json:"size"`
	Keys     []string `json:"keys"`
	Methods  []string `json:"methods"`
	// Mounts is the digest of a blob that lists the image's runtime mounts, if it has any.
	Mounts string `json:"mounts,omitempty"`
	// Source is the registry reference a pulled image came from.
	Source string `json:"source,omitempty"`
	// Engine names the engine that built it, when another than the store's own.
	Engine string `json:"engine,omitempty"`
	// Compression is the layer compression its last push or export asked for ("" if none
	// has): the one strata inspect shows its manifest in.
	Compression string    `json:"compression,omitempty"`
	Created     time.Time `json:"created"`
}

// ImagePath is the file of a named image's record.
func (s *Store) ImagePath(name string) string {
	return s.Path("images", strings.NewReplacer("/", "%2F", ":", "%3A").Replace(name)+".json")
}

// Image returns the named image or ErrNotFound.
func (s *Store) Image(name string) (*Image, error) {
	var img Image
	if err := readJSON(s.ImagePath(name), &img); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("image %q: %w (list images with strata images)", name, ErrNotFound)
		}
		return nil, err
	}
	return &img, nil
}

// PutImage names an image, replacing any image of that name.
func (s *Store) PutImage(img *Image) error { return s.writeJSON(s.ImagePath(img.Name), img) }

// DeleteImage removes an image's name. Its blobs stay until prune.
func (s *Store) DeleteImage(name string) error {
	err := os.Remove(s.ImagePath(name))
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

// Variant returns the blob of the layer with the given diff ID in a compression ("gzip",
// "zstd", "estargz"), if one was made, or ErrNotFound. Its blob must be in the store.
func (s *Store) Variant(diffID, compression string) (*LayerDesc, error) {
	var all map[string]LayerDesc
	if err := readJSON(s.variantPath(diffID), &all); err != nil {
		return nil, err
	}
	d, ok := all[compression]
	if !ok || !s.HasBlob(d.Digest) {
		return nil, ErrNotFound
	}
	return &d, nil
}

// PutVariant records the blob of a layer in a compression. Callers hold Lock("variant-" +
// diffID) so that concurrent writers do not lose each other's entries.
func (s *Store) PutVariant(diffID, compression string, d LayerDesc) error {
	all := map[string]LayerDesc{}
	if err := readJSON(s.variantPath(diffID), &all); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	all[compression] = d
	return s.writeJSON(s.variantPath(diffID), all)
}

// Variants returns every layer's variants, by the layer's diff ID.
func (s *Store) Variants() (map[string]map[string]LayerDesc, error) {
	entries, err := os.ReadDir(s.Path("variants"))
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]LayerDesc{}
	for _, e := range entries {
		if h, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			var all map[string]LayerDesc
			if readJSON(s.Path("variants", e.Name()), &all) == nil {
				out["sha256:"+h] = all
			}
		}
	}
	return out, nil
}

// DeleteVariants forgets a layer's variants (their blobs go with prune).
func (s *Store) DeleteVariants(diffID string) error {
	err := os.Remove(s.variantPath(diffID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// DeleteBlob removes a blob and what the store knows of where it is.
func (s *Store) DeleteBlob(digest string) error {
	os.Remove(s.Path("sources", hexOf(digest)+".json"))
	err := os.Remove(s.BlobPath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (s *Store) variantPath(diffID string) string {
	return s.Path("variants", hexOf(diffID)+".json")
}

// Sources returns the repositories ("registry/name") a blob is known to be in, so that a
// push to another repository of the same registry can mount it instead of sending it.
func (s *Store) Sources(digest string) []string {
	var repos []string
	_ = readJSON(s.Path("sources", hexOf(digest)+".json"), &repos)
	return repos
}

// AddSource records that a blob is in a repository. The list is a hint: a wrong entry only
// costs a mount request that the registry refuses.
func (s *Store) AddSource(digest, repo string) error {
	repos := s.Sources(digest)
	for _, r := range repos {
		if r == repo {
			return nil
		}
	}
	repos = append(repos, repo)
	if len(repos) > 16 {
		repos = repos[len(repos)-16:]
	}
	return s.writeJSON(s.Path("sources", hexOf(digest)+".json"), repos)
}

// Pin records the manifest digest a registry reference was resolved to, so that later builds
// use the same content (and cache keys) until the reference is resolved again.
type Pin struct {
	Ref      string    `json:"ref"`
	Platform string    `json:"platform"`
	Digest   string    `json:"digest"`
	Resolved time.Time `json:"resolved"`
}

func (s *Store) pinPath(ref, platform string) string {
	sum := sha256.Sum256([]byte(platform + " " + ref))
	return s.Path("refs", hex.EncodeToString(sum[:16])+".json")
}

// Pin returns the pin of ref for platform, or ErrNotFound.
func (s *Store) Pin(ref, platform string) (*Pin, error) {
	var p Pin
	if err := readJSON(s.pinPath(ref, platform), &p); err != nil {
		return nil, err
	}
	if p.Ref != ref || p.Platform != platform {
		return nil, ErrNotFound
	}
	return &p, nil
}

// PutPin records a pin, replacing the reference's previous one.
func (s *Store) PutPin(p *Pin) error { return s.writeJSON(s.pinPath(p.Ref, p.Platform), p) }

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

// writeJSON writes v to path atomically and durably, through a locked temp file in tmp.
func (s *Store) writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := s.tempFile("record-")
	if err != nil {
		return err
	}
	return commitFile(f, path, b, 0o644)
}

// WriteFileAtomic writes data to a temp file beside path, syncs it and renames it over path.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	return commitFile(f, path, data, perm)
}

// commitFile writes data to the temp file f, syncs it and renames it over path.
// It renames before closing, so that a lock on f lasts until the file is in place.
func commitFile(f *os.File, path string, data []byte, perm os.FileMode) error {
	err := func() error {
		if _, err := f.Write(data); err != nil {
			return err
		}
		if err := f.Chmod(perm); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		return os.Rename(f.Name(), path)
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
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

// syncEachLimit is the most files and folders that syncTree flushes one by one.
const syncEachLimit = 64

// syncTree flushes a folder's files to disk before it is renamed into place. A small tree
// (most build steps' layers) is flushed file by file, in parallel, so that its commit waits
// for its own bytes only: syncfs flushes everything written to the file system, by any
// process, and a 3-file layer committed after 300 MB written elsewhere took 0.5 s. A larger
// tree is flushed with one syncfs, cheaper there than thousands of fsyncs (1,000 files:
// 30 ms against 126 ms in parallel, 418 ms one after another, on this machine's ext4).
func syncTree(dir string) error {
	var paths []string
	errMany := errors.New("many")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Type().IsRegular() {
			if paths = append(paths, p); len(paths) > syncEachLimit {
				return errMany
			}
		}
		return nil
	})
	if errors.Is(err, errMany) {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Syncfs(fd)
	}
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(16)
	for _, p := range paths {
		g.Go(func() error {
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Fsync(fd)
		})
	}
	return g.Wait()
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
	if err := flockFile(f, how); err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{f}, nil
}

func flockFile(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// unlocked reports whether nobody holds a lock on the file at path: its writer is gone.
func unlocked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}

// LockKey serialises builds of one cache key across processes: the second builder waits and
// then finds the first one's entry.
func (s *Store) LockKey(key string) (*Lock, error) {
	return s.flock(s.Path("locks", hexOf(key)), syscall.LOCK_EX)
}

// Lock takes an exclusive named lock, across processes.
func (s *Store) Lock(name string) (*Lock, error) {
	return s.flock(s.Path("locks", strings.NewReplacer("/", "_", ":", "_").Replace(name)), syscall.LOCK_EX)
}

// Use takes the store's shared lock, held by every build and run; Prune takes it exclusively.
func (s *Store) Use() (*Lock, error) { return s.flock(s.Path("lock"), syscall.LOCK_SH) }

// Exclusive takes the store's lock exclusively: no build or run is under way while held.
func (s *Store) Exclusive() (*Lock, error) { return s.flock(s.Path("lock"), syscall.LOCK_EX) }

// Recover removes what dead processes left in tmp: work folders whose owner no longer holds
// their lock (after the release hook has freed their mounts and containers), and temp files
// (blobs, records) whose writer no longer holds theirs. Open calls it; Prune, which holds
// the store exclusively, calls it again.
func (s *Store) Recover() error {
	entries, err := os.ReadDir(s.Path("tmp"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := s.Path("tmp", e.Name())
		if !e.IsDir() {
			// An empty file may be one another process has created and not yet locked.
			if info, err := e.Info(); err == nil && (info.Size() > 0 || time.Since(info.ModTime()) > time.Minute) && unlocked(p) {
				os.Remove(p)
			}
			continue
		}
		lock := filepath.Join(p, ".lock")
		if _, err := os.Stat(lock); err == nil {
			if !unlocked(lock) {
				continue
			}
		} else if time.Since(dirTime(p)) < time.Minute {
			continue // being set up right now by another process
		}
		s.release(p)
		_ = RemoveAll(p)
	}
	// Short links whose snapshot is gone (a crash between the two).
	links, _ := os.ReadDir(s.Path("snapshots", "l"))
	for _, l := range links {
		p := s.Path("snapshots", "l", l.Name())
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
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
	s    *Store
}

// NewWorkDir makes a locked work folder.
func (s *Store) NewWorkDir(prefix string) (*WorkDir, error) {
	p, err := os.MkdirTemp(s.Path("tmp"), prefix)
	if err != nil {
		return nil, err
	}
	// The lock file is locked under another name and then renamed into place, so that no
	// other process's recovery finds a .lock nobody holds yet and takes the folder for
	// abandoned: eight runs starting at once removed each other's folders that way. Until
	// the rename the folder has no .lock, and recovery spares it for a minute.
	l, err := s.flock(filepath.Join(p, ".lock-new"), syscall.LOCK_EX)
	if err == nil {
		if err = os.Rename(filepath.Join(p, ".lock-new"), filepath.Join(p, ".lock")); err != nil {
			l.Unlock()
		}
	}
	if err != nil {
		os.RemoveAll(p)
		return nil, err
	}
	return &WorkDir{Path: p, lock: l, s: s}, nil
}

// Remove releases what was placed in the folder (see WithRelease) and removes it.
func (w *WorkDir) Remove() error {
	w.s.release(w.Path)
	err := RemoveAll(w.Path)
	w.lock.Unlock()
	return err
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
