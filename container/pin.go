package container

import (
	"os/exec"
	"runtime"
	"sync"
)

// StartPinned starts cmd from an OS thread that stays alive, and serves no other goroutine,
// until release is called: call it once cmd.Wait has returned.
//
// Linux delivers a child's parent-death signal (SysProcAttr.Pdeathsig) when the thread that
// forked it exits, not the process (golang/go#27505). Go ends a thread when a goroutine
// locked to it returns, as mountAt's does; if that thread had forked a runc, the runc would
// be killed mid-step, its container's process seen as dead of SIGKILL (exit code 137).
func StartPinned(cmd *exec.Cmd) (release func(), err error) {
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			<-done
		}
	}()
	if err := <-started; err != nil {
		return func() {}, err
	}
	return sync.OnceFunc(func() { close(done) }), nil
}
