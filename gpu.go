package strata

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-build/strata/spec"
)

// gpuTypes are the accelerator types a build step can ask for, by their canonical names.
var gpuTypes = map[string]string{
	"any": "ANY", "t4": "T4", "l4": "L4", "a10g": "A10G", "a100": "A100", "a100-40gb": "A100-40GB",
	"a100-80gb": "A100-80GB", "l40s": "L40S", "h100": "H100", "h200": "H200", "b200": "B200",
}

// ParseGPU parses a GPU request such as "H100", "a10g:2" or "any". Types are case-insensitive.
func ParseGPU(s string) (*spec.GPU, error) {
	if s == "" {
		return nil, nil
	}
	name, count := s, 1
	if t, c, ok := strings.Cut(s, ":"); ok {
		n, err := strconv.Atoi(c)
		if err != nil {
			return nil, fmt.Errorf("invalid GPU count %q in %q: the count after ':' must be an integer, as in \"H100:2\"", c, s)
		}
		if n < 1 || n > 8 {
			return nil, fmt.Errorf("invalid GPU count %d in %q: ask for 1 to 8", n, s)
		}
		name, count = t, n
	}
	canon, ok := gpuTypes[strings.ToLower(name)]
	if !ok {
		known := make([]string, 0, len(gpuTypes))
		for _, v := range gpuTypes {
			known = append(known, v)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("unknown GPU type %q: use one of %s, optionally with a count (\"H100:2\")", name, strings.Join(known, ", "))
	}
	return &spec.GPU{Type: canon, Count: count}, nil
}
