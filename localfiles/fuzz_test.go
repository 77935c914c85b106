package localfiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata/internal/fuzzing"
)

// FuzzPatterns: any dockerignore file's patterns compile or fail with an error, and match any
// path without panicking. Seeds: the conformance corpus's .dockerignore files.
func FuzzPatterns(f *testing.F) {
	files, _ := filepath.Glob("../testdata/conformance/*/*dockerignore")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b), "a/b/c.txt")
		}
	}
	f.Add("*.pyc\n!keep.pyc\n**/node_modules\n/build/**\n[a-\n", "build/x/node_modules/y")
	f.Add("\\\n!\n**\n", "")
	f.Fuzz(func(t *testing.T, file, path string) {
		var patterns []string
		for _, l := range strings.Split(file, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				patterns = append(patterns, l)
			}
		}
		fuzzing.Within(t, file, func() {
			if m, err := Patterns(patterns); err == nil {
				m.Excludes(path, false)
				m.Excludes(path, true)
			}
		})
	})
}
