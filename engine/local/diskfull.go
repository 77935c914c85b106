package local

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/engine"
)

// nearlyFull is how little free space counts as a full disk when a step fails: the step
// most likely failed for want of space.
const nearlyFull = 1 << 20

// free returns the bytes that an ordinary write may still take on the store's file system.
func (e *Engine) free() (int64, error) { return freeAt(e.store.Root()) }

// freeAt returns the bytes that an ordinary write may still take on path's file system.
func freeAt(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// explainOutputFull is explainFull for an export to out: a write there that ran out of space
// names out's disk, any other the store's.
func (e *Engine) explainOutputFull(err error, out string) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) || !(pe.Path == out || strings.HasPrefix(pe.Path, out+"/")) || (!errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT)) {
		return e.explainFull(err, false)
	}
	dir := filepath.Dir(out)
	free, _ := freeAt(dir)
	return &engine.DiskFullError{Path: dir, Output: true, Free: free, Err: err}
}

// explainFull turns err into an engine.DiskFullError that names the store and the space left
// when a write ran out of space (ENOSPC, or EDQUOT for a quota), or, with stepFailed, when a
// build step failed with the disk all but full.
func (e *Engine) explainFull(err error, stepFailed bool) error {
	if err == nil || errors.Is(err, engine.ErrDiskFull) {
		return err
	}
	free, ferr := e.free()
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) && !(stepFailed && ferr == nil && free < nearlyFull) {
		return err
	}
	// A failed step's error stays a BuildError (it names the layer and its log), with the
	// full disk as its cause.
	var be *engine.BuildError
	if errors.As(err, &be) {
		be.Err = &engine.DiskFullError{Path: e.store.Root(), Free: free, Err: be.Err}
		return err
	}
	return &engine.DiskFullError{Path: e.store.Root(), Free: free, Err: err}
}
