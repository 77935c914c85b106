package strata

import (
	"errors"
	"fmt"
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
