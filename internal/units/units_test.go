package units

import "testing"

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"100": 100, "1K": 1024, "500M": 500 << 20, "64G": 64 << 30, "2TiB": 2 << 40, "1.5GB": 3 << 29, " 7 ": 7} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1", "ten", "1P", "99999999T"} {
		if got, err := ParseBytes(in); err == nil {
			t.Errorf("%q: %d, want an error", in, got)
		}
	}
}
