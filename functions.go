package strata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-build/strata/gofunc"
	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/spec"
)

// Go functions run in containers of an image: at build time (Image.RunFunction), and when
// called (Function.Call). The program itself is the function's carrier: strata mounts a
// Linux build of it into the container and starts it with the function's name, and Main,
// which the program's main calls first, runs that function and exits.
//
//	func main() {
//		strata.Main() // in a container started for a function: runs it and exits
//		...           // the program's own work, on the host
//	}
//
// A program whose main does not call strata.Main first runs its own main in the container
// instead; strata sees that no result came back and says so.

var (
	registryMu sync.Mutex
	registered = map[string]reflect.Value{}
	// mainFile is the source file that called Main: a program that cannot run in a
	// container is rebuilt from its folder (with go test -c when it is a test).
	mainFile string
)

// Register makes fn callable in containers under name (RunFunction registers the functions
// it is given itself). fn takes an optional context.Context and an optional argument that
// JSON can decode, and returns an optional result that JSON can encode and an optional
// error: func(ctx context.Context, args A) (R, error), func(A) R, func() error, func().
func Register(name string, fn any) {
	if err := checkFunc(fn); err != nil {
		panic(fmt.Sprintf("strata.Register(%q): %v", name, err))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	registered[name] = reflect.ValueOf(fn)
}

var (
	contextType = reflect.TypeOf((*context.Context)(nil)).Elem()
	errorType   = reflect.TypeOf((*error)(nil)).Elem()
)

// checkFunc checks that fn has a shape Register takes.
func checkFunc(fn any) error {
	t := reflect.TypeOf(fn)
	if t == nil || t.Kind() != reflect.Func {
		return fmt.Errorf("%T is not a function", fn)
	}
	in := 0
	if t.NumIn() > in && t.In(in) == contextType {
		in++
	}
	if t.NumIn() > in+1 || t.IsVariadic() {
		return fmt.Errorf("%s takes too many arguments: take a context and one argument (a struct for several)", t)
	}
	out := t.NumOut()
	if out > 0 && t.Out(out-1) == errorType {
		out--
	}
	if out > 1 {
		return fmt.Errorf("%s returns too many values: return one result and an error", t)
	}
	return nil
}

// functionName is the name a function is registered under: its runtime name.
func functionName(fn any) string {
	return runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
}

// Main runs the registered function a container was started for, writes its result and
// exits. Started otherwise by an ordinary user, it re-runs the program in a user namespace
// (where the user is root and the user's subordinate ids are the other ids), so that the
// program can build rootless; as root it returns at once. Call it first in main: the program
// runs again from the start. If the host cannot give the user a user namespace, Main returns,
// and Open says why.
func Main() {
	if _, file, _, ok := runtime.Caller(1); ok {
		mainFile = file
	}
	name := os.Getenv(gofunc.EnvName)
	if name == "" || os.Getenv(gofunc.EnvCalled) == "" {
		enterErr = rootless.Enter()
		return
	}
	if secs, err := strconv.Atoi(os.Getenv(gofunc.EnvTimeout)); err == nil && secs > 0 {
		timeout := time.Duration(secs) * time.Second
		time.AfterFunc(timeout, func() {
			fmt.Fprintf(os.Stderr, "strata: function %s ran past its timeout of %s and was stopped\n", name, timeout)
			os.Exit(gofunc.TimeoutExitCode)
		})
	}
	res := runRegistered(name)
	b, err := json.Marshal(res)
	if err == nil {
		err = os.WriteFile(gofunc.Result, b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata: writing the result of %s: %v\n", name, err)
		os.Exit(2)
	}
	if os.Getenv(gofunc.EnvExit) != "" && (res.Error != "" || res.Panic != "") {
		fmt.Fprintf(os.Stderr, "strata: %v\n", &gofunc.Failure{Name: name, Err: res.Error, Panic: res.Panic, Stack: res.Stack})
		os.Exit(1)
	}
	os.Exit(0)
}

// runRegistered calls a registered function with the arguments in the container, turning
// a panic into the result's panic message and stack.
func runRegistered(name string) (res gofunc.CallResult) {
	registryMu.Lock()
	fn, ok := registered[name]
	registryMu.Unlock()
	if !ok {
		var names []string
		for n := range registered {
			names = append(names, n)
		}
		sort.Strings(names)
		return gofunc.CallResult{Error: fmt.Sprintf("no function %q is registered when strata.Main runs (registered: %s): register functions before it, in package-level variables or init: strata.NewFunction, strata.Register, or an image chain with RunFunction in a package-level variable", name, strings.Join(names, ", "))}
	}
	defer func() {
		if p := recover(); p != nil {
			res = gofunc.CallResult{Panic: fmt.Sprint(p), Stack: string(debug.Stack())}
		}
	}()
	t := fn.Type()
	var args []reflect.Value
	i := 0
	if t.NumIn() > 0 && t.In(0) == contextType {
		args = append(args, reflect.ValueOf(context.Background()))
		i++
	}
	if t.NumIn() > i {
		arg := reflect.New(t.In(i))
		if b, err := os.ReadFile(gofunc.ArgsFile); err == nil && len(b) > 0 {
			if err := json.Unmarshal(b, arg.Interface()); err != nil {
				return gofunc.CallResult{Error: fmt.Sprintf("decoding the arguments of %s as %s: %v", name, t.In(i), err)}
			}
		}
		args = append(args, arg.Elem())
	}
	out := fn.Call(args)
	if n := len(out); n > 0 && t.Out(n-1) == errorType {
		if err, _ := out[n-1].Interface().(error); err != nil {
			return gofunc.CallResult{Error: err.Error()}
		}
		out = out[:n-1]
	}
	if len(out) == 1 {
		b, err := json.Marshal(out[0].Interface())
		if err != nil {
			return gofunc.CallResult{Error: fmt.Sprintf("encoding the result of %s: %v", name, err)}
		}
		res.Result = b
	}
	return res
}

// FunctionError is a function that failed in its container: its error, or its panic with
// the stack, or the program's own failure when it did not reach the function.
type FunctionError = gofunc.Failure

// ErrTimeout is the class of functions stopped for running past their timeout.
var ErrTimeout = errors.New("timed out")

// defaultTimeout is how long a function may run unless told otherwise, as Modal's.
const defaultTimeout = time.Hour

// RunFunctionOptions are the parameters of run_function.
type RunFunctionOptions struct {
	// Function names a registered function (Register); the spec file's way to name one.
	// RunFunction's fn, when given, comes first.
	Function string `yaml:"function"`
	// Args are the function's argument, encoded as JSON.
	Args any `yaml:"args"`
	// Volumes mount named volumes while it runs, by absolute path; what it writes there
	// stays in the volume, not in the layer.
	Volumes map[string]string `yaml:"volumes"`
	// Timeout stops it (default one hour).
	Timeout      time.Duration `yaml:"timeout"`
	LayerOptions `yaml:",inline"`
}

// RunFunction runs a Go function of this program in a container of the image at build
// time, as Modal's run_function runs a Python one: what it leaves in the file system (not in
// volumes) becomes a layer. Its cache key holds a hash of its source and of the functions
// of the same module it calls, its arguments and settings, and never secret values or the
// binary, so an unrelated change to the program does not rebuild it. The program's main
// must call strata.Main first, and the function must be registered before that: build the
// chain in a package-level variable, or call strata.Register in init.
func (img Image) RunFunction(fn any) Image {
	return img.RunFunctionWith(fn, RunFunctionOptions{})
}

// RunFunctionWith is RunFunction with all options; fn may be nil when o.Function names a
// registered function.
func (img Image) RunFunctionWith(fn any, o RunFunctionOptions) Image {
	// Registered now, as the chain is made: in a container, the program must know the
	// function before strata.Main runs, so a chain in a package-level variable registers it
	// in time.
	fnErr := checkFunc(fn)
	if fn != nil && fnErr == nil {
		Register(functionName(fn), fn)
	}
	return img.then("run_function", o.ForceBuild, func(r *resolver) (*spec.Layer, error) {
		name := o.Function
		if fn != nil {
			if fnErr != nil {
				return nil, fnErr
			}
			name = functionName(fn)
		} else {
			registryMu.Lock()
			v, ok := registered[name]
			registryMu.Unlock()
			if name == "" || !ok {
				return nil, fmt.Errorf("function %q is not registered by this program: a spec file's run_function names a function that the Go program loading it registered with strata.Register", name)
			}
			fn = v.Interface()
		}
		id, err := gofunc.Of(fn)
		if err != nil {
			return nil, fmt.Errorf("function %s: %w", name, err)
		}
		l, err := r.layer(o.LayerOptions)
		if err != nil {
			return nil, err
		}
		ref := &spec.FunctionRef{Name: name, Source: id.Hash, Timeout: int64(o.Timeout / time.Second)}
		if o.Args != nil {
			b, err := json.Marshal(o.Args)
			if err != nil {
				return nil, fmt.Errorf("args: %v cannot be encoded as JSON: %w", o.Args, err)
			}
			ref.Args = string(b)
		}
		if o.Timeout < 0 {
			return nil, fmt.Errorf("timeout %s is negative", o.Timeout)
		}
		l.Function = ref
		if l.Volumes, err = volumeMounts(o.Volumes); err != nil {
			return nil, err
		}
		return l, nil
	})
}

// FunctionOptions say how a function runs when it is called.
type FunctionOptions struct {
	// Secrets name secrets whose pairs the function gets as environment.
	Secrets []string
	// Volumes mount named volumes by absolute path: {"/root/.cache": "hf-cache"}.
	Volumes map[string]string
	// GPU asks for accelerators: "H100", "a10g:2", "any".
	GPU string
	// Timeout stops a call (default one hour).
	Timeout time.Duration
	// Env are more environment variables.
	Env map[string]string
	// Stdout and Stderr receive what the function prints (default: this process's).
	Stdout, Stderr io.Writer
	// Options reach the engine that builds the image and runs the calls (WithHome...).
	Options []Option
}

// Func is a Go function of this program that runs in a container of an image when called,
// as a Modal function runs in its image. Its arguments and result cross as JSON.
type Func[A, R any] struct {
	name  string
	image Image
	o     FunctionOptions

	mu    sync.Mutex
	built *Built
}

// NewFunction registers fn and returns a handle that runs it in containers of image. The
// program's main must call strata.Main first, and NewFunction must run before it (in a
// package-level variable or init), so that the program in the container knows fn too.
func NewFunction[A, R any](image Image, fn func(context.Context, A) (R, error), o FunctionOptions) *Func[A, R] {
	name := functionName(fn)
	Register(name, fn)
	return &Func[A, R]{name: name, image: image, o: o}
}

// Name is the function's name in the program.
func (f *Func[A, R]) Name() string { return f.name }

// Call runs the function with args in a new container of the image (built first if it is
// not, from the cache when it can be) and returns its result, or its error or panic as a
// *FunctionError. Calls at the same time run in separate containers.
func (f *Func[A, R]) Call(ctx context.Context, args A) (R, error) {
	var zero R
	b, err := f.image.buildOnce(ctx, &f.mu, &f.built, f.o.Options)
	if err != nil {
		return zero, err
	}
	program, err := programBinary(ctx, b.c.home, b.platform())
	if err != nil {
		return zero, err
	}
	in, err := json.Marshal(args)
	if err != nil {
		return zero, fmt.Errorf("function %s: its arguments cannot be encoded as JSON: %w", f.name, err)
	}
	work, err := os.MkdirTemp("", "strata-call-")
	if err != nil {
		return zero, err
	}
	defer os.RemoveAll(work)
	fnDir, outDir, err := gofunc.Prepare(work, in)
	if err != nil {
		return zero, err
	}
	timeout := f.o.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env := []string{gofunc.EnvName + "=" + f.name, gofunc.EnvCalled + "=1"}
	for _, kv := range spec.SortedKVs(f.o.Env) {
		env = append(env, kv.Key+"="+kv.Value)
	}
	stdout, stderr := f.o.Stdout, f.o.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	err = b.Run(callCtx, RunOptions{
		Entrypoint: []string{gofunc.Program},
		Env:        env,
		Secrets:    f.o.Secrets,
		Volumes:    f.o.Volumes,
		GPU:        f.o.GPU,
		Binds: []Bind{
			{Source: fnDir, Target: gofunc.Dir, ReadOnly: true},
			{Source: program, Target: gofunc.Program, ReadOnly: true},
			{Source: outDir, Target: gofunc.Out},
		},
		Stdout: stdout,
		Stderr: stderr,
	})
	code := 0
	var ee *ExitError
	switch {
	case errors.Is(callCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		return zero, fmt.Errorf("function %s ran past its timeout of %s and was stopped: %w", f.name, timeout, ErrTimeout)
	case errors.As(err, &ee):
		code = ee.Code
	case err != nil:
		return zero, err
	}
	var out R
	if err := gofunc.ReadResult(f.name, outDir, code, &out); err != nil {
		return zero, err
	}
	return out, nil
}

// buildOnce builds the image the first time a handle needs it and keeps it.
func (img Image) buildOnce(ctx context.Context, mu *sync.Mutex, built **Built, opts []Option) (*Built, error) {
	mu.Lock()
	defer mu.Unlock()
	if *built != nil {
		return *built, nil
	}
	b, err := img.Build(ctx, opts...)
	if err != nil {
		return nil, err
	}
	*built = b
	return b, nil
}
