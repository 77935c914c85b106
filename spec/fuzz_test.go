package spec

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-build/strata/internal/fuzzing"
)

// FuzzParseDockerfile: any Dockerfile text, with stages or as a bare instruction list,
// parses or fails with an error that names a line; it never panics or hangs. Seeds: the
// conformance corpus's Dockerfiles.
func FuzzParseDockerfile(f *testing.F) {
	files, _ := filepath.Glob("../testdata/conformance/*/Dockerfile")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, true)
		}
	}
	f.Add([]byte("RUN --mount=type=cache,target=/root/.cache,id=x,sharing=locked pip install a\nCOPY --chown=1:2 --chmod=0755 --exclude=*.pyc a b /c/\nADD --checksum=sha256:00 http://x/y /z\n"), false)
	f.Add([]byte("# escape=`\nFROM scratch AS a\nARG X=1\nRUN <<EOF\necho $X\nEOF\nONBUILD RUN true\nHEALTHCHECK --interval=1s CMD true\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, stages bool) {
		fuzzing.Within(t, data, func() { _, _ = ParseDockerfile(bytes.NewReader(data), stages) })
	})
}
