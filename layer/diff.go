// Package layer turns folders into OCI layer tarballs and back: it writes the upper folder of
// an overlay mount as a deterministic layer (overlay whiteouts become OCI whiteouts) and
// extracts pulled layers safely into snapshot folders that overlayfs can stack.
package layer

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/pgzip"
	"github.com/moby/sys/userns"
	"golang.org/x/sys/unix"
)

// MediaTypeGzip is the media type of gzip-compressed layers, the default compression of
// exports and pushes.
const MediaTypeGzip = "application/vnd.oci.image.layer.v1.tar+gzip"

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// opaqueXattr marks an opaque folder in overlayfs form. In a user namespace (a rootless
// strata), trusted.* attributes are out of reach, and overlayfs is mounted with userxattr
// to read user.overlay.* instead.
func opaqueXattr() string {
	if userns.RunningInUserNS() {
		return "user.overlay.opaque"
	}
	return "trusted.overlay.opaque"
}

// keptXattrs are the extended attributes a layer carries; overlay's own (trusted.overlay.*,
// or user.overlay.* for a rootless overlay) are not.
func keptXattr(name string) bool {
	return name == "security.capability" || (strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "user.overlay."))
}

// Options tune how a folder becomes a tar.
type Options struct {
	// Skip leaves out these paths (slash-separated, relative) and what is below them.
	Skip map[string]bool
	// Epoch, if set, clamps modification times to at most this time.
	Epoch *time.Time
}

// WriteTar writes dir as an uncompressed layer tar to w, in lexical order with stable headers
// so that the same tree always gives the same bytes. Overlay whiteouts (0/0 character devices)
// become ".wh." files and opaque folders get ".wh..wh..opq".
func WriteTar(dir string, w io.Writer, o Options) error {
	tw := tar.NewWriter(w)
	links := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, dir+"/"))
		if o.Skip[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		mode := info.Mode()
		if IsWhiteout(info) {
			dirname, base := filepath.Split(rel)
			return tw.WriteHeader(&tar.Header{Name: dirname + whiteoutPrefix + base, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX})
		}
		hdr := &tar.Header{
			Name:    rel,
			Mode:    int64(mode.Perm()),
			Uid:     int(st.Uid),
			Gid:     int(st.Gid),
			ModTime: info.ModTime().Truncate(time.Second),
			Format:  tar.FormatPAX,
		}
		if o.Epoch != nil && hdr.ModTime.After(*o.Epoch) {
			hdr.ModTime = *o.Epoch
		}
		if mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if mode&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		case mode.IsRegular():
			if st.Nlink > 1 {
				if first, ok := links[st.Ino]; ok {
					hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
					break
				}
				links[st.Ino] = rel
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case mode&fs.ModeNamedPipe != 0:
			hdr.Typeflag = tar.TypeFifo
		case mode&fs.ModeDevice != 0:
			hdr.Typeflag = tar.TypeBlock
			if mode&fs.ModeCharDevice != 0 {
				hdr.Typeflag = tar.TypeChar
			}
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case mode&fs.ModeSocket != 0:
			return nil // sockets cannot be archived, and are never meaningful in an image
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, mode.Type())
		}
		if err := addXattrs(p, hdr); err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if mode.IsDir() && IsOpaque(p) {
			if err := tw.WriteHeader(&tar.Header{Name: rel + "/" + opaqueMarker, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// ClampTimes sets the modification time of every file in dir that is later than epoch to
// epoch, so that a snapshot shows the times its layer tar holds.
func ClampTimes(dir string, epoch time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(epoch.UnixNano()), unix.NsecToTimespec(epoch.UnixNano())}
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.ModTime().After(epoch) {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, p) // after their contents, whose changes would move them again
			return nil
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i], ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

// IsOpaque says whether a folder is an overlay opaque folder: it hides what is below it.
func IsOpaque(p string) bool {
	buf := make([]byte, 4)
	n, err := unix.Lgetxattr(p, opaqueXattr(), buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

// IsWhiteout says whether a file is an overlay whiteout: a character device 0/0.
func IsWhiteout(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return info.Mode()&fs.ModeCharDevice != 0 && ok && st.Rdev == 0
}

func addXattrs(p string, hdr *tar.Header) error {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		return nil // no xattrs, or a file system without them
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if !keptXattr(name) {
			continue
		}
		val := make([]byte, 4096)
		n, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+name] = string(val[:n])
	}
	return nil
}

// Empty reports whether a folder has nothing in it (a step that changed no file).
func Empty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err == io.EOF || (err == nil && len(names) == 0) {
		return true, nil
	}
	return false, err
}

// Digest returns the digest and size of the tar that write produces, which it writes to
// nothing else: a built layer's diff ID, computed while its tar streams.
func Digest(write func(io.Writer) error) (diffID string, size int64, err error) {
	h := &countingHash{Hash: sha256.New()}
	if err := write(h); err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), h.n, nil
}

type countingHash struct {
	hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.Hash.Write(p)
}

// Gzip writes the tar that write produces to w, gzip-compressed on all cores, and returns
// the digest of the uncompressed tar: the layer's diff ID.
func Gzip(w io.Writer, write func(io.Writer) error) (diffID string, err error) {
	gz, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
	if err != nil {
		return "", err
	}
	if err := gz.SetConcurrency(1<<20, runtime.GOMAXPROCS(0)); err != nil {
		return "", err
	}
	diff := sha256.New()
	if err := write(io.MultiWriter(gz, diff)); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(diff.Sum(nil)), nil
}
