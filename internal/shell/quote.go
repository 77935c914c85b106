// Package shell quotes words for POSIX shells, as Python's shlex.quote and shlex.join do.
package shell

import (
	"regexp"
	"strings"
)

var unsafe = regexp.MustCompile(`[^\w@%+=:,./-]`)

// Quote returns s quoted so that a POSIX shell reads it as one word. Safe words are returned
// unchanged, exactly as shlex.quote does, so generated commands match Modal's.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if !unsafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// Join quotes every word and joins them with spaces.
func Join(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}
