package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/strata-build/strata/container"
	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/gofunc"
)

// runFunction runs a layer's Go function (run_function) in a container of the image below
// it: the program is mounted read-only and started with the function's name, and the
// function's result comes back through a writable folder. Its file system changes are the
// layer; what it writes to volumes is not.
func (x *executor) runFunction(ctx context.Context) error {
	f := x.layer.Function
	if x.b.o.Program == "" {
		return fmt.Errorf("the layer runs the Go function %s, and the build was given no program to run it with", f.Name)
	}
	if err := x.mount(); err != nil {
		return err
	}
	fnDir, outDir, err := gofunc.Prepare(x.work.Path, []byte(f.Args))
	if err != nil {
		return err
	}
	mounts := []container.Mount{
		{Source: fnDir, Target: gofunc.Dir, ReadOnly: true},
		{Source: x.b.o.Program, Target: gofunc.Program, ReadOnly: true},
		{Source: outDir, Target: gofunc.Out},
	}
	support, err := supportMounts(x.work.Path)
	if err != nil {
		return err
	}
	vols, err := x.e.volumeMounts(x.layer.Volumes)
	if err != nil {
		return err
	}
	_, hostCA := os.Stat(hostCABundle)
	env := append(stepEnv(x.cfg.Env(), x.layer, x.secretEnv, hostCA == nil), gofunc.EnvName+"="+f.Name, gofunc.EnvCalled+"=1")
	timeout := time.Duration(f.Timeout) * time.Second
	if timeout <= 0 {
		timeout = time.Hour
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fmt.Fprintf(x.log, "+ run_function %s\n", f.Name)
	bundle, err := os.MkdirTemp(x.work.Path, "bundle-")
	if err != nil {
		return err
	}
	err = x.e.runner(x.work.Path).Run(runCtx, "strata-fn-"+randomID(), bundle, container.Spec{
		Rootfs:     x.rootfs,
		Args:       []string{gofunc.Program},
		Env:        env,
		Cwd:        x.cfg.Config.WorkingDir,
		User:       x.cfg.Config.User,
		Mounts:     append(append(support, mounts...), vols...),
		CDIDevices: x.devices,
		CDIDirs:    x.e.cdiDirs,
		Stdout:     x.log,
		Stderr:     x.log,
		Cleanup:    true,
	})
	code := 0
	var ee *container.ExitError
	switch {
	case errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		return &engine.BuildError{Command: "run_function " + f.Name, Err: fmt.Errorf("function %s ran past its timeout of %s and was stopped", f.Name, timeout)}
	case errors.As(err, &ee):
		code = ee.Code
	case err != nil:
		return err
	}
	if err := gofunc.ReadResult(f.Name, outDir, code, nil); err != nil {
		return &engine.BuildError{Command: "run_function " + f.Name, ExitCode: code, Err: err}
	}
	return nil
}
