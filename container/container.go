// Package container runs processes in OCI containers with runc: build steps during a build,
// and commands and functions in built images.
package container

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/userns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/strata-build/strata/internal/rootless"
)

// Mount is a mount into the container: a bind mount of Source, or, with Type "tmpfs", a
// memory file system.
type Mount struct {
	Source   string
	Target   string
	ReadOnly bool
	// Type is "" for a bind mount, or "tmpfs".
	Type string
	// Options are extra mount options ("size=64m" for a tmpfs).
	Options []string
}

// Spec is what to run and how.
type Spec struct {
	// Rootfs is the container's root folder, already assembled (an overlay mount).
	Rootfs string
	Args   []string
	Env    []string
	// Cwd is the working folder (default "/").
	Cwd string
	// User is "name", "uid", "name:group" or "uid:gid", looked up in the rootfs (default root).
	User     string
	Mounts   []Mount
	Hostname string
	// NoNetwork gives the container a network namespace of its own with only loopback,
	// instead of the host's network.
	NoNetwork bool
	// CDIDevices are Container Device Interface devices ("nvidia.com/gpu=0") whose device
	// nodes, mounts and environment the container gets, as the specs in CDIDirs say.
	CDIDevices []string
	CDIDirs    []string
	// Terminal gives the process a pseudo-terminal (interactive runs).
	Terminal bool
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	// Signals are forwarded to the container's process. Without a terminal, runc runs in its
	// own process group so that only forwarded signals reach it.
	Signals <-chan os.Signal
	// Cleanup removes, after the run, mount points that runc had to create in the rootfs, so
	// that they never end up in a layer.
	Cleanup bool
}

// Runner starts containers with an OCI runtime binary.
type Runner struct {
	// Runtime is the runtime binary (default "runc"; "crun" works too).
	Runtime string
	// Root is the runtime's state folder.
	Root string
}

// ExitError is a process that ran and exited non-zero (or was killed by a signal).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit code %d", e.Code) }

// dockerCaps is Docker's default capability set: apt and most installers need it.
var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Run runs the process to completion in a new container whose bundle lives in bundleDir. A
// non-zero exit is an *ExitError. Cancelling ctx kills the container.
func (r *Runner) Run(ctx context.Context, id, bundleDir string, s Spec) error {
	bin, err := r.binary()
	if err != nil {
		return err
	}
	var created []string
	if s.Cleanup {
		created = missingTargets(s.Rootfs, s.Mounts)
	}
	if err := r.writeBundle(bundleDir, s); err != nil {
		return err
	}
	cmd := exec.Command(bin, "--root", r.Root, "run", "--bundle", bundleDir, "--no-new-keyring", id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.Stdin, s.Stdout, s.Stderr
	// If strata dies, runc dies with it; the next store recovery removes the container.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: !s.Terminal}
	release, err := StartPinned(cmd)
	if err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	defer release()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if s.Signals != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case sig := <-s.Signals:
					_ = cmd.Process.Signal(sig) // runc passes it on to the container
				case <-stop:
					return
				}
			}
		}()
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		r.signal(bin, id, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		err = ctx.Err()
	}
	// runc run removes its container when the process exits; a container whose state is
	// still there (runc killed, or stopped before it could) is deleted here. Skipping the
	// needless delete spares every step a runc start (20-35 ms).
	if _, serr := os.Stat(filepath.Join(r.Root, id)); serr == nil {
		_ = exec.Command(bin, "--root", r.Root, "delete", "--force", id).Run()
	}
	for i := len(created) - 1; i >= 0; i-- {
		_ = os.Remove(created[i])
	}
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return &ExitError{Code: code}
	}
	return err
}

// binary finds the runtime's executable.
func (r *Runner) binary() (string, error) {
	runtime := r.Runtime
	if runtime == "" {
		runtime = "runc"
	}
	bin, err := exec.LookPath(runtime)
	if err != nil {
		return "", fmt.Errorf("OCI runtime %q not found: install it (apt-get install -y runc) or set STRATA_RUNTIME: %w", runtime, err)
	}
	return bin, nil
}

// writeBundle writes the spec's OCI config into the bundle, and makes the state folder.
func (r *Runner) writeBundle(bundleDir string, s Spec) error {
	cfg, err := s.ociSpec()
	if err != nil {
		return err
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundleDir, "config.json"), b, 0o600); err != nil {
		return err
	}
	return os.MkdirAll(r.Root, 0o700)
}

// Start starts the container's process and returns without waiting for it: the process
// outlives this one, with its output going to the spec's Stdout and Stderr (files).
func (r *Runner) Start(ctx context.Context, id, bundleDir string, s Spec) error {
	bin, err := r.binary()
	if err != nil {
		return err
	}
	if err := r.writeBundle(bundleDir, s); err != nil {
		return err
	}
	// The process gets runc's standard output and error: the log files given.
	cmd := exec.CommandContext(ctx, bin, "--root", r.Root, "run", "--detach", "--bundle", bundleDir, "--no-new-keyring", id)
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("starting the container with %s (its error is in the container's log): %w", bin, err)
	}
	return nil
}

// State is the runtime's word for a container's state: "running", "stopped" (its process
// exited), or "unknown" when the runtime does not know it.
func (r *Runner) State(id string) string {
	status, _ := r.state(id)
	return status
}

// state is the container's state and the pid of its first process.
func (r *Runner) state(id string) (string, int) {
	bin, err := r.binary()
	if err != nil {
		return "unknown", 0
	}
	out, err := exec.Command(bin, "--root", r.Root, "state", id).Output()
	if err != nil {
		return "unknown", 0
	}
	var st struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	if json.Unmarshal(out, &st) != nil || st.Status == "" {
		return "unknown", 0
	}
	return st.Status, st.Pid
}

// Stop sends SIGTERM to every process of the container, and SIGKILL after grace.
func (r *Runner) Stop(id string, grace time.Duration) {
	bin, err := r.binary()
	if err != nil {
		return
	}
	r.signal(bin, id, syscall.SIGTERM)
	for end := time.Now().Add(grace); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if r.State(id) != "running" {
			return
		}
	}
	r.signal(bin, id, syscall.SIGKILL)
}

// signal sends sig to a container. As root, runc sends it to every process in the
// container's cgroup. In a user namespace, where runc may have no cgroup, it goes to the
// container's first process, whose end ends every other process of its PID namespace; a
// container that another strata process started lives in that process's user namespace,
// out of this one's reach, and gets the signal from the process that made this namespace,
// which owns both (rootless.Signal).
func (r *Runner) signal(bin, id string, sig syscall.Signal) {
	if !userns.RunningInUserNS() {
		_ = exec.Command(bin, "--root", r.Root, "kill", "--all", id, strconv.Itoa(int(sig))).Run()
		return
	}
	_, pid := r.state(id)
	if pid <= 0 {
		return
	}
	if err := unix.Kill(pid, sig); errors.Is(err, unix.EPERM) {
		_ = rootless.Signal(pid, sig)
	}
}

// Cleanup removes the containers left in the state folder by processes that died, then the
// folder.
func (r *Runner) Cleanup() {
	entries, err := os.ReadDir(r.Root)
	if err != nil {
		return
	}
	bin, err := r.binary()
	if err != nil {
		return
	}
	for _, e := range entries {
		r.signal(bin, e.Name(), syscall.SIGKILL)
		_ = exec.Command(bin, "--root", r.Root, "delete", "--force", e.Name()).Run()
	}
	_ = os.RemoveAll(r.Root)
}

// missingTargets lists the mount targets (and their parent folders) that do not exist in the
// rootfs yet, in creation order.
func missingTargets(rootfs string, mounts []Mount) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range mounts {
		var chain []string
		for p := filepath.Clean(m.Target); p != "/"; p = filepath.Dir(p) {
			full, err := securejoin.SecureJoin(rootfs, p)
			if err != nil {
				break
			}
			if _, err := os.Lstat(full); err == nil {
				break
			}
			chain = append([]string{full}, chain...)
		}
		for _, c := range chain {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

func (s *Spec) ociSpec() (*specs.Spec, error) {
	uid, gid, err := LookupUser(s.Rootfs, s.User)
	if err != nil {
		return nil, err
	}
	cwd := s.Cwd
	if cwd == "" {
		cwd = "/"
	}
	var rl unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	caps := dockerCaps
	if uid != 0 {
		caps = nil // as Docker: a non-root user has no effective capabilities
	}
	hostname := s.Hostname
	if hostname == "" {
		hostname = "strata"
	}
	spec := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: s.Terminal,
			User:     specs.User{UID: uid, GID: gid},
			Args:     s.Args,
			Env:      s.Env,
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: dockerCaps, Effective: caps, Permitted: caps,
			},
			// Never above the host's hard limit: root here lacks CAP_SYS_RESOURCE.
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: rl.Max, Soft: rl.Max}},
		},
		Root:     &specs.Root{Path: s.Rootfs},
		Hostname: hostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if s.NoNetwork {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	} else if userns.RunningInUserNS() {
		// sysfs can be mounted only by the user namespace that owns the network namespace;
		// the host's is not ours, so the host's /sys is bound read-only, as runc's rootless
		// specs do.
		for i, m := range spec.Mounts {
			if m.Destination == "/sys" {
				spec.Mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
			}
		}
	}
	if len(s.CDIDevices) > 0 {
		// The devices' nodes, mounts and environment, as their CDI specs say (NVIDIA's
		// container toolkit writes them to /etc/cdi or /var/run/cdi).
		cache, err := cdi.NewCache(cdi.WithSpecDirs(s.CDIDirs...), cdi.WithAutoRefresh(false))
		if err != nil {
			return nil, fmt.Errorf("reading CDI specs from %s: %w", strings.Join(s.CDIDirs, ", "), err)
		}
		if unresolved, err := cache.InjectDevices(spec, s.CDIDevices...); err != nil {
			return nil, fmt.Errorf("giving the container the devices %s (unresolved: %s): %w", strings.Join(s.CDIDevices, ", "), strings.Join(unresolved, ", "), err)
		}
		if userns.RunningInUserNS() {
			bindDevices(spec, cache, s.CDIDevices)
		}
	}
	for _, m := range s.Mounts {
		if m.Type == "tmpfs" {
			opts := append([]string{"nosuid", "nodev", "mode=1777"}, m.Options...)
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: m.Target, Type: "tmpfs", Source: "tmpfs", Options: opts})
			continue
		}
		opts := append([]string{"rbind"}, m.Options...)
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: opts})
	}
	return spec, nil
}

// bindDevices turns the device nodes CDI gave a container into bind mounts of the host's
// nodes. In a user namespace runc cannot make device nodes; it would bind each from the
// host path equal to the container's, where a CDI device's node is at its hostPath.
func bindDevices(spec *specs.Spec, cache *cdi.Cache, names []string) {
	host := map[string]string{}
	add := func(e cdispec.ContainerEdits) {
		for _, n := range e.DeviceNodes {
			if n.HostPath != "" {
				host[n.Path] = n.HostPath
			}
		}
	}
	for _, name := range names {
		if d := cache.GetDevice(name); d != nil {
			add(d.ContainerEdits)
			add(d.GetSpec().ContainerEdits)
		}
	}
	for _, d := range spec.Linux.Devices {
		src := host[d.Path]
		if src == "" {
			src = d.Path
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: d.Path, Type: "bind", Source: src, Options: []string{"bind", "nosuid"}})
	}
	spec.Linux.Devices = nil
}

// LookupUser resolves a Docker USER string against the rootfs's /etc/passwd and /etc/group.
func LookupUser(rootfs, user string) (uid, gid uint32, err error) {
	if user == "" {
		return 0, 0, nil
	}
	name, group, hasGroup := strings.Cut(user, ":")
	passwd := readDB(rootfs, "/etc/passwd")
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		uid = uint32(n)
		gid = uid
		for _, f := range passwd {
			if f[2] == name {
				g, _ := strconv.ParseUint(f[3], 10, 32)
				gid = uint32(g)
			}
		}
	} else {
		found := false
		for _, f := range passwd {
			if f[0] == name {
				u, _ := strconv.ParseUint(f[2], 10, 32)
				g, _ := strconv.ParseUint(f[3], 10, 32)
				uid, gid, found = uint32(u), uint32(g), true
				break
			}
		}
		if !found {
			return 0, 0, fmt.Errorf("user %q: no such user in the image's /etc/passwd; create it first (RUN useradd %s) or use a numeric uid", name, name)
		}
	}
	if hasGroup {
		if n, err := strconv.ParseUint(group, 10, 32); err == nil {
			gid = uint32(n)
		} else {
			found := false
			for _, f := range readDB(rootfs, "/etc/group") {
				if f[0] == group {
					g, _ := strconv.ParseUint(f[2], 10, 32)
					gid, found = uint32(g), true
				}
			}
			if !found {
				return 0, 0, fmt.Errorf("group %q: no such group in the image's /etc/group", group)
			}
		}
	}
	return uid, gid, nil
}

func readDB(rootfs, file string) [][]string {
	p, err := securejoin.SecureJoin(rootfs, file)
	if err != nil {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 4 {
			out = append(out, fields)
		}
	}
	return out
}
