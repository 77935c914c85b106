package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestFrontStaysSmall: the front links none of strata-core's packages (the reason it exists:
// each linked package costs every cache hit its init and its pages), only the cache-hit path
// and the standard library without the network.
func TestFrontStaysSmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{
		"github.com/strata-build/strata/cmd/strata",
		"github.com/strata-build/strata/internal/companion",
		"github.com/strata-build/strata/internal/fasthit",
		"github.com/strata-build/strata/internal/home",
		"github.com/moby/sys/userns",
		"golang.org/x/sys/unix",
	}
	for _, p := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(p, "/")
		std := !strings.Contains(first, ".")
		if std && (p == "net" || strings.HasPrefix(p, "net/")) || !std && !slices.Contains(allowed, p) {
			t.Errorf("the strata front links %s", p)
		}
	}
}
