// Package fuzzing holds what the fuzz targets share.
package fuzzing

import (
	"testing"
	"time"
)

// Limit is how long one input may take: longer is a hang, which is a bug.
const Limit = time.Second

// Within runs f and fails the input if it takes longer than Limit.
func Within(t *testing.T, input any, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(Limit):
		t.Fatalf("an input took over %v (a hang): %q", Limit, input)
	}
}
