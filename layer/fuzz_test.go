package layer

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-build/strata/internal/fuzzing"
)

// FuzzExtract: any layer bytes extract or fail with an error, never panic, and never write
// outside the snapshot folder, as a layer and as a plain archive. Seeds: well-formed layers
// with every entry type, whiteouts and opaque folders, and the escapes the unit tests refuse.
func FuzzExtract(f *testing.F) {
	for _, entries := range [][]entry{
		{{name: "etc/", typ: tar.TypeDir}, {name: "etc/a", typ: tar.TypeReg, body: "a"}, {name: "etc/l", link: "a", typ: tar.TypeSymlink}, {name: "etc/h", link: "etc/a", typ: tar.TypeLink}},
		{{name: "d/.wh..wh..opq", typ: tar.TypeReg}, {name: "d/.wh.gone", typ: tar.TypeReg}, {name: "d/new", typ: tar.TypeReg, body: "n"}},
		{{name: "../evil", typ: tar.TypeReg, body: "x"}},
		{{name: "l", link: "../../..", typ: tar.TypeSymlink}, {name: "l/evil", typ: tar.TypeReg, body: "x"}},
		{{name: "h", link: "../outside", typ: tar.TypeLink}},
		{{name: "dev/null", typ: tar.TypeChar}, {name: "fifo", typ: tar.TypeFifo}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755}
			if e.typ == tar.TypeReg {
				h.Size = int64(len(e.body))
			}
			tw.WriteHeader(h)
			tw.Write([]byte(e.body))
		}
		tw.Close()
		f.Add(buf.Bytes(), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, plain bool) {
		root, err := os.MkdirTemp("", "fuzz-extract-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(root)
		snap := filepath.Join(root, "snap")
		if err := os.Mkdir(snap, 0o755); err != nil {
			t.Fatal(err)
		}
		fuzzing.Within(t, data, func() { _ = Extract(bytes.NewReader(data), snap, ExtractOptions{Plain: plain}) })
		entries, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "snap" {
			t.Fatalf("the layer wrote outside its folder: %v", entries)
		}
	})
}
