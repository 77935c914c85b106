package local

import (
	"slices"
	"strings"
	"testing"
)

// The bootstrap's environment is fixed: the caller's variables that could change what the
// maintainer scripts write stay out; its proxies come in.
func TestBootstrapEnvIsTheSameForEveryCaller(t *testing.T) {
	t.Setenv("PYTHONDONTWRITEBYTECODE", "")
	t.Setenv("PYTHONHASHSEED", "7")
	t.Setenv("LANG", "de_DE.UTF-8")
	t.Setenv("HOME", "/home/someone")
	t.Setenv("http_proxy", "http://proxy.example:3128")
	env := bootstrapEnv()
	for _, want := range []string{"PYTHONDONTWRITEBYTECODE=1", "SOURCE_DATE_EPOCH=1767225600", "HOME=/root", "http_proxy=http://proxy.example:3128"} {
		if !slices.Contains(env, want) {
			t.Errorf("no %s in %v", want, env)
		}
	}
	for _, e := range env {
		if strings.HasPrefix(e, "PYTHONHASHSEED=") || strings.HasPrefix(e, "LANG=") || e == "PYTHONDONTWRITEBYTECODE=" {
			t.Errorf("the caller's %s reached the bootstrap", e)
		}
	}
}
