// Command fnbk is the integration tests' program of Go functions run at build time on the
// BuildKit engine (at FNBK_ADDR): one image whose function writes a file that a later step
// reads, one whose function fails, and one whose function runs past its timeout. It prints
// each build's outcome, one per line.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/strata-build/strata"
	_ "github.com/strata-build/strata/engine/buildkit" // the engine strata.WithEngine names
)

type fillArgs struct{ Marker string }

func fill(ctx context.Context, a fillArgs) error {
	return os.WriteFile("/in-image.txt", []byte(a.Marker+"|"+os.Getenv("FNBK_SECRET_SEEN")+"\n"), 0o644)
}

func fails(ctx context.Context, a fillArgs) error {
	return errors.New("an ordinary error, " + a.Marker)
}

func slow(ctx context.Context, a fillArgs) error {
	fmt.Println("slow started")
	time.Sleep(10 * time.Minute)
	return nil
}

var marker = os.Getenv("FNBK_MARKER")

var (
	good = strata.DebianSlim("3.13").
		RunFunctionWith(fill, strata.RunFunctionOptions{Args: fillArgs{Marker: marker}, LayerOptions: strata.LayerOptions{Secrets: []string{"fnbk-secret"}}}).
		RunCommands("cat /in-image.txt > /seen-by-run.txt")
	bad     = strata.DebianSlim("3.13").RunFunctionWith(fails, strata.RunFunctionOptions{Args: fillArgs{Marker: marker}})
	stopped = strata.DebianSlim("3.13").RunFunctionWith(slow, strata.RunFunctionOptions{Args: fillArgs{Marker: marker}, Timeout: 3 * time.Second})
)

func main() {
	strata.Main()
	ctx := context.Background()
	for _, c := range []struct {
		name string
		img  strata.Image
	}{{"good", good}, {"bad", bad}, {"stopped", stopped}} {
		_, err := c.img.Build(ctx, strata.WithName("fnbk-"+c.name), strata.WithEngine("buildkit", os.Getenv("FNBK_ADDR")))
		fmt.Printf("%s: %v\n", c.name, err)
	}
}
