package strata

import (
	"errors"
	"fmt"

	"github.com/strata-build/strata/engine"
)

// ErrInvalid is the class of every error about a bad image definition; test with errors.Is.
var ErrInvalid = errors.New("invalid image definition")

// Error is a problem with one layer of an image definition.
type Error struct {
	// Index is the layer's position in the chain, the constructor being 0.
	Index int
	// Method is the chain method, in Modal's snake_case (apt_install).
	Method string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("layer %d (%s): %v", e.Index, e.Method, e.Err)
}

// Unwrap returns ErrInvalid and the cause.
func (e *Error) Unwrap() []error { return []error{ErrInvalid, e.Err} }

// ErrRootless is the class of errors about running as an ordinary user on a host, or in a
// program, that cannot give strata a user namespace; each says what to change.
var ErrRootless = errors.New("strata cannot build as this user")

// ErrNotFound is the class of errors about an image, layer or log that does not
// exist; test with errors.Is.
var ErrNotFound = engine.ErrNotFound

// ErrDiskFull is the class of errors about a full disk under the store (a step that filled
// it, or strata's own writes); the error names the store and the space left. The store is
// left as it was. Test with errors.Is.
var ErrDiskFull = engine.ErrDiskFull

// ErrLimit is the class of errors about an image past one of strata's resource limits: a
// layer that uncompresses to more than STRATA_MAX_LAYER_SIZE or holds more files than
// STRATA_MAX_LAYER_FILES, more layers than overlayfs stacks, a manifest over 4 MiB. Test with
// errors.Is.
var ErrLimit = engine.ErrLimit

// BuildError is a failed build step: it names the layer, the command, its exit code and the
// last lines of its log.
type BuildError struct {
	// Index is the layer's position in the plan, the root being 0.
	Index  int
	Method string
	// Key is the layer's cache key; Client.Log opens its full log.
	Key     string
	Command string
	// ExitCode is the failed command's exit code (0 if the step failed otherwise).
	ExitCode int
	// Tail is the last lines of the step's log.
	Tail []string
	// Log is where the full log is.
	Log string
	Err error
}

func (e *BuildError) Error() string { return (*engine.BuildError)(e).Error() }

func (e *BuildError) Unwrap() error { return e.Err }

// ExitError is a process run in a container that exited non-zero, or was killed by a signal
// (Code is then 128 + the signal).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit code %d", e.Code) }

// fromEngine turns the engine's error types into the SDK's.
func fromEngine(err error) error {
	var be *engine.BuildError
	if errors.As(err, &be) {
		return (*BuildError)(be)
	}
	var ee *engine.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Code: ee.Code}
	}
	return err
}
