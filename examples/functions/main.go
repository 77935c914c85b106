// Command functions runs Go functions of this program in containers, as Modal runs Python
// functions in its images:
//
//   - at build time, writeWeights runs in a container of the image (Image.RunFunction), with a
//     volume for its download cache, and what it writes becomes a layer that a later
//     run_commands reads;
//   - when called, greet runs in a container of the image and returns its result to this
//     program; fail's panic comes back as an error with the panic's message.
//
// Run it as root: go run ./examples/functions. It needs no network: the weights are made up.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/strata-build/strata"
)

// WeightsArgs are writeWeights' arguments.
type WeightsArgs struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

// writeWeights "downloads" model weights into the image, keeping a copy in the cache volume
// so that a second build with the same download is fast.
func writeWeights(ctx context.Context, a WeightsArgs) error {
	cached := "/root/.cache/weights/" + a.Name
	data, err := os.ReadFile(cached)
	if err != nil {
		data = []byte(weights(a.Name, a.Size))
		if err := os.MkdirAll("/root/.cache/weights", 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(cached, data, 0o644); err != nil {
			return err
		}
		fmt.Println("downloaded", a.Name)
	} else {
		fmt.Println("from the cache volume:", a.Name)
	}
	if err := os.MkdirAll("/weights", 0o755); err != nil {
		return err
	}
	return os.WriteFile("/weights/"+a.Name+".txt", data, 0o644)
}

// weights makes the "weights" of a model: a helper of writeWeights, so that changing it
// rebuilds writeWeights' layer.
func weights(name string, size int) string {
	return fmt.Sprintf("weights of %s: %s\n", name, strings.Repeat("0.5 ", size))
}

// GreetArgs are greet's arguments; Greeting is its result.
type GreetArgs struct{ Name string }
type Greeting struct {
	Text   string `json:"text"`
	Python string `json:"python"`
}

// image is the image both kinds of functions run in; a package-level variable, so that its
// RunFunction registers writeWeights before strata.Main runs in the container.
var image = strata.DebianSlim("3.13").
	RunFunctionWith(writeWeights, strata.RunFunctionOptions{
		Args:    WeightsArgs{Name: "tiny", Size: 4},
		Volumes: map[string]string{"/root/.cache": "functions-example-cache"},
	}).
	RunCommands("wc -c < /weights/tiny.txt > /weights/size-seen-by-run-commands")

var greet = strata.NewFunction(image, func(ctx context.Context, a GreetArgs) (Greeting, error) {
	out, err := os.ReadFile("/weights/size-seen-by-run-commands")
	if err != nil {
		return Greeting{}, err
	}
	py, _ := os.ReadFile("/usr/bin/python3") // the image's, not this machine's
	return Greeting{Text: fmt.Sprintf("hello %s, from a container with %s bytes of weights", a.Name, strings.TrimSpace(string(out))), Python: fmt.Sprintf("%d bytes", len(py))}, nil
}, strata.FunctionOptions{})

var fail = strata.NewFunction(image, func(ctx context.Context, _ struct{}) (string, error) {
	panic("this function always panics")
}, strata.FunctionOptions{})

func main() {
	strata.Main() // in a container started for a function: runs it and exits
	log.SetFlags(0)
	ctx := context.Background()
	built, err := image.Build(ctx, strata.WithName("functions-example"), strata.WithProgress(func(ev strata.Event) {
		if ev.Status == strata.StatusLog {
			log.Printf("#%d %s", ev.Index, ev.Line)
		} else {
			log.Printf("#%d %s %s", ev.Index, ev.Method, ev.Status)
		}
	}))
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("built %s", built.Manifest)
	g, err := greet.Call(ctx, GreetArgs{Name: "strata"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(g.Text)
	_, err = fail.Call(ctx, struct{}{})
	var fe *strata.FunctionError
	if !errors.As(err, &fe) || fe.Panic == "" {
		log.Fatalf("the panicking function gave %v", err)
	}
	fmt.Println("the panicking function:", fe.Panic)
}
