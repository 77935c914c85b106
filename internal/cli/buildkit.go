package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/rootless"
)

// buildkitCmd runs a buildkitd for the user, with its state under strata's home, so that
// one machine can use the buildkit engine with no other setup.
func buildkitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "buildkit",
		Short: "Run a buildkitd for the buildkit engine (start, stop, status)",
		Long: `strata buildkit start runs buildkitd (found at STRATA_BUILDKITD or on PATH; build it
from BuildKit's module with scripts/build-buildkitd.sh) with an OCI worker on runc, the
host's network, and its state in $STRATA_HOME/buildkit. It listens on a unix socket there,
which --engine buildkit uses when --addr and STRATA_BUILDKIT_ADDR are not set, and with
--tcp on a TCP address too, with mutual TLS (--tlscacert, --tlscert, --tlskey), for other
machines' strata. Builds may use the GPUs of the CDI specs in STRATA_CDI_SPEC_DIRS (or
buildkitd's default folders, /etc/cdi and /var/run/cdi).`,
	}
	var tcp, ca, cert, key string
	start := &cobra.Command{
		Use:   "start",
		Short: "Start buildkitd in the background",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := newDaemon()
			// Two starts at once: the second waits for the first, then finds its daemon.
			unlock, err := d.lock()
			if err != nil {
				return err
			}
			defer unlock()
			if pid := d.pid(); pid > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "buildkitd is running (pid %d) at %s\n", pid, d.addr())
				return nil
			}
			if rootless.Active() {
				return errors.New("strata buildkit start runs buildkitd as root: a rootless buildkitd needs rootlesskit (see BuildKit's docs/rootless.md); point --addr at one you start")
			}
			bin := os.Getenv("STRATA_BUILDKITD")
			if bin == "" {
				p, err := exec.LookPath("buildkitd")
				if err != nil {
					return errors.New("no buildkitd on PATH or at STRATA_BUILDKITD: build it from BuildKit's module with scripts/build-buildkitd.sh")
				}
				bin = p
			}
			// Builds may ask for the GPUs of the CDI specs, as the local engine's steps may:
			// those of STRATA_CDI_SPEC_DIRS, or buildkitd's default folders.
			args := []string{"--root", filepath.Join(d.dir, "root"), "--addr", d.addr(), "--oci-worker-net", "host", "--containerd-worker=false",
				"--allow-insecure-entitlement", "device"}
			if dirs := os.Getenv("STRATA_CDI_SPEC_DIRS"); dirs != "" {
				conf, err := d.cdiConfig(dirs)
				if err != nil {
					return err
				}
				args = append(args, "--config", conf)
			}
			if tcp != "" {
				if ca == "" || cert == "" || key == "" {
					return errors.New("--tcp needs --tlscacert, --tlscert and --tlskey: a TCP buildkitd takes mutual TLS only")
				}
				args = append(args, "--addr", "tcp://"+tcp, "--tlscacert", ca, "--tlscert", cert, "--tlskey", key)
			}
			return d.start(bin, args, cmd)
		},
	}
	start.Flags().StringVar(&tcp, "tcp", "", "also listen on this TCP address (host:port), with mutual TLS")
	start.Flags().StringVar(&ca, "tlscacert", "", "the CA that signs the clients' certificates")
	start.Flags().StringVar(&cert, "tlscert", "", "the daemon's certificate")
	start.Flags().StringVar(&key, "tlskey", "", "the daemon's key")
	stop := &cobra.Command{
		Use:   "stop",
		Short: "Stop the buildkitd that strata buildkit start started",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return newDaemon().stop(cmd)
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Say whether buildkitd runs, and where",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := newDaemon()
			if pid := d.pid(); pid > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "running (pid %d) at %s\n", pid, d.addr())
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), "not running")
			return nil
		},
	}
	cmd.AddCommand(start, stop, status)
	return cmd
}

// daemon is the buildkitd of a strata home: $STRATA_HOME/buildkit holds its state, socket,
// pid file and log.
type daemon struct{ dir string }

func newDaemon() *daemon { return &daemon{dir: filepath.Join(strata.Home(), "buildkit")} }

func (d *daemon) addr() string { return "unix://" + filepath.Join(d.dir, "buildkitd.sock") }

// cdiConfig writes a buildkitd.toml whose CDI spec folders are dirs (comma-separated).
func (d *daemon) cdiConfig(dirs string) (string, error) {
	var quoted []string
	for _, dir := range strings.Split(dirs, ",") {
		if dir = strings.TrimSpace(dir); dir != "" {
			quoted = append(quoted, strconv.Quote(dir))
		}
	}
	p := filepath.Join(d.dir, "buildkitd.toml")
	conf := "# written by strata buildkit start, from STRATA_CDI_SPEC_DIRS\n[cdi]\n  specDirs = [" + strings.Join(quoted, ", ") + "]\n"
	return p, os.WriteFile(p, []byte(conf), 0o600)
}

// lock takes the home's start lock, an flock on a file of the daemon's folder, released when
// the process exits if not before.
func (d *daemon) lock() (func(), error) {
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(d.dir, "start.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// pid is the running daemon's, or 0.
func (d *daemon) pid() int {
	b, err := os.ReadFile(filepath.Join(d.dir, "buildkitd.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	// The pid may have been reused by another program since.
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || !strings.HasPrefix(filepath.Base(exe), "buildkitd") {
		return 0
	}
	return pid
}

func (d *daemon) start(bin string, args []string, cmd *cobra.Command) error {
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	sock := strings.TrimPrefix(d.addr(), "unix://")
	if len(sock) > 107 {
		return fmt.Errorf("the socket path %s is longer than a unix socket's limit (107 bytes): set STRATA_HOME to a shorter folder", sock)
	}
	os.Remove(sock)
	logPath := filepath.Join(d.dir, "buildkitd.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	p := exec.Command(bin, args...)
	p.Stdout, p.Stderr = log, log
	p.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := p.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.Wait() }()
	if err := os.WriteFile(filepath.Join(d.dir, "buildkitd.pid"), []byte(strconv.Itoa(p.Process.Pid)+"\n"), 0o600); err != nil {
		p.Process.Kill()
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("buildkitd exited (%v); its log is %s:\n%s", err, logPath, lastLines(logPath, 10))
		case <-time.After(100 * time.Millisecond):
		}
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "buildkitd is running (pid %d) at %s\nbuild on it with: strata --engine buildkit build ...\n", p.Process.Pid, d.addr())
			return nil
		}
	}
	p.Process.Kill()
	return fmt.Errorf("buildkitd did not listen on %s within 30 s; its log is %s:\n%s", sock, logPath, lastLines(logPath, 10))
}

func (d *daemon) stop(cmd *cobra.Command) error {
	pid := d.pid()
	if pid == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "buildkitd is not running")
		return nil
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 200 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	os.Remove(filepath.Join(d.dir, "buildkitd.pid"))
	fmt.Fprintf(cmd.OutOrStdout(), "stopped buildkitd (pid %d)\n", pid)
	return nil
}

func lastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
