package engine

import (
	"errors"
	"strings"
	"testing"
)

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

func TestLimitsFromEnv(t *testing.T) {
	if l, err := LimitsFromEnv(); err != nil || l != DefaultLimits {
		t.Errorf("no variables: %+v %v", l, err)
	}
	t.Setenv(EnvMaxLayerSize, "100M")
	t.Setenv(EnvMaxLayerFiles, "5000")
	if l, err := LimitsFromEnv(); err != nil || l.LayerBytes != 100<<20 || l.LayerFiles != 5000 {
		t.Errorf("%+v %v", l, err)
	}
	for k, v := range map[string]string{EnvMaxLayerSize: "big", EnvMaxLayerFiles: "0"} {
		t.Setenv(k, v)
		if _, err := LimitsFromEnv(); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
		t.Setenv(k, "1")
	}
	if err := error(&LimitError{What: "layer x", Past: "is big"}); !errors.Is(err, ErrLimit) || err.Error() != "layer x is big" {
		t.Errorf("%v", err)
	}
}
