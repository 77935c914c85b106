// Package home says where strata keeps its store. It is its own package, with nothing
// heavy beneath it, because the strata front (cmd/strata, the cache-hit path) links it.
package home

import (
	"os"
	"path"

	"github.com/moby/sys/userns"
)

// Dir is strata's state folder: $STRATA_HOME, else /var/lib/strata for root, else (an
// ordinary user, rootless, or root of a user namespace) Data().
func Dir() string {
	if h := os.Getenv("STRATA_HOME"); h != "" {
		return h
	}
	if os.Geteuid() == 0 && !userns.RunningInUserNS() {
		return "/var/lib/strata"
	}
	return Data()
}

// Data is where an ordinary user's strata keeps its store: $XDG_DATA_HOME/strata, else
// ~/.local/share/strata.
func Data() string {
	if d := os.Getenv("XDG_DATA_HOME"); path.IsAbs(d) {
		return path.Join(d, "strata")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return path.Join(home, ".local", "share", "strata")
	}
	return path.Join(os.TempDir(), "strata")
}
