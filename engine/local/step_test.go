package local

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/engine/imageconfig"
	"github.com/strata-build/strata/spec"
)

func TestStageMountsCopiesAcrossFileSystems(t *testing.T) {
	// /dev/shm is another file system than the temp folder, so a hard link fails there.
	src, err := os.MkdirTemp("/dev/shm", "strata-stage-")
	if err != nil {
		t.Skip("no /dev/shm")
	}
	defer os.RemoveAll(src)
	os.WriteFile(filepath.Join(src, "run.sh"), []byte("echo hi\n"), 0o755)
	dir := t.TempDir()
	err = stageMounts(dir, []engine.Mount{{Method: "add_local_dir", Sources: []spec.LocalSource{{Local: src, Prefix: "app"}}}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "app", "run.sh"))
	if err != nil || info.Mode().Perm() != 0o755 {
		t.Fatalf("staged file: %v %v", info, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "app", "run.sh")); string(b) != "echo hi\n" {
		t.Errorf("staged content %q", b)
	}
}

// TestStepEnvLetsTheUserChooseTheCABundle: strata points tools at the host's CA bundle only
// where neither the image, the layer nor a secret chose one, so a private index with its own
// CA keeps working.
func TestStepEnvLetsTheUserChooseTheCABundle(t *testing.T) {
	epoch := int64(1700000000)
	env := stepEnv(
		[]string{"PATH=/opt/bin", "REQUESTS_CA_BUNDLE=/image/ca.pem"},
		&spec.Layer{Env: []spec.KV{{Key: "PIP_CERT", Value: "/layer/ca.pem"}}, SourceDateEpoch: &epoch},
		[]string{"GIT_SSL_CAINFO=/secret/ca.pem", "TOKEN=x=y"},
		true)
	want := map[string]string{
		"PATH": "/opt/bin", "REQUESTS_CA_BUNDLE": "/image/ca.pem", "PIP_CERT": "/layer/ca.pem",
		"GIT_SSL_CAINFO": "/secret/ca.pem", "TOKEN": "x=y", "SOURCE_DATE_EPOCH": "1700000000",
		"SSL_CERT_FILE": "/.strata/ca-certificates.crt", "CURL_CA_BUNDLE": "/.strata/ca-certificates.crt",
		"NODE_EXTRA_CA_CERTS": "/.strata/ca-certificates.crt",
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := got[k]; dup {
			t.Errorf("%s is set twice", k)
		}
		got[k] = v
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	// Without a host bundle nothing points at it, and PATH gets Docker's default.
	for _, kv := range stepEnv(nil, &spec.Layer{}, nil, false) {
		if kv != "PATH="+imageconfig.DefaultPath {
			t.Errorf("unexpected %s", kv)
		}
	}
}
