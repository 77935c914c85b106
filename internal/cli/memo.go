package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/fasthit"
	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// memoKey is the fast-hit key of this process's command line (fasthit.Key), taken before a
// rootless strata runs itself again in a user namespace; "" if the line is not one the
// cache-hit path answers.
var memoKey string

// keepMemoKey takes the command line's fast-hit key, before rootless.Enter: a rootless
// strata's second run, in its user namespace, finds its first run's in the environment.
func keepMemoKey(args []string, reentered bool) {
	if _, ok := fasthit.ParseBuild(args); !ok || os.Getenv(fasthit.DisableEnv) != "" {
		return
	}
	if k := os.Getenv(fasthit.KeyEnv); reentered && k != "" {
		memoKey = k
	} else {
		memoKey = fasthit.Key(args)
		os.Setenv(fasthit.KeyEnv, memoKey)
	}
}

// writeMemo leaves the memo with which the next run of the same build answers from the
// cache-hit path (package fasthit), when the build's inputs are all ones the memo holds: a
// spec file and no flags but -f, -t and --progress (keepMemoKey), no forced build or
// registry cache, and a plan that reads nothing but the spec (memoizable). specDigest is
// the digest of the spec as it was parsed. A memo that cannot be written costs the next run
// its fast path, nothing else.
func writeMemo(cmd *cobra.Command, specDigest string, built *strata.Built) {
	if memoKey == "" || built.Plan == nil || !memoizable(built.Plan) {
		return
	}
	for _, env := range []string{"STRATA_FORCE_BUILD", "STRATA_IGNORE_CACHE", "STRATA_CACHE_REPO"} {
		if os.Getenv(env) != "" {
			return
		}
	}
	if e := os.Getenv("STRATA_ENGINE"); e != "" && e != "local" {
		return
	}
	m, err := memoOf(store.At(strata.Home()), specDigest, built)
	if err == nil {
		err = fasthit.Write(strata.Home(), memoKey, m)
	}
	if err != nil && os.Getenv("STRATA_DEBUG") != "" {
		cmd.PrintErrln("strata: no fast-hit memo:", err)
	}
}

// memoMethods are the methods whose layers' keys come from the spec, the environment and
// strata alone: resolving them reads no file. Any other method (a Dockerfile, a pyproject,
// requirements, local files, an image) is not memoized, whatever its plan shows.
var memoMethods = []string{"debian_slim", "from_scratch", "apt_install", "pip_install", "run_commands",
	"env", "workdir", "entrypoint", "cmd", "shell"}

// memoizable says whether a plan's keys come from nothing but the spec, the environment and
// strata: only memoMethods, and none of them with local files, registry images, remote
// sources, functions, volumes, secrets or a forced build; no stages or mounts.
func memoizable(p *strata.Plan) bool {
	if len(p.Stages) > 0 || len(p.Mounts) > 0 {
		return false
	}
	for _, l := range p.Layers {
		if !slices.Contains(memoMethods, l.Method) || l.ForceBuild || l.Function != nil || len(l.Context) > 0 ||
			len(l.Images) > 0 || len(l.Remote) > 0 || len(l.Volumes) > 0 || len(l.Secrets) > 0 ||
			(l.Base != nil && l.Base.Kind == spec.BaseRegistry) {
			return false
		}
	}
	return true
}

// memoOf is the memo of a build, read back from the store as the build left it. The image
// record and cache entries are kept by their bytes, which are the bytes read here; blobs and
// snapshots by identity. The store's id maps, and for a rootless strata what its user
// namespace is made from, are kept too: a full build refuses a store or a host where they
// changed, and so must the memo.
func memoOf(s *store.Store, specDigest string, built *strata.Built) (*fasthit.Memo, error) {
	m := &fasthit.Memo{Spec: specDigest, Name: built.Name, Manifest: built.Manifest, Warnings: built.Plan.Warnings}
	var err error
	if m.Exe, err = fasthit.ExeIdent(); err != nil {
		return nil, err
	}
	var img store.Image
	if err := m.AddRead(s.ImagePath(built.Name), &img); err != nil {
		return nil, err
	}
	var keys []string
	for _, l := range built.Plan.Layers {
		keys = append(keys, l.Key)
	}
	if img.Manifest != built.Manifest || !slices.Equal(img.Keys, keys) || img.Mounts != "" {
		return nil, errors.New("another build named the image since")
	}
	for _, blob := range []string{img.Manifest, img.Config} {
		if err := m.AddIdent(s.BlobPath(blob)); err != nil {
			return nil, err
		}
	}
	for _, l := range built.Plan.Layers {
		var rec store.Record
		if err := m.AddRead(s.RecordPath(l.Key), &rec); err != nil {
			return nil, err
		}
		var size int64
		for _, d := range rec.Layers {
			p, ok := s.LayerPath(d)
			if !ok {
				return nil, fmt.Errorf("layer %s of %s: %w", d.Digest, l.Key, fs.ErrNotExist)
			}
			if err := m.AddIdent(p); err != nil {
				return nil, err
			}
			size += d.Size
		}
		m.Layers = append(m.Layers, fasthit.Layer{Method: l.Method, Title: l.Title, Key: l.Key, Size: size})
	}
	if err := m.AddBytes(s.Path("idmaps")); err != nil {
		return nil, err
	}
	if rootless.Active() {
		for _, f := range []string{"/etc/subuid", "/etc/subgid", "/proc/sys/user/max_user_namespaces", "/proc/sys/kernel/unprivileged_userns_clone"} {
			if err := m.AddBytes(f); err != nil {
				return nil, err
			}
		}
		for _, tool := range []string{"newuidmap", "newgidmap"} {
			p, err := exec.LookPath(tool)
			if err != nil {
				return nil, err
			}
			if err := m.AddIdent(p); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
