package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/moby/sys/userns"
	"golang.org/x/sys/unix"
)

// maxMountData is what the kernel accepts as a mount's option string: one page, with its NUL.
const maxMountData = 4095

// MaxOverlayLowers is overlayfs's own limit on stacked lower folders (OVL_MAX_STACK), and so
// the most layers an image strata runs may have.
const MaxOverlayLowers = 500

// MountOverlay mounts lowers (top first) with a writable upper at target. With no lowers an
// empty folder is used, as overlayfs needs one.
//
// An image of many layers would overflow the one page a mount's options may take, so, as
// containerd's overlay snapshotter does, the lowers that share the most common folder are
// written relative to it and the mount is made from a thread whose working folder is that
// folder. With the store's short snapshot links that leaves room for hundreds of layers.
func MountOverlay(lowers []string, upper, work, target string) error {
	return mountWritable(lowers, upper, work, target, false)
}

// MountOverlayVolatile is MountOverlay for an upper that is thrown away, or committed by a
// caller that flushes its files itself (store.CommitSnapshot), with a work folder that is
// never mounted again. Its unmount does not sync the upper's file system: overlayfs syncs all
// of it, every other process's writes too (0.76 s after 300 MB written elsewhere), unless
// mounted volatile. overlayfs refuses to mount a work folder a volatile mount has used, and
// kernels before 5.10 lack the option: those mount as MountOverlay does.
func MountOverlayVolatile(lowers []string, upper, work, target string) error {
	return mountWritable(lowers, upper, work, target, true)
}

func mountWritable(lowers []string, upper, work, target string, volatile bool) error {
	if len(lowers) == 0 {
		empty := filepath.Join(filepath.Dir(work), "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return err
		}
		lowers = []string{empty}
	}
	opts := ",upperdir=" + upper + ",workdir=" + work
	if volatile {
		err := mountOverlay(lowers, opts+",volatile", 0, target)
		if !errors.Is(err, unix.EINVAL) {
			return err
		}
	}
	return mountOverlay(lowers, opts, 0, target)
}

// MountOverlayReadOnly mounts lowers (top first, at least two) read-only at target.
func MountOverlayReadOnly(lowers []string, target string) error {
	return mountOverlay(lowers, "", unix.MS_RDONLY, target)
}

func mountOverlay(lowers []string, rest string, flags uintptr, target string) error {
	if len(lowers) > MaxOverlayLowers {
		return fmt.Errorf("the image has %d layers; overlayfs stacks at most %d: squash some steps into one (one run_commands with several commands is one layer)", len(lowers), MaxOverlayLowers)
	}
	dir, rel := compactLowers(lowers)
	data := "lowerdir=" + strings.Join(rel, ":") + rest
	if userns.RunningInUserNS() {
		data += ",userxattr"
	}
	if len(data) > maxMountData {
		return fmt.Errorf("the image has too many layers (%d) for one overlay mount: its options take %d bytes, the kernel accepts %d; squash some steps into one", len(lowers), len(data), maxMountData)
	}
	if err := mountAt(dir, "overlay", target, "overlay", flags, data); err != nil {
		if userns.RunningInUserNS() && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL)) {
			return fmt.Errorf("mounting overlay at %s: %w: this kernel does not mount overlayfs in a user namespace with userxattr, which rootless strata needs (Linux 5.11 and later do): run strata as root, or on a newer kernel", target, err)
		}
		return fmt.Errorf("mounting overlay at %s: %w (strata needs overlayfs and the right to mount: root, or a user namespace)", target, err)
	}
	return nil
}

// compactLowers finds the folder that holds the most lowers and writes those relative to it;
// the others stay absolute. With one lower per folder nothing is gained and dir is "".
func compactLowers(lowers []string) (dir string, out []string) {
	count := map[string]int{}
	for _, l := range lowers {
		count[filepath.Dir(l)]++
	}
	best := 1
	for d, n := range count {
		if n > best || (n == best && d < dir && dir != "") {
			dir, best = d, n
		}
	}
	out = make([]string, len(lowers))
	for i, l := range lowers {
		if dir != "" && filepath.Dir(l) == dir {
			out[i] = filepath.Base(l)
		} else {
			out[i] = l
		}
	}
	return dir, out
}

// mountAt mounts with dir as the working folder, so that relative paths in data resolve
// against it. The change of folder is confined to one OS thread (unshare(CLONE_FS)), which is
// never given back to the Go scheduler, as containerd's mountAt does.
func mountAt(dir, source, target, fstype string, flags uintptr, data string) error {
	if dir == "" {
		return unix.Mount(source, target, fstype, flags, data)
	}
	if !filepath.IsAbs(target) {
		return fmt.Errorf("mount target %s is not absolute", target)
	}
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread stays locked: its file system context cannot be restored, so it must end
		// with this goroutine rather than serve others.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			ch <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			ch <- err
			return
		}
		ch <- unix.Mount(source, target, fstype, flags, data)
	}()
	return <-ch
}

// UnmountAll detaches every mount at or below dir, deepest first.
func UnmountAll(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	mounts := mountsBelow(string(b), dir)
	for _, m := range mounts {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
}

// mountsBelow lists the mount points in mountinfo text that are dir or below it, deepest
// first.
func mountsBelow(mountinfo, dir string) []string {
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) <= 4 {
			continue
		}
		p := unescapeMountinfo(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// unescapeMountinfo undoes the kernel's octal escapes of space, tab, newline and backslash in
// /proc/self/mountinfo paths ("\040" is a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, ok := octal(s[i+1 : i+4]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal(s string) (byte, bool) {
	var v int
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}
