package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"math/rand"
	"testing"
)

// The cache key writes a layer's files itself, for speed; it must write exactly the bytes
// encoding/json writes for them, or every cached layer with local files would miss.
func sameAsEncodingJSON(t *testing.T, files []ContextFile) {
	t.Helper()
	want, err := json.Marshal(files)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(contextList(files))
	if err != nil {
		t.Fatal(err)
	}
	if raw := contextList(files).appendJSON(nil); files != nil && !bytes.Equal(raw, got) {
		t.Fatalf("contextList writes %q, which encoding/json compacts to %q", raw, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("contextList encodes\n%q\nencoding/json\n%q", got, want)
	}
}

func TestContextListEncodesAsEncodingJSON(t *testing.T) {
	tricky := []string{
		"", "plain/path.txt", `quo"te`, `back\slash`, "<script>&amp;</script>", "tab\tnew\nline\rcr",
		"\b\f\x00\x01\x1f\x7f", "caf\u00e9 \u65e5\u672c", "\u2028\u2029", "bad\xffutf8\xc3", "\xed\xa0\x80",
		"emoji \U0001F600", "trailing\\",
	}
	var files []ContextFile
	for i, s := range tricky {
		files = append(files, ContextFile{Path: s, Mode: uint32(i) << 28, Link: tricky[(i+3)%len(tricky)], Digest: s})
	}
	files = append(files, ContextFile{Path: "d", Mode: 0o20000000755}, ContextFile{Path: "f", Mode: 0o644, Digest: "sha256:00"})
	sameAsEncodingJSON(t, files)
	sameAsEncodingJSON(t, nil)

	r := rand.New(rand.NewSource(1))
	alphabet := []rune{'a', '/', '"', '\\', '<', '>', '&', '\n', 0, 0x1f, 0x7f, 0xe9, 0x2028, 0x2029, 0x1F600, 0xfffd}
	for n := 0; n < 2000; n++ {
		var b []byte
		for k := r.Intn(12); k > 0; k-- {
			if r.Intn(8) == 0 {
				b = append(b, byte(0x80+r.Intn(0x80))) // a stray byte: invalid UTF-8
			} else {
				b = append(b, string(alphabet[r.Intn(len(alphabet))])...)
			}
		}
		sameAsEncodingJSON(t, []ContextFile{{Path: string(b), Mode: r.Uint32(), Link: string(b[len(b)/2:]), Digest: string(b[:len(b)/2])}})
	}
}

func FuzzContextListJSON(f *testing.F) {
	f.Add("a/b", "", "sha256:00", uint32(0o644))
	f.Add("<&>", "\u2028", "\xff", uint32(1<<31))
	f.Fuzz(func(t *testing.T, path, link, digest string, mode uint32) {
		sameAsEncodingJSON(t, []ContextFile{{Path: path, Mode: mode, Link: link, Digest: digest}, {Path: link, Digest: path}})
	})
}

// The key is the sha256 of keyInput's encoding/json bytes, however it is computed.
func TestKeyIsTheHashOfTheEncodingJSONBytes(t *testing.T) {
	epoch := int64(1700000000)
	files := []ContextFile{{Path: "a<b>", Mode: 0o644, Digest: "sha256:00"}, {Path: "l", Mode: 0o1000000777, Link: "\u2028&"}}
	for _, in := range []keyInput{
		{keyHead: keyHead{Builder: "b", Parent: "p"}},
		{keyHead: keyHead{Builder: "b", Parent: "p", Escape: "`", Base: &Base{Ref: "r"}, Instructions: []Instruction{{Op: "RUN", Args: []string{"<&>"}}}}, Context: files},
		{keyHead: keyHead{Builder: "b"}, Context: files, keyTail: keyTail{Env: []KV{{Key: "K", Value: "v"}}, Secrets: []string{"s"}, Epoch: &epoch, GPU: &GPU{Type: "h100", Count: 1}}},
		{keyHead: keyHead{Builder: "b"}, keyTail: keyTail{Secrets: []string{"s"}}},
	} {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := in.sum(), sha256.Sum256(b); got != want {
			t.Errorf("the key of %s is not its sha256", b)
		}
	}
}
