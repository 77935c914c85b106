package cli

import (
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/fasthit"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// memoKey is the fast-hit key of this process's command line (fasthit.Key), taken before a
// rootless strata runs itself again in a user namespace.
var memoKey string

// writeMemo leaves the memo with which the next run of the same build answers from the
// cache-hit path (package fasthit), when the build's inputs are all ones the memo can hold:
// a spec file and no flags but -f, -t and --progress, no forced or registry cache, and a plan
// that reads no local files, registries or remote sources. A memo that cannot be written
// costs the next run its fast path, nothing else.
func writeMemo(cmd *cobra.Command, args []string, file string, built *strata.Built) {
	if memoKey == "" || len(args) > 0 || file == "-" || built.Plan == nil || !memoizable(built.Plan) {
		return
	}
	plain := true
	cmd.Flags().Visit(func(f *pflag.Flag) {
		plain = plain && (f.Name == "file" || f.Name == "tag" || f.Name == "progress")
	})
	for _, env := range []string{"STRATA_FORCE_BUILD", "STRATA_IGNORE_CACHE", "STRATA_CACHE_REPO"} {
		plain = plain && os.Getenv(env) == ""
	}
	if e := os.Getenv("STRATA_ENGINE"); !plain || (e != "" && e != "local") {
		return
	}
	m, err := memoOf(store.At(strata.Home()), file, built)
	if err == nil {
		err = fasthit.Write(strata.Home(), memoKey, m)
	}
	if err != nil && os.Getenv("STRATA_DEBUG") != "" {
		cmd.PrintErrln("strata: no fast-hit memo:", err)
	}
}

// memoizable says whether a plan's keys come from nothing but the spec, the environment
// and strata itself: no local files, registry images, remote sources, stages, mounts,
// functions, secrets or forced layers.
func memoizable(p *strata.Plan) bool {
	if len(p.Stages) > 0 || len(p.Mounts) > 0 {
		return false
	}
	for _, l := range p.Layers {
		if l.ForceBuild || l.Function != nil || len(l.Context) > 0 || len(l.Images) > 0 || len(l.Remote) > 0 ||
			len(l.Volumes) > 0 || len(l.Secrets) > 0 || (l.Base != nil && l.Base.Kind == spec.BaseRegistry) {
			return false
		}
	}
	return true
}

// memoOf is the memo of a build: the spec file's digest, the executable, and the store
// files the image is made of, read back from the store as the build left them.
func memoOf(s *store.Store, file string, built *strata.Built) (*fasthit.Memo, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	m := &fasthit.Memo{Name: built.Name, Manifest: built.Manifest, Warnings: built.Plan.Warnings}
	if m.Spec, err = fasthit.FileDigest(abs); err != nil {
		return nil, err
	}
	if m.Exe, err = fasthit.ExeIdent(); err != nil {
		return nil, err
	}
	img, err := s.Image(built.Name)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, l := range built.Plan.Layers {
		keys = append(keys, l.Key)
	}
	if img.Manifest != built.Manifest || !slices.Equal(img.Keys, keys) {
		return nil, os.ErrExist // renamed by another build since
	}
	paths := []string{s.ImagePath(img.Name), s.BlobPath(img.Manifest), s.BlobPath(img.Config)}
	for _, l := range built.Plan.Layers {
		rec, err := s.Record(l.Key)
		if err != nil {
			return nil, err
		}
		paths = append(paths, s.RecordPath(l.Key))
		var size int64
		for _, d := range rec.Layers {
			p, ok := s.LayerPath(d)
			if !ok {
				return nil, os.ErrNotExist
			}
			paths = append(paths, p)
			size += d.Size
		}
		m.Layers = append(m.Layers, fasthit.Layer{Method: l.Method, Title: l.Title, Key: l.Key, Size: size})
	}
	for _, p := range paths {
		id, err := fasthit.IdentOf(p)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, fasthit.File{Path: p, Ident: id})
	}
	return m, nil
}

// keepMemoKey takes the command line's fast-hit key, before rootless.Enter: a rootless
// strata's second run, in its user namespace, finds its first run's in the environment.
func keepMemoKey(args []string, reentered bool) {
	if len(args) == 0 || args[0] != "build" || os.Getenv(fasthit.DisableEnv) != "" {
		return
	}
	if k := os.Getenv(fasthit.KeyEnv); reentered && k != "" {
		memoKey = k
	} else {
		memoKey = fasthit.Key(args)
		os.Setenv(fasthit.KeyEnv, memoKey)
	}
}
