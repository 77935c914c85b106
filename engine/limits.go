package engine

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/strata-build/strata/internal/units"
)

// ErrLimit is the class of errors about an image past one of strata's resource limits (a
// layer that uncompresses to more bytes, or holds more files, than Limits allow; more layers
// than overlayfs stacks; a manifest larger than registries must take).
var ErrLimit = errors.New("past a resource limit")

// Limits bound what strata takes from images it did not build (pulled, fetched from a
// registry cache, imported), so that a decompression bomb or a hostile layer fails with an
// error naming the limit before it fills the disk.
type Limits struct {
	// LayerBytes is the most a layer may uncompress to, its tar's size
	// (STRATA_MAX_LAYER_SIZE; default 256 GiB).
	LayerBytes int64
	// LayerFiles is the most entries a layer's tar may hold (STRATA_MAX_LAYER_FILES; default
	// 10,000,000).
	LayerFiles int64
}

// Environment variables that set Limits.
const (
	EnvMaxLayerSize  = "STRATA_MAX_LAYER_SIZE"
	EnvMaxLayerFiles = "STRATA_MAX_LAYER_FILES"
)

// DefaultLimits are the limits when nothing sets them.
var DefaultLimits = Limits{LayerBytes: 256 << 30, LayerFiles: 10_000_000}

// LimitsFromEnv reads STRATA_MAX_LAYER_SIZE (bytes, or with a K, M, G or T suffix, powers of
// 1024) and STRATA_MAX_LAYER_FILES over the defaults.
func LimitsFromEnv() (Limits, error) {
	l := DefaultLimits
	if v := os.Getenv(EnvMaxLayerSize); v != "" {
		n, err := units.ParseBytes(v)
		if err != nil || n <= 0 {
			return l, fmt.Errorf("%s=%q: want a size in bytes, such as 500M or 64G", EnvMaxLayerSize, v)
		}
		l.LayerBytes = n
	}
	if v := os.Getenv(EnvMaxLayerFiles); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return l, fmt.Errorf("%s=%q: want a whole number of files, such as 1000000", EnvMaxLayerFiles, v)
		}
		l.LayerFiles = n
	}
	return l, nil
}

// LimitError is an image past a limit.
type LimitError struct {
	What string // "layer sha256:…"
	Past string // what it passed, and how to raise the limit
}

func (e *LimitError) Error() string { return e.What + " " + e.Past }

func (e *LimitError) Unwrap() error { return ErrLimit }
