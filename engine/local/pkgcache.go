package local

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/engine/imageconfig"
)

// lendCaches gives a RUN step the package caches of its layer: the mounts, and the
// environment with the variables that point the tools at them. A step that runs as another
// user than root, or a build with the caches turned off, gets none: it downloads as it would
// without strata.
func (x *executor) lendCaches(env []string) ([]container.Mount, []string, func(), error) {
	if x.e.noPackageCaches || len(x.layer.Caches) == 0 {
		return nil, env, func() {}, nil
	}
	if u := x.cfg.Config.User; u != "" {
		uid, _, err := container.LookupUser(x.rootfs, u)
		if err != nil || uid != 0 {
			return nil, env, func() {}, nil
		}
	}
	var mounts []container.Mount
	var releases []func()
	release := func() {
		for _, r := range releases {
			r()
		}
	}
	for _, name := range x.layer.Caches {
		pc, ok := imageconfig.LookupPackageCache(name)
		if !ok {
			release()
			return nil, nil, nil, fmt.Errorf("layer %s names the package cache %q, which this engine does not keep (it keeps %s)", x.layer.Key, name, strings.Join(imageconfig.PackageCacheNames(), ", "))
		}
		if pc.Owned(env) {
			continue // the user's own proxy or configuration file
		}
		target := imageconfig.PackageCacheRoot + "/" + name
		var src string
		if name == "apt" {
			// Not a folder of debs, which steps would empty (apt-get clean) and lock, but a
			// proxy that keeps them; the step gets only the file that names it.
			dir, err := x.aptConfig()
			if err != nil {
				release()
				return nil, nil, nil, err
			}
			src = dir
		} else {
			dir, err := x.e.packageCacheDir(name)
			if err != nil {
				release()
				return nil, nil, nil, err
			}
			src = dir
			if pc.Locked {
				lock, err := x.e.store.Lock("package-cache-" + name)
				if err != nil {
					release()
					return nil, nil, nil, err
				}
				releases = append(releases, lock.Unlock)
			}
		}
		mounts = append(mounts, container.Mount{Source: src, Target: target, ReadOnly: name == "apt"})
		env = pc.Lend(env, target)
	}
	if len(mounts) > 0 {
		var names []string
		for _, m := range mounts {
			names = append(names, path.Base(m.Target))
		}
		fmt.Fprintf(x.log, "# package caches lent to this step: %s\n", strings.Join(names, ", "))
	}
	return mounts, env, release, nil
}

// packageCacheDir is the host folder of a package cache, made on first use.
func (e *Engine) packageCacheDir(name string) (string, error) {
	dir := e.store.Path("caches", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("package cache %s: %w", name, err)
	}
	return dir, nil
}

// aptConfig writes the apt configuration that sends a step's apt through strata's caching
// proxy, in a folder of the step's work folder, and returns the folder.
func (x *executor) aptConfig() (string, error) {
	url, err := x.e.aptProxyURL()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(x.work.Path, "apt-cache")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Read before /etc/apt/apt.conf.d, so an image's own proxy settings win.
	conf := fmt.Sprintf("Acquire::http::Proxy %q;\n", url)
	return dir, os.WriteFile(filepath.Join(dir, "apt.conf"), []byte(conf), 0o644)
}
