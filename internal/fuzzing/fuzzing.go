// Package fuzzing holds what the fuzz targets share.
package fuzzing

import (
	"runtime"
	"testing"
	"time"
)

// Limit is how long one input may take: longer is a hang, which is a bug.
const Limit = time.Second

// MaxAlloc is how much memory one input may allocate: more is a memory bomb (an input that
// makes a parser allocate far beyond its own size), which is a bug.
const MaxAlloc = 256 << 20

// Within runs f and fails the input if it takes longer than Limit or allocates more than
// MaxAlloc bytes.
func Within(t *testing.T, input any, f func()) {
	t.Helper()
	done := make(chan uint64, 1)
	go func() {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		done <- after.TotalAlloc - before.TotalAlloc
	}()
	select {
	case n := <-done:
		if n > MaxAlloc {
			t.Fatalf("an input allocated %d MiB, over %d MiB (a memory bomb): %q", n>>20, MaxAlloc>>20, input)
		}
	case <-time.After(Limit):
		t.Fatalf("an input took over %v (a hang): %q", Limit, input)
	}
}
