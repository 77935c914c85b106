package container

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A child started with a parent-death signal must outlive the threads that goroutines locked
// to them end (mountAt's do): only strata's own death may kill it.
func TestStartPinnedSurvivesThreadExits(t *testing.T) {
	var cmds []*exec.Cmd
	var releases []func()
	for i := 0; i < 20; i++ {
		cmd := exec.Command("sleep", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		// From a goroutine of its own, as each build step's runc is.
		var release func()
		var err error
		ch := make(chan struct{})
		go func() { release, err = StartPinned(cmd); close(ch) }()
		<-ch
		if err != nil {
			t.Fatal(err)
		}
		cmds, releases = append(cmds, cmd), append(releases, release)
	}
	// Goroutines that lock their thread and return end it, as mountAt's do.
	for i := 0; i < 200; i++ {
		var wg sync.WaitGroup
		for j := 0; j < 8; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				time.Sleep(time.Millisecond)
			}()
		}
		wg.Wait()
	}
	time.Sleep(100 * time.Millisecond)
	for i, cmd := range cmds {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("child %d died while strata lived: %v", i, err)
		}
		var ws syscall.WaitStatus
		if pid, _ := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WNOHANG, nil); pid == cmd.Process.Pid {
			t.Errorf("child %d exited: %v", i, ws)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		releases[i]()
	}
}
