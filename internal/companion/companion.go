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
		return "", fmt.Errorf("%s is not on PATH", name)
	}
	return "", fmt.Errorf("%s is not installed beside %s or on PATH", name, self)
}

// Dir is the folder of the running program, where its companions belong; "." if unknown.
func Dir() string {
	self, err := os.Executable()
	if err != nil {
		return "."
	}
	return filepath.Dir(self)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
