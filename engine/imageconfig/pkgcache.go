package imageconfig

import (
	"slices"
	"strings"
)

// PackageCacheRoot is where a step sees the package caches it is lent. The folders are mount
// points that exist only while the step runs: nothing of them enters the layer.
const PackageCacheRoot = "/.strata-cache"

// PackageCache is a package manager's download cache that an engine keeps and lends to the
// steps of the layers that name it (spec.Layer Caches), as a BuildKit cache mount. The tools
// find it through their environment.
type PackageCache struct {
	// env points the tool at the cache folder dir.
	env func(dir string) []string
	// unset are variables the image may set that would turn the cache off.
	unset []string
	// own are variables with which a step configures the tool itself: when one has a value,
	// the step keeps its own configuration and is lent no cache.
	own []string
	// Locked caches are used by one step at a time (BuildKit's sharing=locked); the others
	// lock their own entries.
	Locked bool
}

var packageCaches = map[string]PackageCache{
	// pip's http and wheel caches: safe for concurrent pips. debian_slim sets
	// PIP_NO_CACHE_DIR so that other pip runs keep no cache in the image.
	"pip": {env: func(d string) []string { return []string{"PIP_CACHE_DIR=" + d} }, unset: []string{"PIP_NO_CACHE_DIR"}},
	// uv locks its cache itself; it cannot hard-link across the mount, so it copies.
	"uv": {env: func(d string) []string { return []string{"UV_CACHE_DIR=" + d, "UV_LINK_MODE=copy"} }, unset: []string{"UV_NO_CACHE"}},
	// poetry's artifact cache (its virtualenvs would live here too, but the method turns
	// virtualenv creation off).
	"poetry": {env: func(d string) []string { return []string{"POETRY_CACHE_DIR=" + d} }, unset: []string{"POETRY_NO_CACHE"}},
	// micromamba's package folder, copied (not linked) into the environment.
	"micromamba": {env: func(d string) []string { return []string{"CONDA_PKGS_DIRS=" + d, "CONDA_ALWAYS_COPY=true"} }, Locked: true},
	// apt is pointed at the local engine's caching proxy by a configuration file in dir; a
	// step with its own proxy or configuration file keeps it.
	"apt": {env: func(d string) []string { return []string{"APT_CONFIG=" + d + "/apt.conf"} },
		own: []string{"http_proxy", "HTTP_PROXY", "APT_CONFIG"}},
}

// LookupPackageCache returns the package cache of that name.
func LookupPackageCache(name string) (PackageCache, bool) {
	pc, ok := packageCaches[name]
	return pc, ok
}

// PackageCacheNames are the package caches strata keeps, sorted.
func PackageCacheNames() []string {
	var names []string
	for n := range packageCaches {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Owned says whether the step's environment configures the tool itself (see own).
func (pc PackageCache) Owned(env []string) bool {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); v != "" && slices.Contains(pc.own, k) {
			return true
		}
	}
	return false
}

// Lend returns a step's environment with the cache, mounted at target, turned on: the
// variables that would turn it off removed, those that point the tool at it set.
func (pc PackageCache) Lend(env []string, target string) []string {
	for _, k := range pc.unset {
		env = UnsetEnv(env, k)
	}
	for _, kv := range pc.env(target) {
		k, v, _ := strings.Cut(kv, "=")
		env = SetEnv(env, k, v)
	}
	return env
}
