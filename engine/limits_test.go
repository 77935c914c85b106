package engine

import (
	"errors"
	"strings"
	"testing"
)

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
