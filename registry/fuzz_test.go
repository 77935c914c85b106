package registry

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/strata-build/strata/internal/fuzzing"
)

// FuzzCredentials: any image reference parses or fails with an error, and any docker config
// and credential-helper output give credentials or an error; nothing panics or hangs. The
// helper is a script that prints the fuzzed output, as docker-credential-* programs print
// theirs.
func FuzzCredentials(f *testing.F) {
	dir := f.TempDir()
	helper := "#!/bin/sh\ncat \"" + filepath.Join(dir, "out") + "\"\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-fuzz"), []byte(helper), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	f.Setenv("DOCKER_CONFIG", dir)
	f.Add("127.0.0.1:5000/team/app:v1", []byte(`{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"}}}`), []byte(""))
	f.Add("127.0.0.1:5000/a@sha256:0000000000000000000000000000000000000000000000000000000000000000", []byte(`{"credHelpers":{"127.0.0.1:5000":"fuzz"}}`), []byte(`{"ServerURL":"127.0.0.1:5000","Username":"u","Secret":"s"}`))
	f.Add("registry.example.com/x", []byte(`{"credsStore":"fuzz","auths":{"registry.example.com":{}}}`), []byte(`{"Username":"<token>","Secret":"t"}`))
	f.Add("[::1]:5000/a:b", []byte(`{"auths":{"[::1]:5000":{"identitytoken":"x","registrytoken":"y"}}}`), []byte("not json"))
	c := New(Options{Insecure: []string{"127.0.0.1:5000"}})
	f.Fuzz(func(t *testing.T, ref string, config, helperOut []byte) {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), config, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "out"), helperOut, 0o600); err != nil {
			t.Fatal(err)
		}
		fuzzing.Within(t, ref, func() {
			r, err := c.ParseReference(ref)
			if err != nil {
				return
			}
			a, err := authn.DefaultKeychain.Resolve(r.Context().Registry)
			if err == nil {
				_, _ = a.Authorization()
			}
		})
	})
}
