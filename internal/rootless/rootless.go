// Package rootless lets an ordinary user build and run images. As buildah and podman do, it
// re-runs the program in a new user namespace in which the user is root and the user's
// subordinate ids (/etc/subuid, /etc/subgid) are the other ids, with a mount namespace of its
// own: there, overlayfs, runc and mmdebstrap work as for root, and files keep the owners a
// step gives them (a useradd, a layer of 1000:1000 files), so a rootless build writes the
// same layers as a root build.
//
// Go cannot enter a new user namespace from a running process (it has threads), and a
// process started in one before its id maps are written loses its capabilities when it
// executes. So the program is started twice: once in the new namespaces, where it waits
// until newuidmap and newgidmap have written the maps, and once more from there, now root in
// the namespace with all its capabilities.
package rootless

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/moby/sys/userns"
	"golang.org/x/sys/unix"
)

// stageEnv tells the re-run program where it is: "wait" (in the new namespaces, maps not yet
// written) or "mapped" (root in the namespace).
const stageEnv = "_STRATA_USERNS_STAGE"

// parentEnv is the pid of the process that made the namespace and waits for the program.
const parentEnv = "_STRATA_USERNS_PARENT"

// signalFD is the re-run program's end of the socket on which it asks the process that
// made its namespace to signal processes (Signal).
const signalFD = 4

var (
	signalsMu sync.Mutex
	signals   *os.File
)

// minIDs is the fewest subordinate ids strata accepts: Debian's own images use ids up to
// 65534 (nobody), and apt changes owners to them.
const minIDs = 65534

// Active says whether the process runs in a user namespace: a rootless strata, or one
// started by an ordinary user under rootlesskit or `podman unshare`. Its store then lives in
// the user's home, not /var/lib/strata.
func Active() bool { return userns.RunningInUserNS() }

// Reentered says whether this process is the one Enter ran again in a user namespace, before
// Enter has returned in it.
func Reentered() bool { return os.Getenv(stageEnv) == "mapped" }

// Enter makes the process able to build. As root (or in a user namespace already) it returns
// at once. As an ordinary user it re-runs the program in a user namespace and exits with the
// program's exit code; it returns only an error that says what the host lacks and how to
// fix it. Call it first in main: the program runs again from the start.
func Enter() error {
	switch os.Getenv(stageEnv) {
	case "mapped":
		os.Unsetenv(stageEnv)
		if _, err := unix.FcntlInt(signalFD, unix.F_GETFD, 0); err == nil {
			unix.CloseOnExec(signalFD)
			signals = os.NewFile(signalFD, "strata-signals")
		}
		// Die with the process that waits for this one, as when it was started (the
		// signal was cleared when this program was executed with new capabilities); if it
		// died before, it is no longer the parent.
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0)
		parent := os.Getenv(parentEnv)
		os.Unsetenv(parentEnv)
		if strconv.Itoa(os.Getppid()) != parent {
			os.Exit(1)
		}
		return nil
	case "wait":
		waitAndExec()
	}
	if os.Geteuid() == 0 {
		return nil
	}
	return reexec()
}

// waitAndExec runs in the new namespaces: it waits for the parent's word that the maps are
// written and runs the program again, now as root of the namespace.
func waitAndExec() {
	ready := os.NewFile(3, "ready")
	var b [1]byte
	if n, _ := ready.Read(b[:]); n != 1 {
		os.Exit(1) // the parent failed, and said why
	}
	ready.Close()
	os.Setenv(stageEnv, "mapped")
	err := syscall.Exec("/proc/self/exe", os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "strata: running %s in the user namespace: %v\n", os.Args[0], err)
	os.Exit(1)
}

// reexec starts the program in a new user and mount namespace, writes its id maps, waits for
// it and exits as it does. On an error the child is gone and nothing is left behind.
func reexec() (err error) {
	u, err := user.Current()
	if err != nil {
		return fmt.Errorf("strata is not running as root, and cannot find who it runs as: %w", err)
	}
	if err := checkHost(); err != nil {
		return err
	}
	uidMap, err := idMap("/etc/subuid", u.Username, u.Uid, "--add-subuids")
	if err != nil {
		return err
	}
	gidMap, err := idMap("/etc/subgid", u.Username, u.Uid, "--add-subgids")
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	defer w.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "strata-signals"), os.NewFile(uintptr(fds[1]), "strata-signals")
	defer theirs.Close()
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{r, theirs} // fd 3, fd signalFD
	cmd.Env = append(os.Environ(), stageEnv+"=wait", parentEnv+"="+strconv.Itoa(os.Getpid()))
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	// Signals sent to this process go to the program; a terminal's reach both.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		mine.Close()
		return fmt.Errorf("starting strata in a new user namespace: %w%s", err, userNSHint)
	}
	defer func() {
		if err != nil { // the child waits on the pipe: it must not outlive the error
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	go serveSignals(mine)
	pid := strconv.Itoa(cmd.Process.Pid)
	for _, m := range []struct {
		tool string
		args []string
	}{
		{"newuidmap", append([]string{pid, "0", u.Uid, "1"}, uidMap...)},
		{"newgidmap", append([]string{pid, "0", u.Gid, "1"}, gidMap...)},
	} {
		if out, err := exec.Command(m.tool, m.args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s (the ranges come from /etc/subuid and /etc/subgid; newuidmap and newgidmap must be setuid root, as Debian's uidmap package installs them)",
				m.tool, strings.Join(m.args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	if _, err := w.Write([]byte{1}); err != nil {
		return err
	}
	go forward(sigs, cmd.Process)
	werr := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(ee.ExitCode())
	}
	if werr != nil {
		return werr
	}
	os.Exit(0)
	return nil
}

// forward passes the signals this process gets on to the program. A terminal's Ctrl-C and
// Ctrl-\ reach the program already when this process is in the terminal's foreground: those
// are not sent twice.
func forward(sigs <-chan os.Signal, p *os.Process) {
	for s := range sigs {
		if (s == syscall.SIGINT || s == syscall.SIGQUIT) && inForeground() {
			continue
		}
		_ = p.Signal(s)
	}
}

// inForeground says whether this process's group is its terminal's foreground group, to
// which the terminal sends its signals.
func inForeground() bool {
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && fg == unix.Getpgrp()
}

// Signal sends sig to pid through the process that made this user namespace. Each strata
// process has a namespace of its own, so a detached container that another one started is in
// a sibling namespace, where this one has no right to signal a process of another id; the
// process that made both namespaces runs as their owner, outside them, and has it.
func Signal(pid int, sig syscall.Signal) error {
	signalsMu.Lock()
	defer signalsMu.Unlock()
	if signals == nil {
		return errors.New("no strata process outside this user namespace to send the signal")
	}
	var req [8]byte
	binary.LittleEndian.PutUint32(req[:4], uint32(pid))
	binary.LittleEndian.PutUint32(req[4:], uint32(sig))
	if _, err := signals.Write(req[:]); err != nil {
		return err
	}
	var resp [4]byte
	if n, err := signals.Read(resp[:]); err != nil || n != 4 {
		return fmt.Errorf("signalling %d through the parent: %v", pid, err)
	}
	if errno := syscall.Errno(binary.LittleEndian.Uint32(resp[:])); errno != 0 {
		return errno
	}
	return nil
}

// serveSignals sends the signals the re-run program asks for, until it exits.
func serveSignals(conn *os.File) {
	defer conn.Close()
	var req [8]byte
	for {
		n, err := conn.Read(req[:])
		if err != nil || n != 8 {
			return
		}
		pid := int(int32(binary.LittleEndian.Uint32(req[:4])))
		var resp [4]byte
		if pid <= 0 {
			binary.LittleEndian.PutUint32(resp[:], uint32(syscall.EINVAL))
		} else if err := unix.Kill(pid, syscall.Signal(binary.LittleEndian.Uint32(req[4:]))); err != nil {
			errno, _ := err.(syscall.Errno)
			binary.LittleEndian.PutUint32(resp[:], uint32(errno))
		}
		if _, err := conn.Write(resp[:]); err != nil {
			return
		}
	}
}

const userNSHint = " (unprivileged user namespaces may be turned off: sysctl -w user.max_user_namespaces=28633, and on Ubuntu sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)"

// checkHost says what keeps this host from giving an ordinary user a user namespace, with
// the command that fixes it.
func checkHost() error {
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return errors.New("user namespaces are turned off on this host (user.max_user_namespaces is 0): as root, sysctl -w user.max_user_namespaces=28633, or run strata as root")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return errors.New("unprivileged user namespaces are turned off on this host (kernel.unprivileged_userns_clone is 0): as root, sysctl -w kernel.unprivileged_userns_clone=1, or run strata as root")
	}
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed: strata needs it to run as an ordinary user (as root: apt-get install -y uidmap), or run strata as root", tool)
		}
	}
	return nil
}

// idMap reads the user's subordinate id ranges from file (/etc/subuid or /etc/subgid) and
// returns them as newuidmap's triples, inside the namespace from id 1 on.
func idMap(file, name, uid, flag string) ([]string, error) {
	ranges, err := subIDs(file, name, uid)
	if err != nil {
		return nil, err
	}
	var out []string
	total := 0
	for _, r := range ranges {
		out = append(out, strconv.Itoa(1+total), strconv.Itoa(r[0]), strconv.Itoa(r[1]))
		total += r[1]
	}
	if total < minIDs {
		fix := fmt.Sprintf("as root: usermod %s 100000-165535 %s", flag, name)
		if total == 0 {
			return nil, fmt.Errorf("user %s has no subordinate ids in %s, which strata needs to give a build's files their owners: %s (choose a range no other user has)", name, file, fix)
		}
		return nil, fmt.Errorf("user %s has %d subordinate ids in %s; strata needs at least %d (images use ids up to 65534): %s (choose a range no other user has)", name, total, file, minIDs, fix)
	}
	return out, nil
}

// subIDs reads the ranges (start, count) that file gives the user, by name or by uid.
func subIDs(file, name, uid string) ([][2]int, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][2]int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) != 3 || (fields[0] != name && fields[0] != uid) {
			continue
		}
		start, err1 := strconv.Atoi(fields[1])
		count, err2 := strconv.Atoi(fields[2])
		if err1 != nil || err2 != nil || start < 0 || count <= 0 {
			return nil, fmt.Errorf("%s: bad line %q: want NAME:START:COUNT", file, line)
		}
		out = append(out, [2]int{start, count})
	}
	return disjoint(out), sc.Err()
}

// disjoint drops the ranges that overlap an earlier one (the same range given by name and
// by uid), which newuidmap would refuse.
func disjoint(ranges [][2]int) [][2]int {
	var out [][2]int
next:
	for _, r := range ranges {
		for _, o := range out {
			if r[0] < o[0]+o[1] && o[0] < r[0]+r[1] {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}
