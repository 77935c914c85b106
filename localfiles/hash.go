package localfiles

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/strata-build/strata/spec"
)

// stat is what must be unchanged for a remembered digest to be reused. Content changes that
// keep size, mtime, ctime and inode identical are not seen; that is the trade git and
// BuildKit make too. The kernel gives any later change a newer ctime, except a change within
// the same tick of the file system's clock as the last one: a digest is remembered only of a
// file whose ctime is at least racyWindow older than the start of its read (git's "racily
// clean" entries), so that no such change can hide behind it.
type stat struct {
	Size  int64
	Mtime int64
	Ctime int64
	Inode uint64
}

type remembered struct {
	Stat   stat
	Digest string
	// seen is set when this run listed the file: Save forgets unseen files that are gone.
	seen bool
	// racy is set for a file read within racyWindow of its last change: its digest serves
	// the rest of this run, and Save leaves it out.
	racy bool
}

// RacyWindow is the coarsest timestamp granularity allowed for (a jiffy on ext4, XFS, Btrfs
// and tmpfs, a second on ext3 with small inodes, two seconds on FAT): a file changed less
// than this before it was read may change again and keep its times. The fast-hit memo
// (internal/cli) refuses the same window.
const RacyWindow = 2 * time.Second

// racyWindow is RacyWindow, which tests of remembering freshly written files set to 0.
var racyWindow = RacyWindow

// Hasher digests file contents, remembering digests by path and stat across runs when it has
// a cache file. It is safe for concurrent use.
type Hasher struct {
	file  string
	once  sync.Once // reads the cache file into known
	mu    sync.Mutex
	known map[string]*remembered
	dirty bool
}

// NewHasher returns a Hasher that remembers digests in file ("" remembers nothing across runs).
// The file is read when the first file is hashed, so a definition without local files never
// reads it. A missing, unreadable or corrupt cache file starts empty: it only ever costs a
// re-hash.
func NewHasher(file string) *Hasher { return &Hasher{file: file} }

// Prefetch starts reading the cache file, while the caller lists the files it will hash.
func (h *Hasher) Prefetch() { go h.load() }

// load reads the cache file on first use.
func (h *Hasher) load() {
	h.once.Do(func() {
		known := map[string]*remembered{}
		if h.file != "" {
			if b, err := os.ReadFile(h.file); err == nil {
				if k, err := decodeCache(b); err == nil {
					known = k
				}
			}
		}
		h.known = known
	})
}

// Hash fills the Digest of every regular file in files. A file whose stat (from the listing)
// matches a remembered one takes its digest at once, and is never opened: that is the whole
// cost of an unchanged tree. The others are read in parallel.
func (h *Hasher) Hash(files []spec.ContextFile) error {
	var misses []int
	h.mu.Lock()
	for i := range files {
		f := &files[i]
		if !fs.FileMode(f.Mode).IsRegular() || f.Digest != "" {
			continue
		}
		h.load()
		if f.Info != nil {
			st := statOf(f.Info)
			if r, ok := h.known[f.Source]; ok && r.Stat == st {
				r.seen = true
				f.Digest, f.Size = r.Digest, st.Size
				continue
			}
		}
		misses = append(misses, i)
	}
	h.mu.Unlock()
	if len(misses) == 0 {
		return nil
	}
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	workers := min(2*runtime.GOMAXPROCS(0), len(misses))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := h.hashOne(&files[i]); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, i := range misses {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (h *Hasher) hashOne(f *spec.ContextFile) error {
	info := f.Info
	if info == nil {
		var err error
		if info, err = os.Stat(f.Source); err != nil {
			return err
		}
	}
	st := statOf(info)
	h.mu.Lock()
	h.load()
	r, ok := h.known[f.Source]
	if ok {
		r.seen = true
	}
	h.mu.Unlock()
	if ok && r.Stat == st {
		f.Digest, f.Size = r.Digest, st.Size
		return nil
	}
	start := time.Now()
	fh, err := os.Open(f.Source)
	if err != nil {
		return err
	}
	defer fh.Close()
	sum := sha256.New()
	n, err := io.Copy(sum, fh)
	if err != nil {
		return fmt.Errorf("reading %s: %w", f.Source, err)
	}
	if after, err := fh.Stat(); err != nil || statOf(after) != st || n != st.Size {
		return fmt.Errorf("%s changed while it was read; try again when it is stable", f.Source)
	}
	f.Digest, f.Size = "sha256:"+hex.EncodeToString(sum.Sum(nil)), n
	// Racily clean (or no ctime to tell): this run's digest is right, and the next run
	// reads the file again.
	racy := st.Ctime == 0 || start.Sub(time.Unix(0, st.Ctime)) < racyWindow
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.known[f.Source]
	h.known[f.Source] = &remembered{Stat: st, Digest: f.Digest, seen: true, racy: racy}
	h.dirty = h.dirty || !racy || (had && !old.racy)
	return nil
}

// cacheMagic starts a cache file: its format's name and version. The records follow, each
// the path, the stat's four fields and the digest, as varints and length-prefixed strings:
// a format that a warm run decodes in a millisecond or two for 10,000 files, where JSON took
// tens. Version 2's caches were written without the racily clean rule: they are dropped.
const cacheMagic = "strata filehash 3\n"

func encodeCache(known map[string]*remembered) []byte {
	b := []byte(cacheMagic)
	for p, r := range known {
		if r.racy {
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
		b = binary.AppendVarint(b, r.Stat.Size)
		b = binary.AppendVarint(b, r.Stat.Mtime)
		b = binary.AppendVarint(b, r.Stat.Ctime)
		b = binary.AppendUvarint(b, r.Stat.Inode)
		b = binary.AppendUvarint(b, uint64(len(r.Digest)))
		b = append(b, r.Digest...)
	}
	return b
}

var errCorrupt = errors.New("corrupt file digest cache")

// decodeCache reads a cache file's bytes. The paths and digests it returns share b's memory:
// b must not change after.
func decodeCache(b []byte) (map[string]*remembered, error) {
	if !bytes.HasPrefix(b, []byte(cacheMagic)) {
		return nil, errCorrupt // another format (the JSON of earlier versions): start afresh
	}
	b = b[len(cacheMagic):]
	// Paths and digests are substrings of the file's bytes, which the caller gives up (no
	// copy of a file of a megabyte or more), and the records are cut from one slab: one
	// allocation for the records of every file, not three each.
	all := unsafe.String(unsafe.SliceData(b), len(b))
	known := make(map[string]*remembered, len(b)/128)
	slab := make([]remembered, 0, len(b)/128)
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", false
		}
		at := len(all) - len(b) + k
		b = b[k+int(n):]
		return all[at : at+int(n)], true
	}
	varint := func() (int64, bool) {
		v, k := binary.Varint(b)
		b = b[max(k, 0):]
		return v, k > 0
	}
	for len(b) > 0 {
		p, ok := str()
		if !ok {
			return nil, errCorrupt
		}
		if len(slab) == cap(slab) {
			slab = make([]remembered, 0, 1024)
		}
		slab = append(slab, remembered{})
		r := &slab[len(slab)-1]
		var ok1, ok2, ok3 bool
		r.Stat.Size, ok1 = varint()
		r.Stat.Mtime, ok2 = varint()
		r.Stat.Ctime, ok3 = varint()
		ino, k := binary.Uvarint(b)
		if !ok1 || !ok2 || !ok3 || k <= 0 {
			return nil, errCorrupt
		}
		b = b[k:]
		r.Stat.Inode = ino
		if r.Digest, ok = str(); !ok {
			return nil, errCorrupt
		}
		known[p] = r
	}
	return known, nil
}

func statOf(info fs.FileInfo) stat {
	st := stat{Size: info.Size(), Mtime: info.ModTime().UnixNano()}
	if sys, ok := info.Sys().(*syscall.Stat_t); ok {
		st.Inode = sys.Ino
		st.Ctime = sys.Ctim.Sec*1e9 + sys.Ctim.Nsec
	}
	return st
}

// Save writes the remembered digests to the cache file atomically, if anything was learnt.
func (h *Hasher) Save() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.file == "" || !h.dirty {
		return nil
	}
	// Forget files that are gone, so the cache does not grow forever. Only entries this run
	// did not use are checked, and only when something changed.
	for p, r := range h.known {
		if !r.seen {
			if _, err := os.Lstat(p); err != nil {
				delete(h.known, p)
			}
		}
	}
	b := encodeCache(h.known)
	if err := os.MkdirAll(filepath.Dir(h.file), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(h.file), ".filehash-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), h.file); err != nil {
		return err
	}
	h.dirty = false
	return nil
}
