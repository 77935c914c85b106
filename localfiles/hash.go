package localfiles

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"github.com/strata-build/strata/spec"
)

// stat is what must be unchanged for a remembered digest to be reused. Content changes that
// keep size, mtime, ctime and inode identical are not seen; that is the trade git and
// BuildKit make too.
type stat struct {
	Size  int64  `json:"s"`
	Mtime int64  `json:"m"`
	Ctime int64  `json:"c"`
	Inode uint64 `json:"i"`
}

type remembered struct {
	Stat   stat   `json:"t"`
	Digest string `json:"d"`
}

// Hasher digests file contents, remembering digests by path and stat across runs when it has
// a cache file. It is safe for concurrent use.
type Hasher struct {
	file  string
	mu    sync.Mutex
	known map[string]remembered
	seen  map[string]bool
	dirty bool
}

// NewHasher returns a Hasher that remembers digests in file ("" remembers nothing across runs).
// A missing or unreadable cache file starts empty: it only ever costs a re-hash.
func NewHasher(file string) *Hasher {
	h := &Hasher{file: file, known: map[string]remembered{}, seen: map[string]bool{}}
	if file != "" {
		if b, err := os.ReadFile(file); err == nil {
			_ = json.Unmarshal(b, &h.known)
		}
	}
	return h
}

// Hash fills the Digest of every regular file in files, in parallel.
func (h *Hasher) Hash(files []spec.ContextFile) error {
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	workers := 2 * runtime.GOMAXPROCS(0)
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
	for i := range files {
		if fs.FileMode(files[i].Mode).IsRegular() && files[i].Digest == "" {
			work <- i
		}
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
	// The fast path uses the stat from the listing: an unchanged file is never opened.
	info := f.Info
	if info == nil {
		var err error
		if info, err = os.Stat(f.Source); err != nil {
			return err
		}
	}
	st := statOf(info)
	h.mu.Lock()
	r, ok := h.known[f.Source]
	h.seen[f.Source] = true
	h.mu.Unlock()
	if ok && r.Stat == st {
		f.Digest, f.Size = r.Digest, st.Size
		return nil
	}
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
	h.mu.Lock()
	h.known[f.Source] = remembered{Stat: st, Digest: f.Digest}
	h.dirty = true
	h.mu.Unlock()
	return nil
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
	for p := range h.known {
		if !h.seen[p] {
			if _, err := os.Lstat(p); err != nil {
				delete(h.known, p)
			}
		}
	}
	b, err := json.Marshal(h.known)
	if err != nil {
		return err
	}
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
