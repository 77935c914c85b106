// Package units parses sizes people write.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseBytes parses a size: bytes, or a number with a K, M, G or T suffix (powers of 1024;
// "KiB", "MB" and the like are read the same).
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		}
	}
	if shift > 0 {
		t = t[:len(t)-1]
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f < 0 || f*float64(int64(1)<<shift) > float64(1<<62) {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return int64(f * float64(int64(1)<<shift)), nil
}
