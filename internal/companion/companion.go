// Package companion finds the strata command's other executables: strata-core, the whole
// command, which the strata front runs for everything but a cache hit, and strata-ENGINE,
// which strata-core runs for another engine. Each is looked for beside the running program,
// then on PATH, as git finds its git-* commands and docker its CLI plugins. It imports
// nothing heavy: the front links it.
package companion

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Find is the path of the executable name, beside the running program or on PATH.
func Find(name string) (string, error) {
	self, err := os.Executable()
	if err == nil {
		if p := filepath.Join(filepath.Dir(self), name); isExecutable(p) {
			return p, nil
		}
	}
	p, lerr := exec.LookPath(name)
	if lerr == nil {
		return p, nil
	}
	if err != nil {
		return "", fmt.Errorf("no executable %s on PATH", name)
	}
	return "", fmt.Errorf("no executable %s beside %s or on PATH", name, self)
}

// Install is the command that installs the packages pkgs of a strata checkout (./cmd/...)
// beside the running program, its folder quoted for the shell where it needs to be.
func Install(pkgs string) string {
	dir := "/usr/local/bin"
	if self, err := os.Executable(); err == nil {
		dir = filepath.Dir(self)
	}
	if strings.Trim(dir, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+") != "" {
		dir = "'" + strings.ReplaceAll(dir, "'", `'\''`) + "'"
	}
	return "CGO_ENABLED=0 go build -o " + dir + "/ " + pkgs
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
