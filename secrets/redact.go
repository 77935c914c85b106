package secrets

import (
	"bytes"
	"io"
	"sort"
	"sync"
)

// maxPending is how much masked output without a line break is held before it is written
// anyway.
const maxPending = 64 << 10

// Redactor writes what a build step prints with every secret value replaced by "****", so a
// step that prints a secret never puts it in a log or on the screen. It holds back the bytes
// that could be the start of a value until it has seen enough to tell, so a value split
// across writes, lines or its own buffer's limit is still masked. Output goes out in whole
// lines where it can.
type Redactor struct {
	mu      sync.Mutex
	w       io.Writer
	values  [][]byte
	longest int
	in      []byte // not yet masked
	out     []byte // masked, not yet written
}

// NewRedactor masks values in what is written to it, and writes the rest to w.
func NewRedactor(w io.Writer, values []string) *Redactor {
	r := &Redactor{w: w}
	for _, v := range values {
		if len(v) >= 3 { // shorter values would mask ordinary text, and are not secret anyway
			r.values = append(r.values, []byte(v))
			r.longest = max(r.longest, len(v))
		}
	}
	// Longest first, so that a value containing another is masked whole.
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
	return r
}

func (r *Redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.in = append(r.in, p...)
	old := len(r.out)
	r.scan(false)
	// Only the new output can hold a line break: what was held had none.
	if i := bytes.LastIndexByte(r.out[old:], '\n'); i >= 0 {
		if err := r.emit(old + i + 1); err != nil {
			return 0, err
		}
	}
	if len(r.out) > maxPending {
		if err := r.emit(len(r.out)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// scan moves r.in to r.out, masking values. Unless final, it stops where fewer bytes than
// the longest value remain: they could begin a value whose end has not arrived.
func (r *Redactor) scan(final bool) {
	i := 0
	for i < len(r.in) {
		if !final && len(r.in)-i < r.longest {
			break
		}
		masked := false
		for _, v := range r.values {
			if bytes.HasPrefix(r.in[i:], v) {
				r.out = append(r.out, "****"...)
				i += len(v)
				masked = true
				break
			}
		}
		if !masked {
			r.out = append(r.out, r.in[i])
			i++
		}
	}
	if i > 0 {
		r.in = append(r.in[:0], r.in[i:]...)
	}
}

// emit writes the first n masked bytes.
func (r *Redactor) emit(n int) error {
	_, err := r.w.Write(r.out[:n])
	r.out = append(r.out[:0], r.out[n:]...)
	return err
}

// Flush writes what is left.
func (r *Redactor) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scan(true)
	if len(r.out) > 0 {
		_ = r.emit(len(r.out))
	}
}

// LineWriter calls f for every complete line written.
type LineWriter func(line string)

func (f LineWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		f(string(line))
	}
	return len(p), nil
}
