package secrets

import (
	"bytes"
	"strings"
	"testing"
)

func TestRedactorMasksValuesAcrossWrites(t *testing.T) {
	var out bytes.Buffer
	r := NewRedactor(&out, []string{"hunter22", "ab", "hunter22-long"})
	for _, chunk := range []string{"token=hun", "ter22 and hunter22-long\nshort ab stays\n", "tail hunter", "22"} {
		r.Write([]byte(chunk))
	}
	r.Flush()
	want := "token=**** and ****\nshort ab stays\ntail ****"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// TestRedactorMasksValuesStraddlingTheFlushLimit places a value across the point where a
// long line without breaks is written out anyway, at every offset, in writes of several
// sizes: no part of the output may hold it.
func TestRedactorMasksValuesStraddlingTheFlushLimit(t *testing.T) {
	secret := "s3cr3t-value-0123456789"
	for offset := -len(secret); offset <= 1; offset++ {
		for _, chunk := range []int{1, 7, 4096, 1 << 20} {
			var text bytes.Buffer
			text.WriteString(strings.Repeat("x", maxPending+offset))
			text.WriteString(secret)
			text.WriteString(strings.Repeat("y", 100))
			var out bytes.Buffer
			r := NewRedactor(&out, []string{secret})
			data := text.Bytes()
			for len(data) > 0 {
				n := min(chunk, len(data))
				r.Write(data[:n])
				data = data[n:]
			}
			r.Flush()
			if bytes.Contains(out.Bytes(), []byte(secret)) {
				t.Fatalf("offset %d, writes of %d: the value reached the output", offset, chunk)
			}
			if want := text.Len() - len(secret) + 4; out.Len() != want {
				t.Fatalf("offset %d, writes of %d: %d bytes out, want %d", offset, chunk, out.Len(), want)
			}
		}
	}
}

// TestRedactorMasksMultiLineValues: keys and service-account JSON span lines.
func TestRedactorMasksMultiLineValues(t *testing.T) {
	key := "-----BEGIN KEY-----\nabc123\n-----END KEY-----"
	var out bytes.Buffer
	r := NewRedactor(&out, []string{key})
	for _, line := range strings.SplitAfter("before\n"+key+"\nafter\n", "\n") {
		r.Write([]byte(line))
	}
	r.Flush()
	if got := out.String(); got != "before\n****\nafter\n" {
		t.Errorf("got %q", got)
	}
}
