package engine

import (
	"bytes"
	"io"
	"sort"
	"sync"
)

// redactor writes lines with every secret value replaced by "****", so that a build step
// that prints a secret never puts it in a log or on the screen.
type redactor struct {
	mu     sync.Mutex
	w      io.Writer
	values [][]byte
	buf    []byte
}

func newRedactor(w io.Writer, values []string) *redactor {
	r := &redactor{w: w}
	for _, v := range values {
		if len(v) >= 3 { // shorter values would mask ordinary text, and are not secret anyway
			r.values = append(r.values, []byte(v))
		}
	}
	// Longest first, so that a value containing another is masked whole.
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
	return r
}

func (r *redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	// Only whole lines are written, so a value split across writes is still seen.
	if i := bytes.LastIndexByte(r.buf, '\n'); i >= 0 {
		if _, err := r.w.Write(r.mask(r.buf[:i+1])); err != nil {
			return 0, err
		}
		r.buf = append(r.buf[:0], r.buf[i+1:]...)
	}
	if len(r.buf) > 64<<10 { // a long line without newline: flush what cannot hold a value's start
		r.flushLocked()
	}
	return len(p), nil
}

func (r *redactor) mask(b []byte) []byte {
	for _, v := range r.values {
		b = bytes.ReplaceAll(b, v, []byte("****"))
	}
	return b
}

// Flush writes what is left.
func (r *redactor) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
}

func (r *redactor) flushLocked() {
	if len(r.buf) > 0 {
		_, _ = r.w.Write(r.mask(r.buf))
		r.buf = r.buf[:0]
	}
}

// lineWriter calls f for every complete line written.
type lineWriter func(line string)

func (f lineWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		f(string(line))
	}
	return len(p), nil
}
