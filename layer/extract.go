package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/sys/userns"
	"golang.org/x/sys/unix"
)

// ErrUnsafe marks a layer entry that would write outside the layer's root.
var ErrUnsafe = errors.New("unsafe layer entry")

// ExtractOptions tune Extract.
type ExtractOptions struct {
	// Lowers returns the snapshots below the layer, top first. It is called only for a hard
	// link to a file of an earlier layer, so it may wait for those to be extracted.
	Lowers func() ([]string, error)
	// Skip leaves out top-level entries of these names (an eStargz layer's table of contents
	// and landmark files, which are the format's, not the image's).
	Skip map[string]bool
	// Plain is for archives that are not layers (a downloaded Python build): whiteouts,
	// opaque markers and device nodes are refused, and setuid and setgid bits dropped.
	Plain bool
	// MaxEntries, if positive, is the most entries the tar may hold; past it Extract stops
	// with a LimitError naming Limit.
	MaxEntries int64
	// Limit says how to raise MaxEntries, for its error.
	Limit string
}

// LimitError is a tar with more entries than ExtractOptions.MaxEntries.
type LimitError struct {
	Max   int64
	Limit string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("holds more than %d files and folders (%s)", e.Max, e.Limit)
}

// Extract unpacks a layer tar into dir (a fresh snapshot folder) in overlayfs form: OCI
// whiteouts become 0/0 character devices, opaque markers the overlay opaque xattr (opaqueXattr).
// It refuses any entry that could escape dir: absolute or "../" names, paths through
// symlinks, symlinks whose relative target climbs above the root, and hard links outside.
// Hard links to files of earlier layers are found in o.Lowers.
func Extract(r io.Reader, dir string, o ExtractOptions) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirTimes []dirTime
	for n := int64(1); ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
		if o.MaxEntries > 0 && n > o.MaxEntries {
			return &LimitError{Max: o.MaxEntries, Limit: o.Limit}
		}
		rel, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "" || o.Skip[rel] {
			continue // the root itself, or the format's own entries
		}
		parent, base := path.Split(rel)
		if err := mkParents(dir, parent); err != nil {
			return err
		}
		target := filepath.Join(dir, rel)
		if o.Plain && (base == opaqueMarker || strings.HasPrefix(base, whiteoutPrefix) || hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock) {
			return fmt.Errorf("%s: a whiteout or device node, which an archive that is not a layer may not hold", rel)
		}
		if base == opaqueMarker {
			if err := unix.Lsetxattr(filepath.Join(dir, parent), opaqueXattr(), []byte("y"), 0); err != nil {
				return fmt.Errorf("marking %s opaque: %w", parent, err)
			}
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			wh := filepath.Join(dir, parent, strings.TrimPrefix(base, whiteoutPrefix))
			_ = os.RemoveAll(wh)
			if err := unix.Mknod(wh, unix.S_IFCHR, 0); err != nil {
				return fmt.Errorf("whiteout %s: %w", rel, err)
			}
			continue
		}
		// A later entry replaces an earlier one of the same name, except folders merge.
		if fi, err := os.Lstat(target); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		mode := os.FileMode(hdr.Mode & 0o777)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		case tar.TypeSymlink:
			if !path.IsAbs(hdr.Linkname) {
				if escapes(parent, hdr.Linkname) {
					return fmt.Errorf("%w: symlink %s -> %s points outside the image", ErrUnsafe, rel, hdr.Linkname)
				}
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			lrel, err := cleanName(hdr.Linkname)
			if err != nil || lrel == "" {
				return fmt.Errorf("%w: hard link %s -> %s points outside the image", ErrUnsafe, rel, hdr.Linkname)
			}
			if err := checkNoSymlinkParents(dir, lrel); err != nil {
				return err
			}
			src := filepath.Join(dir, lrel)
			if _, err := os.Lstat(src); err != nil {
				// A link to a file of an earlier layer: copy it up, as overlay would.
				var lowers []string
				if o.Lowers != nil {
					if lowers, err = o.Lowers(); err != nil {
						return err
					}
				}
				if src, err = findLower(lowers, lrel); err != nil {
					return fmt.Errorf("hard link %s -> %s: target not found in this or earlier layers", rel, hdr.Linkname)
				}
				if err := copyFile(src, target); err != nil {
					return err
				}
				break
			}
			if err := os.Link(src, target); err != nil {
				return err
			}
			continue // shares the target's metadata
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			m := uint32(unix.S_IFIFO)
			switch hdr.Typeflag {
			case tar.TypeChar:
				m = unix.S_IFCHR
			case tar.TypeBlock:
				m = unix.S_IFBLK
			}
			if err := unix.Mknod(target, m|uint32(mode), int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
				if m != unix.S_IFIFO && errors.Is(err, unix.EPERM) && userns.RunningInUserNS() {
					// A user namespace may not make device nodes (as Docker's and
					// containers/storage's rootless extraction, the node is left out of
					// the snapshot; the layer's blob keeps it).
					continue
				}
				return fmt.Errorf("%s: %w", rel, err)
			}
		case tar.TypeXGlobalHeader:
			continue
		default:
			return fmt.Errorf("%s: unsupported tar entry type %q", rel, hdr.Typeflag)
		}
		if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			if errors.Is(err, unix.EINVAL) && userns.RunningInUserNS() {
				return fmt.Errorf("%s is owned by %d:%d, an id this user namespace does not map (its maps are /proc/self/uid_map and gid_map): give the user more subordinate ids in /etc/subuid and /etc/subgid (usermod --add-subuids, --add-subgids)", rel, hdr.Uid, hdr.Gid)
			}
			return err
		}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && keptXattr(name) {
				_ = unix.Lsetxattr(target, name, []byte(v), 0)
			}
		}
		if hdr.Typeflag != tar.TypeSymlink {
			// chmod after chown: chown clears setuid bits.
			perm := mode
			if hdr.Mode&0o4000 != 0 && !o.Plain {
				perm |= os.ModeSetuid
			}
			if hdr.Mode&0o2000 != 0 && !o.Plain {
				perm |= os.ModeSetgid
			}
			if hdr.Mode&0o1000 != 0 {
				perm |= os.ModeSticky
			}
			if err := os.Chmod(target, perm); err != nil {
				return err
			}
		}
		if hdr.Typeflag == tar.TypeDir {
			dirTimes = append(dirTimes, dirTime{target, hdr.ModTime})
		} else {
			ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
			_ = unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	// Folder times last: creating their entries changed them.
	for i := len(dirTimes) - 1; i >= 0; i-- {
		d := dirTimes[i]
		_ = os.Chtimes(d.path, d.t, d.t)
	}
	return nil
}

// cleanName turns a tar entry name into a clean relative path, refusing absolute names and
// names that climb out of the root.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %q is an absolute path", ErrUnsafe, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q climbs out of the image with \"..\"", ErrUnsafe, name)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// escapes reports whether a relative symlink target, followed from folder parent, climbs
// above the root at any point.
func escapes(parent, target string) bool {
	depth := len(strings.Split(strings.Trim(parent, "/"), "/"))
	if strings.Trim(parent, "/") == "" {
		depth = 0
	}
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		case "", ".":
		default:
			depth++
		}
	}
	return false
}

// mkParents creates the folders of rel's parent below dir, refusing to pass through symlinks.
func mkParents(dir, parent string) error {
	cur := dir
	for _, part := range strings.Split(strings.Trim(parent, "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		switch {
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("%w: %s passes through the symlink %s", ErrUnsafe, parent, strings.TrimPrefix(cur, dir+"/"))
		case err == nil && !fi.IsDir():
			return fmt.Errorf("%w: %s is not a folder", ErrUnsafe, strings.TrimPrefix(cur, dir+"/"))
		case os.IsNotExist(err):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		}
	}
	return nil
}

func checkNoSymlinkParents(dir, rel string) error {
	parent, _ := path.Split(rel)
	cur := dir
	for _, part := range strings.Split(strings.Trim(parent, "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		if fi, err := os.Lstat(cur); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%w: hard link target %s passes through a symlink", ErrUnsafe, rel)
		}
	}
	return nil
}

func findLower(lowers []string, rel string) (string, error) {
	for _, l := range lowers {
		if err := checkNoSymlinkParents(l, rel); err != nil {
			return "", err
		}
		p := filepath.Join(l, rel)
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
