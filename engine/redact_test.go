package engine

import (
	"bytes"
	"testing"
)

func TestRedactorMasksValuesAcrossWrites(t *testing.T) {
	var out bytes.Buffer
	r := newRedactor(&out, []string{"hunter22", "ab", "hunter22-long"})
	for _, chunk := range []string{"token=hun", "ter22 and hunter22-long\nshort ab stays\n", "tail hunter", "22"} {
		r.Write([]byte(chunk))
	}
	r.Flush()
	want := "token=**** and ****\nshort ab stays\ntail ****"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}
