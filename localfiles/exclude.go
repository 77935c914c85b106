package localfiles

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/strata-build/strata/spec"
)

// ExcludeItems leaves out the files COPY --exclude names: patterns in dockerignore syntax, matched
// against the path in the build context and against the path under the destination.
func ExcludeItems(items []spec.CopyItem, patterns []string, dst string) ([]spec.CopyItem, error) {
	if len(patterns) == 0 {
		return items, nil
	}
	m, err := Patterns(patterns)
	if err != nil {
		return nil, fmt.Errorf("--exclude: %w", err)
	}
	var out []spec.CopyItem
	for _, it := range items {
		rel := strings.TrimPrefix(strings.TrimPrefix(it.Target, dst), "/")
		dir := fs.FileMode(it.File.Mode).IsDir()
		if m.Excludes(it.File.Path, dir) || (rel != "" && m.Excludes(rel, dir)) {
			continue
		}
		out = append(out, it)
	}
	return out, nil
}
