// Command fnprog is the integration tests' program of Go functions: it builds an image with
// a build-time function and calls functions in it, as its arguments say, and prints what it
// got, one result per line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/strata-build/strata"
)

type fillArgs struct{ Marker string }

// fill writes into the image and into the volume: the volume's file must reach later
// containers, and no layer.
func fill(ctx context.Context, a fillArgs) error {
	if err := os.WriteFile("/in-image.txt", []byte(a.Marker+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile("/vol/in-volume.txt", []byte(a.Marker+"\n"), 0o644)
}

var marker = os.Getenv("FNPROG_MARKER")

var image = strata.DebianSlim("3.13").
	RunFunctionWith(fill, strata.RunFunctionOptions{Args: fillArgs{Marker: marker}, Volumes: map[string]string{"/vol": "fnprog-" + marker}}).
	RunCommands("cat /in-image.txt > /seen-by-run.txt")

type echoArgs struct{ Text string }

var echo = strata.NewFunction(image, func(ctx context.Context, a echoArgs) (string, error) {
	seen, err := os.ReadFile("/seen-by-run.txt")
	return fmt.Sprintf("%s|%s", a.Text, strings.TrimSpace(string(seen))), err
}, strata.FunctionOptions{})

var boom = strata.NewFunction(image, func(ctx context.Context, _ struct{}) (int, error) {
	panic("boom, from the container")
}, strata.FunctionOptions{})

var fails = strata.NewFunction(image, func(ctx context.Context, _ struct{}) (int, error) {
	return 0, errors.New("an ordinary error")
}, strata.FunctionOptions{})

var slow = strata.NewFunction(image, func(ctx context.Context, _ struct{}) (int, error) {
	fmt.Println("slow started")
	time.Sleep(10 * time.Minute)
	return 1, nil
}, strata.FunctionOptions{Timeout: 3 * time.Second})

func main() {
	strata.Main()
	calls := flag.String("calls", "echo,boom,fails,slow,concurrent", "what to call")
	flag.Parse()
	ctx := context.Background()
	b, err := image.Build(ctx, strata.WithName("fnprog"), strata.WithProgress(func(ev strata.Event) {
		if ev.Status != strata.StatusLog {
			fmt.Fprintf(os.Stderr, "#%d %s %s\n", ev.Index, ev.Method, ev.Status)
		}
	}))
	if err != nil {
		fmt.Println("build:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "built", b.Manifest)
	for _, c := range strings.Split(*calls, ",") {
		switch c {
		case "echo":
			out, err := echo.Call(ctx, echoArgs{Text: "hi"})
			fmt.Printf("echo: %q %v\n", out, err)
		case "boom":
			_, err := boom.Call(ctx, struct{}{})
			var fe *strata.FunctionError
			msg := ""
			if errors.As(err, &fe) {
				msg = fe.Panic
			}
			fmt.Printf("boom: %q\n", msg)
		case "fails":
			_, err := fails.Call(ctx, struct{}{})
			fmt.Printf("fails: %v\n", err)
		case "slow":
			start := time.Now()
			_, err := slow.Call(ctx, struct{}{})
			fmt.Printf("slow: timeout=%v within=%v\n", errors.Is(err, strata.ErrTimeout), time.Since(start) < time.Minute)
		case "concurrent":
			var wg sync.WaitGroup
			outs := make([]string, 2)
			for i := range outs {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					out, err := echo.Call(ctx, echoArgs{Text: fmt.Sprint("call", i)})
					outs[i] = fmt.Sprintf("%s %v", out, err)
				}(i)
			}
			wg.Wait()
			fmt.Printf("concurrent: %s\n", strings.Join(outs, " "))
		}
	}
}
