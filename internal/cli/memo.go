package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/fasthit"
	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/localfiles"
	"github.com/strata-build/strata/spec"
	"github.com/strata-build/strata/store"
)

// memoKey is the fast-hit key of this process's command line (fasthit.Key), which the strata
// front computed and passed in fasthit.KeyEnv (a rootless strata-core's second run, in its
// user namespace, finds it there too); "" if the line is not one the cache-hit path answers,
// or strata-core was not run by the front, which alone reads memos.
var memoKey string

// started is when this process started: a local file changed since shortly before it is one
// a memo cannot vouch for (see localEntries).
var started = time.Now()

// keepMemoKey takes the command line's fast-hit key from the environment, before Main
// removes it from there; reentered says this is a rootless strata-core's second run, in its
// user namespace, which takes the key its first run was given.
func keepMemoKey(args []string, reentered bool) {
	if _, ok := fasthit.Parse(args); ok && os.Getenv(fasthit.DisableEnv) == "" {
		memoKey = fasthit.TakeKey(reentered)
	}
}

// writeMemo leaves the memo with which the next run of the same build answers from the
// cache-hit path (package fasthit), when the build's inputs are all ones the memo holds: a
// spec file and no flags but -f, -t and --progress (keepMemoKey), no forced build or
// registry cache, and a plan that reads nothing but the spec and the local files it copies
// (memoizable). specDigest is the digest of the spec as it was parsed. A memo that cannot
// be written costs the next run its fast path, nothing else.
func writeMemo(cmd *cobra.Command, specDigest string, built *strata.Built) {
	if !memoWanted(built.Plan) {
		return
	}
	m, err := memoOf(store.At(strata.Home()), specDigest, built)
	leaveMemo(cmd, m, err)
}

// writeSpecMemo leaves the memo with which the next `strata spec` of the same line prints
// output again from the cache-hit path, under writeMemo's conditions.
func writeSpecMemo(cmd *cobra.Command, specDigest string, plan *strata.Plan, output string) {
	if !memoWanted(plan) {
		return
	}
	m, err := newMemo("spec", specDigest, plan)
	if err == nil {
		m.Output = output
	}
	leaveMemo(cmd, m, err)
}

// memoWanted says whether this run's line has a key and its plan can be memoized.
func memoWanted(p *strata.Plan) bool {
	if memoKey == "" || p == nil || !memoizable(p) {
		return false
	}
	for _, env := range []string{"STRATA_FORCE_BUILD", "STRATA_IGNORE_CACHE", "STRATA_CACHE_REPO"} {
		if os.Getenv(env) != "" {
			return false
		}
	}
	e := os.Getenv("STRATA_ENGINE")
	return e == "" || e == "local"
}

func leaveMemo(cmd *cobra.Command, m *fasthit.Memo, err error) {
	if err == nil {
		err = fasthit.Write(strata.Home(), memoKey, m)
	}
	if err != nil && os.Getenv("STRATA_DEBUG") != "" {
		cmd.PrintErrln("strata: no fast-hit memo:", err)
	}
}

// newMemo starts the memo of a command: the spec, the executable, the plan's layers and the
// local files it copies.
func newMemo(command, specDigest string, p *strata.Plan) (*fasthit.Memo, error) {
	m := &fasthit.Memo{Command: command, Spec: specDigest, Warnings: p.Warnings}
	var err error
	if m.Exe, err = fasthit.ExeIdent(); err != nil {
		return nil, err
	}
	if m.Local, err = localEntries(p, started); err != nil {
		return nil, err
	}
	for _, l := range p.Layers {
		m.Layers = append(m.Layers, fasthit.Layer{Method: l.Method, Title: l.Title, Key: l.Key})
	}
	return m, nil
}

// memoMethods are the methods whose layers' keys come from the spec, the environment and
// strata alone: resolving them reads no file. Any other method (a Dockerfile, a pyproject,
// requirements, an image) is not memoized, whatever its plan shows.
var memoMethods = []string{"debian_slim", "from_scratch", "apt_install", "pip_install", "run_commands",
	"env", "workdir", "entrypoint", "cmd", "shell"}

// localMethods copy local files, which their layers list whole (see localEntries): their
// keys come from those files too, and resolving them reads nothing else.
var localMethods = []string{"add_local_dir", "add_local_file"}

// memoizable says whether a plan's keys come from nothing but the spec, the environment,
// strata and the local files it copies: only memoMethods and localMethods, none with
// registry images, remote sources, functions, volumes, secrets or a forced build, and local
// files only in localMethods; no stages or mounts.
func memoizable(p *strata.Plan) bool {
	if len(p.Stages) > 0 || len(p.Mounts) > 0 {
		return false
	}
	for _, l := range p.Layers {
		local := slices.Contains(localMethods, l.Method)
		if !(local || slices.Contains(memoMethods, l.Method)) || (len(l.Context) > 0 && !local) ||
			l.ForceBuild || l.Function != nil || len(l.Images) > 0 || len(l.Remote) > 0 || len(l.Volumes) > 0 ||
			len(l.Secrets) > 0 || (l.Base != nil && l.Base.Kind == spec.BaseRegistry) {
			return false
		}
	}
	return true
}

// localEntries lists the local files and folders a plan copies, as its resolve listed them
// (the walk's own lstat, taken before the file was read or the folder listed), for the
// memo. Each layer's listing must be whole: one source, listed first (a folder, or the one
// file, not a link), and every other entry in a folder it lists, so that a file made
// anywhere changes a listed folder's times. A listing with a folder left out (a folder
// copied to /, whose root is not an entry; a "!" ignore pattern, which has the walk go
// through excluded folders it does not list), an entry changed since shortly before the
// process started, or a file system whose lstat may answer from a cache (network and FUSE
// file systems: localFileSystems) cannot be vouched for. "Shortly" is localfiles.RacyWindow:
// a change in the same tick of the file system's clock as the one the listing saw leaves
// the times as they were (git's "racily clean" entries), and the digest cache keeps the
// same rule.
func localEntries(p *strata.Plan, since time.Time) ([]fasthit.Entry, error) {
	var entries []fasthit.Entry
	racy := since.Add(-localfiles.RacyWindow).UnixNano()
	for _, l := range p.Layers {
		if !slices.Contains(localMethods, l.Method) {
			continue
		}
		if len(l.Sources) != 1 || len(l.Context) == 0 || l.Context[0].Source != filepath.Clean(l.Sources[0].Local) {
			return nil, fmt.Errorf("%s: the listing does not start at its one source", l.Method)
		}
		if slices.ContainsFunc(l.Sources[0].Ignore, func(p string) bool { return strings.HasPrefix(strings.TrimSpace(p), "!") }) {
			return nil, fmt.Errorf("%s: a \"!\" ignore pattern walks folders that are not listed", l.Method)
		}
		root := l.Context[0].Source
		var fs unix.Statfs_t
		if err := unix.Statfs(root, &fs); err != nil || !slices.Contains(localFileSystems, int64(fs.Type)) {
			return nil, fmt.Errorf("%s: %s is not on a local file system strata knows (%x)", l.Method, root, fs.Type)
		}
		folders := map[string]bool{}
		for i, f := range l.Context {
			st, ok := statOf(f)
			if !ok {
				return nil, fmt.Errorf("%s: no listing of %s", l.Method, f.Source)
			}
			if i == 0 && st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
				// The resolve checked what the link points to, which the memo would not see.
				return nil, fmt.Errorf("%s: %s is a link", l.Method, root)
			}
			if i > 0 && (!strings.HasPrefix(f.Source, root+"/") || !folders[filepath.Dir(f.Source)]) {
				return nil, fmt.Errorf("%s: %s is in a folder the listing leaves out", l.Method, f.Source)
			}
			if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				folders[f.Source] = true
			}
			id := fasthit.IdentOfStat(st)
			if id.Mtime >= racy || id.Ctime >= racy {
				return nil, fmt.Errorf("%s changed %s before the resolve", f.Source, localfiles.RacyWindow)
			}
			entries = append(entries, fasthit.Entry{Path: f.Source, Ident: id})
		}
	}
	return entries, nil
}

// localFileSystems are the file systems whose lstat always asks the file system itself, and
// whose folders' times change with their entries: ext2/3/4, XFS, Btrfs, tmpfs, overlayfs,
// F2FS and ZFS. On NFS, SMB, FUSE or 9p an lstat may answer from an attribute cache and
// miss a file another machine made.
var localFileSystems = []int64{unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC,
	unix.TMPFS_MAGIC, unix.OVERLAYFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC, 0x2fc12fc1 /* ZFS */}

// statOf is the lstat the walk took of a listed file.
func statOf(f spec.ContextFile) (*syscall.Stat_t, bool) {
	if f.Info == nil {
		return nil, false
	}
	st, ok := f.Info.Sys().(*syscall.Stat_t)
	return st, ok
}

// memoOf is the memo of a build, read back from the store as the build left it. The image
// record and cache entries are kept by their bytes, which are the bytes read here; blobs and
// snapshots by identity. The store's id maps, and for a rootless strata what its user
// namespace is made from, are kept too: a full build refuses a store or a host where they
// changed, and so must the memo.
func memoOf(s *store.Store, specDigest string, built *strata.Built) (*fasthit.Memo, error) {
	m, err := newMemo("build", specDigest, built.Plan)
	if err != nil {
		return nil, err
	}
	m.Name, m.Manifest = built.Name, built.Manifest
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
	for i, l := range built.Plan.Layers {
		var rec store.Record
		if err := m.AddRead(s.RecordPath(l.Key), &rec); err != nil {
			return nil, err
		}
		for _, d := range rec.Layers {
			p, ok := s.LayerPath(d)
			if !ok {
				return nil, fmt.Errorf("layer %s of %s: %w", d.Digest, l.Key, fs.ErrNotExist)
			}
			if err := m.AddIdent(p); err != nil {
				return nil, err
			}
			m.Layers[i].Size += d.Size
		}
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
