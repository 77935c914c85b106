package gofunc

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// The protocol between the host and a program started in a container to run one of its
// functions: the program and the call's arguments are in Dir (read-only), the result goes
// to Out, and the function's name is in the environment.
const (
	Dir       = "/.strata/fn"
	Out       = "/.strata/out"
	Program   = Dir + "/program"
	ArgsFile  = Dir + "/args.json"
	Result    = Out + "/result.json"
	EnvName   = "STRATA_FUNCTION"
	EnvCalled = "STRATA_FUNCTION_CALL"
	// EnvExit, when set, makes a failed call exit 1 with its failure on stderr, besides the
	// result: for an engine that cannot read Out back (BuildKit discards a failed step's
	// mounts), the exit code and the log carry it.
	EnvExit = "STRATA_FUNCTION_EXIT"
	// EnvTimeout, when set, is the call's timeout in seconds, which the program enforces
	// itself: for an engine that cannot stop one step (a BuildKit solve).
	EnvTimeout = "STRATA_FUNCTION_TIMEOUT"
)

// TimeoutExitCode is the exit code of a call stopped by its EnvTimeout, as timeout(1)'s.
const TimeoutExitCode = 124

// CallResult is what the program writes back: the result, or the error or the panic.
type CallResult struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Panic  string          `json:"panic,omitempty"`
	Stack  string          `json:"stack,omitempty"`
}

// Failure is a function that failed in its container: its error, or its panic with the
// stack, or the program's own failure when it did not reach the function.
type Failure struct {
	Name  string
	Err   string
	Panic string
	Stack string
	// ExitCode is set when the program exited without a result.
	ExitCode int
}

func (e *Failure) Error() string {
	switch {
	case e.Panic != "":
		return fmt.Sprintf("function %s panicked: %s\n%s", e.Name, e.Panic, e.Stack)
	case e.Err != "":
		return fmt.Sprintf("function %s: %s", e.Name, e.Err)
	}
	return fmt.Sprintf("function %s: the program exited (code %d) without a result: its main must call strata.Main() first, and the function must be registered before that", e.Name, e.ExitCode)
}

// ReadResult reads a call's result from the host folder that was mounted at Out; a
// failure is a *Failure. out, if not nil, receives the decoded result.
func ReadResult(name, outDir string, exitCode int, out any) error {
	b, err := os.ReadFile(filepath.Join(outDir, filepath.Base(Result)))
	if err != nil {
		return &Failure{Name: name, ExitCode: exitCode}
	}
	var res CallResult
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("function %s: its result is not JSON: %w", name, err)
	}
	if res.Error != "" || res.Panic != "" {
		return &Failure{Name: name, Err: res.Error, Panic: res.Panic, Stack: res.Stack}
	}
	if out != nil && len(res.Result) > 0 {
		if err := json.Unmarshal(res.Result, out); err != nil {
			return fmt.Errorf("function %s: decoding its result: %w", name, err)
		}
	}
	return nil
}

// Prepare lays out, in work, what a call's container mounts: the folder for Dir with the
// arguments and a file the program is mounted onto, and the folder for Out, which any user
// of the image can write.
func Prepare(work string, args []byte) (fnDir, outDir string, err error) {
	fnDir, outDir = filepath.Join(work, "fn"), filepath.Join(work, "out")
	for _, d := range []string{fnDir, outDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", err
		}
	}
	if err := os.Chmod(outDir, 0o777); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(fnDir, filepath.Base(ArgsFile)), args, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(fnDir, filepath.Base(Program)), nil, 0o755); err != nil {
		return "", "", err
	}
	return fnDir, outDir, nil
}
