package gofunc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["go.mod"] = "module example.com/app\n\ngo 1.22\n"
	for p, c := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const mainGo = `package main

import (
	"fmt"

	"example.com/app/weights"
)

// Download fetches the model.
func Download() error {
	url := mirror("model")
	return weights.Fetch(url)
}

func mirror(name string) string { return "http://mirror/" + name }

func unrelated() { fmt.Println("not called") }

type cache struct{}

func (c *cache) Warm() { c.fill() }
func (c *cache) fill() {}

func main() {}
`

const weightsGo = `package weights

func Fetch(url string) error { return check(url) }

func check(string) error { return nil }

func Other() {}
`

// TestIdentityFollowsCalleesOnly: the identity holds the function, the same-module
// functions it calls (in its package and others), and nothing else; formatting and
// comments do not count.
func TestIdentityFollowsCalleesOnly(t *testing.T) {
	dir := writeModule(t, map[string]string{"main.go": mainGo, "weights/weights.go": weightsGo})
	id, err := FromSource(dir, "Download")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(id.Funcs, " "); got != "example.com/app.Download example.com/app.mirror example.com/app/weights.Fetch example.com/app/weights.check" {
		t.Errorf("funcs %s", got)
	}
	rehash := func(file, from, to string) string {
		t.Helper()
		p := filepath.Join(dir, file)
		b, _ := os.ReadFile(p)
		os.WriteFile(p, []byte(strings.Replace(string(b), from, to, 1)), 0o644)
		id, err := FromSource(dir, "Download")
		if err != nil {
			t.Fatal(err)
		}
		return id.Hash
	}
	h := id.Hash
	if rehash("main.go", `fmt.Println("not called")`, `fmt.Println("changed, still not called")`) != h {
		t.Error("changing an unrelated function changed the hash")
	}
	if rehash("weights/weights.go", "func Other() {}", "func Other() { _ = 1 }") != h {
		t.Error("changing an unrelated function of another package changed the hash")
	}
	if rehash("main.go", "// Download fetches the model.", "// Download fetches the model, now documented.") != h {
		t.Error("a comment changed the hash")
	}
	h2 := rehash("weights/weights.go", "func check(string) error { return nil }", "func check(u string) error { return nil }")
	if h2 == h {
		t.Error("changing a helper of a helper in another package did not change the hash")
	}
	if rehash("main.go", `"http://mirror/"`, `"https://mirror/"`) == h2 {
		t.Error("changing a helper did not change the hash")
	}
	// Methods are found by name.
	if id, err := FromSource(dir, "cache.Warm"); err != nil || len(id.Funcs) != 2 {
		t.Errorf("method: %v %v", id.Funcs, err)
	}
	if _, err := FromSource(dir, "Missing"); err == nil {
		t.Error("a missing function was found")
	}
}

func TestOfRefusesFunctionLiterals(t *testing.T) {
	if _, err := Of(func() {}); err == nil || !strings.Contains(err.Error(), "function literal") {
		t.Errorf("closure: %v", err)
	}
	if _, err := Of(42); err == nil {
		t.Error("a non-function was accepted")
	}
	// A named function of this module: gofunc's own.
	id, err := Of(FromSource)
	if err != nil || id.Name != "github.com/strata-build/strata/gofunc.FromSource" || len(id.Funcs) < 3 {
		t.Errorf("Of(FromSource) = %+v, %v", id, err)
	}
}
