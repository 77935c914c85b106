// Command fnlatency measures the time from calling a Go function on a built image to its
// first line of output, against podman run of the same image printing a line, side by side
// in one run. Run it through bench/functions.sh.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"sort"
	"sync"
	"time"

	"github.com/strata-build/strata"
)

var image = strata.DebianSlim("3.13")

var hello = strata.NewFunction(image, func(ctx context.Context, _ struct{}) (string, error) {
	fmt.Println("first line")
	return "done", nil
}, strata.FunctionOptions{Stdout: firstLine})

// firstLine records when the function's first output arrives.
var firstLine = &stamp{}

type stamp struct {
	mu sync.Mutex
	at time.Time
}

func (s *stamp) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.at.IsZero() {
		s.at = time.Now()
	}
	s.mu.Unlock()
	return len(p), nil
}

func (s *stamp) reset() { s.mu.Lock(); s.at = time.Time{}; s.mu.Unlock() }

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func main() {
	strata.Main()
	n := flag.Int("n", 9, "runs of each")
	podmanImage := flag.String("podman-image", "", "the same image in podman's store")
	flag.Parse()
	ctx := context.Background()
	if _, err := image.Build(ctx, strata.WithName("fnlatency")); err != nil {
		log.Fatal(err)
	}
	if _, err := hello.Call(ctx, struct{}{}); err != nil { // warm: the image built, the program found
		log.Fatal(err)
	}
	var s, p []time.Duration
	for i := 0; i < *n; i++ {
		firstLine.reset()
		start := time.Now()
		if _, err := hello.Call(ctx, struct{}{}); err != nil {
			log.Fatal(err)
		}
		s = append(s, firstLine.at.Sub(start))

		cmd := exec.Command("podman", "run", "--rm", "--runtime", "runc", "--network", "host",
			"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", *podmanImage, "echo", "first line")
		out, err := cmd.StdoutPipe()
		if err != nil {
			log.Fatal(err)
		}
		start = time.Now()
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		r := bufio.NewReader(out)
		if _, err := r.ReadString('\n'); err != nil {
			log.Fatal(err)
		}
		p = append(p, time.Since(start))
		cmd.Wait()
	}
	fmt.Printf("%-28s %10s %10s %12s\n", "case", "strata", "podman", "strata/podman")
	ms, mp := median(s), median(p)
	fmt.Printf("%-28s %9.1fms %9.1fms %12.3f\n", "call to first line (median)", float64(ms.Microseconds())/1000, float64(mp.Microseconds())/1000, float64(ms)/float64(mp))
	fmt.Fprintf(os.Stderr, "medians of %d runs each; every figure comes from this run\n", *n)
}
