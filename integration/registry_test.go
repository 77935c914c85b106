package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/crypto/bcrypt"

	"github.com/strata-build/strata"
)

// tinyImage is a small runnable image: a static Go program, and a data file in a layer of
// its own. The program prints its greeting and the data file.
func tinyImage(t *testing.T, greeting string) strata.Image {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "main.go", `package main

import (
	"fmt"
	"os"
)

func main() {
	data, err := os.ReadFile("/data/message.txt")
	if err != nil {
		fmt.Println(err)
		os.Exit(3)
	}
	fmt.Printf("%s %s", os.Args[1:], data)
}
`)
	write(t, dir, "go.mod", "module hello\n\ngo 1.22\n")
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "hello"), ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-trimpath")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	write(t, dir, "data/message.txt", greeting+"\n")
	return strata.FromScratch().
		AddLocalFileWith(strata.AddLocalFileOptions{LocalPath: filepath.Join(dir, "hello"), RemotePath: "/hello", Copy: true}).
		AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: filepath.Join(dir, "data"), RemotePath: "/data", Copy: true}).
		Entrypoint("/hello").Cmd("hi")
}

// counting is a reverse proxy in front of a registry that counts the blob bytes pushed
// through it.
type counting struct {
	addr      string
	blobBytes atomic.Int64
	uploads   atomic.Int64
	mounts    atomic.Int64
}

func countingProxy(t *testing.T, registryAddr string) *counting {
	t.Helper()
	target, _ := url.Parse("http://" + registryAddr)
	rp := httputil.NewSingleHostReverseProxy(target)
	c := &counting{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/uploads/") {
			switch {
			case r.Method == http.MethodPost && r.URL.Query().Get("mount") != "":
				c.mounts.Add(1)
			case r.Method == http.MethodPatch || (r.Method == http.MethodPut && r.ContentLength > 0):
				c.uploads.Add(1)
				r.Body = countBody{r.Body, &c.blobBytes}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.addr = strings.TrimPrefix(srv.URL, "http://")
	return c
}

type countBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func countFiles(t *testing.T, dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestPushPullRoundTrips pushes one image as gzip, zstd and eStargz, checks what the
// registry holds with go-containerregistry's validate.Image (and the eStargz table of
// contents with the estargz package), pulls each into a fresh store and runs it; a second
// push sends no blob and compresses nothing; skopeo and podman read the pushed image.
func TestPushPullRoundTrips(t *testing.T) {
	need(t, "runc", "skopeo", "podman")
	reg := countingProxy(t, registry(t))
	u := unique(t)
	build(t, tinyImage(t, u), "it-rt")
	fresh := []string{"STRATA_HOME=" + t.TempDir()}
	for _, comp := range []string{"gzip", "zstd", "estargz"} {
		ref := reg.addr + "/rt/tiny:" + comp
		out, err := cli(t, "push", "it-rt", ref, "--compression", comp)
		if err != nil || !strings.Contains(out, ref+"@sha256:") {
			t.Fatalf("push %s: %v\n%s", comp, err, out)
		}
		r, _ := name.ParseReference(ref, name.Insecure)
		img, err := remote.Image(r)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		cfg, _ := img.ConfigFile()
		if comp == "zstd" {
			// validate.Image reads every layer as gzip; check each zstd layer's diff ID here.
			ls, _ := img.Layers()
			for i, l := range ls {
				rc, err := l.Uncompressed()
				if err != nil {
					t.Fatal(err)
				}
				h, _, err := v1.SHA256(rc)
				rc.Close()
				if err != nil || h != cfg.RootFS.DiffIDs[i] {
					t.Errorf("zstd layer %d uncompresses to %v (%v), the config says %v", i, h, err, cfg.RootFS.DiffIDs[i])
				}
			}
		} else if err := validate.Image(img); err != nil {
			t.Errorf("%s: validate.Image: %v", comp, err)
		}
		for _, l := range m.Layers {
			switch comp {
			case "zstd":
				if l.MediaType != types.OCILayerZStd {
					t.Errorf("zstd layer has media type %s", l.MediaType)
				}
			case "estargz":
				toc := l.Annotations[estargz.TOCJSONDigestAnnotation]
				if toc == "" || l.Annotations[estargz.StoreUncompressedSizeAnnotation] == "" {
					t.Fatalf("estargz layer without its annotations: %v", l.Annotations)
				}
				layer, _ := img.LayerByDigest(l.Digest)
				rc, _ := layer.Compressed()
				blob, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				er, err := estargz.Open(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))))
				if err != nil {
					t.Fatalf("estargz.Open: %v", err)
				}
				if er.TOCDigest().String() != toc {
					t.Errorf("TOC digest %s, annotation %s", er.TOCDigest(), toc)
				}
				if _, err := er.VerifyTOC(er.TOCDigest()); err != nil {
					t.Errorf("VerifyTOC: %v", err)
				}
			}
		}
		out, err = cliEnv(t, fresh, "", "pull", ref, "-t", "rt-"+comp)
		if err != nil {
			t.Fatalf("pull %s: %v\n%s", comp, err, out)
		}
		out, err = cliEnv(t, fresh, "", "run", "rt-"+comp)
		if err != nil || out != "[hi] "+u+"\n" {
			t.Errorf("run the %s pull: %v %q", comp, err, out)
		}
	}
	// A second push of each sends no blob and writes nothing new in the store.
	blobs, variants := countFiles(t, filepath.Join(home, "blobs/sha256")), countFiles(t, filepath.Join(home, "variants"))
	before := reg.blobBytes.Load()
	for _, comp := range []string{"gzip", "zstd", "estargz"} {
		if out, err := cli(t, "push", "it-rt", reg.addr+"/rt/tiny:"+comp, "--compression", comp); err != nil || !strings.Contains(out, "already there") {
			t.Fatalf("push again: %v\n%s", err, out)
		}
	}
	if sent := reg.blobBytes.Load() - before; sent != 0 {
		t.Errorf("the second pushes sent %d blob bytes", sent)
	}
	if b, v := countFiles(t, filepath.Join(home, "blobs/sha256")), countFiles(t, filepath.Join(home, "variants")); b != blobs || v != variants {
		t.Errorf("the second pushes wrote to the store: %d -> %d blobs, %d -> %d variant records", blobs, b, variants, v)
	}
	// Another repository of the same registry: layers are mounted, not sent; only the
	// small config blob is.
	before = reg.blobBytes.Load()
	if out, err := cli(t, "push", "it-rt", reg.addr+"/other/tiny:gzip"); err != nil {
		t.Fatalf("push to another repository: %v\n%s", err, out)
	}
	r, _ := name.ParseReference(reg.addr+"/other/tiny:gzip", name.Insecure)
	img, _ := remote.Image(r)
	raw, _ := img.RawConfigFile()
	if sent := reg.blobBytes.Load() - before; sent > int64(len(raw)) || reg.mounts.Load() < 2 {
		t.Errorf("pushing to another repository sent %d bytes (the config is %d) with %d mounts", sent, len(raw), reg.mounts.Load())
	}
	// Docker media types for old registries.
	if out, err := cli(t, "push", "it-rt", reg.addr+"/rt/tiny:docker", "--media-types", "docker"); err != nil {
		t.Fatalf("push --media-types docker: %v\n%s", err, out)
	}
	r, _ = name.ParseReference(reg.addr+"/rt/tiny:docker", name.Insecure)
	if d, err := remote.Get(r); err != nil || d.MediaType != types.DockerManifestSchema2 {
		t.Errorf("docker media types: %v %v", d, err)
	}
	// Other tools read what strata pushed.
	oci := filepath.Join(t.TempDir(), "oci")
	if out, err := execOut("skopeo", "copy", "--src-tls-verify=false", "docker://"+reg.addr+"/rt/tiny:gzip", "oci:"+oci+":tiny"); err != nil {
		t.Errorf("skopeo copy: %v\n%s", err, out)
	}
	out, err := execOut("podman", "pull", "--tls-verify=false", reg.addr+"/rt/tiny:zstd")
	if err != nil {
		t.Fatalf("podman pull: %v\n%s", err, out)
	}
	defer exec.Command("podman", "rmi", "-f", reg.addr+"/rt/tiny:zstd").Run()
	out, err = execOut("podman", "run", "--rm", "--runtime", "runc", "--network", "host",
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", reg.addr+"/rt/tiny:zstd", "from-podman")
	if err != nil || out != "[from-podman] "+u+"\n" {
		t.Errorf("podman run: %v\n%s", err, out)
	}
}

// TestBuildPushAndTag: build --push, and tag.
func TestBuildPushAndTag(t *testing.T) {
	need(t, "runc")
	reg := registry(t)
	dir := t.TempDir()
	write(t, dir, "hello.txt", unique(t))
	file := spec(t, "image:\n  - from_scratch: {}\n  - add_local_file: {local_path: "+filepath.Join(dir, "hello.txt")+", remote_path: /hello.txt, copy: true}\n")
	out, err := cli(t, "build", "-f", file, "-t", "it-bp", "--push", reg+"/bp/img:1", "--compression", "zstd", "--progress", "plain")
	if err != nil || !strings.Contains(out, reg+"/bp/img:1@sha256:") {
		t.Fatalf("build --push: %v\n%s", err, out)
	}
	if out, err := cli(t, "tag", "it-bp", "it-bp-tagged"); err != nil {
		t.Fatalf("tag: %v\n%s", err, out)
	}
	a, _ := cli(t, "inspect", "it-bp")
	b, _ := cli(t, "inspect", "it-bp-tagged")
	if strings.SplitN(a, "\n", 3)[1] != strings.SplitN(b, "\n", 3)[1] {
		t.Errorf("the tag names another manifest:\n%s\n%s", a, b)
	}
}

// htpasswd writes an htpasswd file for docker-registry's basic auth.
func htpasswd(t *testing.T, users map[string]string) string {
	var b strings.Builder
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	return b.String()
}

// TestRegistryAuth: a registry that demands basic auth works with strata login, with a
// docker config written by hand, with a named secret, and with ECR and GCP credentials
// exchanged for tokens at local servers that speak those clouds' APIs; without credentials
// the error names the registry and says 401.
func TestRegistryAuth(t *testing.T) {
	need(t, "runc")
	reg := startRegistry(t, regOpts{htpasswd: htpasswd(t, map[string]string{
		"alice": "wonderland", "AWS": "ecr-password", "oauth2accesstoken": "ya29.strata-test",
	})})
	u := unique(t)
	build(t, tinyImage(t, u), "it-auth")
	ref := reg + "/auth/tiny:1"
	dockerConfig := t.TempDir()
	env := []string{"DOCKER_CONFIG=" + dockerConfig}

	out, err := cliEnv(t, env, "", "push", "it-auth", ref)
	if err == nil || !strings.Contains(out, "registry "+reg) || !strings.Contains(out, "401") {
		t.Errorf("push without credentials: %v\n%s", err, out)
	}
	if out, err := cliEnv(t, env, "wrong\n", "login", reg, "-u", "alice", "--password-stdin"); err == nil || !strings.Contains(out, "401") {
		t.Errorf("login with a wrong password: %v\n%s", err, out)
	}
	if out, err := cliEnv(t, env, "wonderland\n", "login", reg, "-u", "alice", "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("login: %v\n%s", err, out)
	}
	if out, err := cliEnv(t, env, "", "push", "it-auth", ref); err != nil {
		t.Fatalf("push after login: %v\n%s", err, out)
	}
	cfg, _ := os.ReadFile(filepath.Join(dockerConfig, "config.json"))
	if !strings.Contains(string(cfg), reg) {
		t.Errorf("login wrote no docker config entry: %s", cfg)
	}
	if out, err := cliEnv(t, env, "", "logout", reg); err != nil {
		t.Fatalf("logout: %v\n%s", err, out)
	}
	if out, err := cliEnv(t, append(env, "STRATA_HOME="+t.TempDir()), "", "pull", ref); err == nil || !strings.Contains(out, "401") {
		t.Errorf("pull after logout: %v\n%s", err, out)
	}
	// A docker config written by another tool.
	handConfig := t.TempDir()
	write(t, handConfig, "config.json", fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg, base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))))
	if out, err := cliEnv(t, []string{"DOCKER_CONFIG=" + handConfig, "STRATA_HOME=" + t.TempDir()}, "", "pull", ref, "-t", "hand"); err != nil {
		t.Errorf("pull with a hand-written docker config: %v\n%s", err, out)
	}
	// from_registry with a named secret; and without one, the 401.
	buildFrom := func(entry string, secrets map[string]map[string]string) (string, error) {
		h := t.TempDir()
		for n, vals := range secrets {
			var args []string
			for k, v := range vals {
				args = append(args, k+"="+v)
			}
			if out, err := cliEnv(t, []string{"STRATA_HOME=" + h}, "", append([]string{"secret", "create", n}, args...)...); err != nil {
				t.Fatalf("secret create: %v\n%s", err, out)
			}
		}
		file := spec(t, "image:\n  - "+entry+"\n")
		out, err := cliEnv(t, []string{"STRATA_HOME=" + h, "DOCKER_CONFIG=" + t.TempDir()}, "", "build", "-f", file, "-t", "from-auth", "--progress", "plain")
		if err != nil {
			return out, err
		}
		return cliEnv(t, []string{"STRATA_HOME=" + h}, "", "run", "from-auth")
	}
	if out, err := buildFrom(fmt.Sprintf("from_registry: {tag: %q}", ref), nil); err == nil || !strings.Contains(out, "401") || !strings.Contains(out, reg) {
		t.Errorf("from_registry without credentials: %v\n%s", err, out)
	}
	if out, err := buildFrom(fmt.Sprintf("from_registry: {tag: %q, secret: regcreds}", ref),
		map[string]map[string]string{"regcreds": {"REGISTRY_USERNAME": "alice", "REGISTRY_PASSWORD": "wonderland"}}); err != nil || out != "[hi] "+u+"\n" {
		t.Errorf("from_registry with a secret: %v\n%s", err, out)
	}
	// AWS ECR: the secret's keys are exchanged for a registry password at an ECR endpoint.
	ecr := fakeECR(t, reg)
	aws := map[string]map[string]string{"aws": {"AWS_ACCESS_KEY_ID": "AKIATEST", "AWS_SECRET_ACCESS_KEY": "s3cr3t-aws-key", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_ECR": ecr.URL}}
	if out, err := buildFrom(fmt.Sprintf("from_aws_ecr: {tag: %q, secret: aws}", ref), aws); err != nil || out != "[hi] "+u+"\n" {
		t.Errorf("from_aws_ecr: %v\n%s", err, out)
	}
	aws["aws"]["AWS_ACCESS_KEY_ID"] = "AKIAWRONG"
	if out, err := buildFrom(fmt.Sprintf("from_aws_ecr: {tag: %q, secret: aws}", ref), aws); err == nil || !strings.Contains(out, "security token included in the request is invalid") || strings.Contains(out, "s3cr3t-aws-key") {
		t.Errorf("from_aws_ecr with a wrong key: %v\n%s", err, out)
	}
	// Google Cloud: a service account key is exchanged for an access token at its token_uri.
	gcpToken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"ya29.strata-test","token_type":"Bearer","expires_in":3600}`)
	}))
	defer gcpToken.Close()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "p", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "builder@p.iam.gserviceaccount.com", "client_id": "1", "token_uri": gcpToken.URL + "/token",
	})
	gcp := map[string]map[string]string{"gcp": {"SERVICE_ACCOUNT_JSON": string(sa)}}
	if out, err := buildFrom(fmt.Sprintf("from_gcp_artifact_registry: {tag: %q, secret: gcp}", ref), gcp); err != nil || out != "[hi] "+u+"\n" {
		t.Errorf("from_gcp_artifact_registry: %v\n%s", err, out)
	}
}

// fakeECR serves ECR's GetAuthorizationToken for the access key AKIATEST (any secret key),
// answering with the password "ecr-password" of the user AWS at reg; other keys get ECR's
// error. Point AWS_ENDPOINT_URL_ECR at its URL.
func fakeECR(t *testing.T, reg string) *httptest.Server {
	t.Helper()
	ecr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" ||
			!strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIATEST/") {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprintf(w, `{"authorizationData":[{"authorizationToken":%q,"expiresAt":1.9e9,"proxyEndpoint":"https://%s"}]}`,
			base64.StdEncoding.EncodeToString([]byte("AWS:ecr-password")), reg)
	}))
	t.Cleanup(ecr.Close)
	return ecr
}

// TestBearerTokenRegistry: a registry that sends clients to a token server (as Docker Hub,
// GHCR and Harbor do) works with strata login, push and pull.
func TestBearerTokenRegistry(t *testing.T) {
	need(t, "runc")
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if u, p, ok := r.BasicAuth(); !ok || u != "bob" || p != "builder" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"token":"tok-for-bob","access_token":"tok-for-bob","expires_in":300}`)
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok-for-bob" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="strata-test"`, srv.URL))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://")
	build(t, tinyImage(t, unique(t)), "it-bearer")
	env := []string{"DOCKER_CONFIG=" + t.TempDir()}
	if out, err := cliEnv(t, env, "", "push", "it-bearer", reg+"/b/tiny:1"); err == nil || !strings.Contains(out, "401") {
		t.Errorf("push without a token: %v\n%s", err, out)
	}
	if out, err := cliEnv(t, env, "builder", "login", reg, "-u", "bob", "--password-stdin"); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	if out, err := cliEnv(t, env, "", "push", "it-bearer", reg+"/b/tiny:1"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	if out, err := cliEnv(t, append(env, "STRATA_HOME="+t.TempDir()), "", "pull", reg+"/b/tiny:1"); err != nil {
		t.Errorf("pull: %v\n%s", err, out)
	}
}

// selfSignedCA makes a CA and a server certificate for host (an IP address or a DNS name),
// signed by it.
func selfSignedCA(t *testing.T, host string) (caPEM, certPEM, keyPEM string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "strata test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	if ip := net.ParseIP(host); ip != nil {
		srv.IPAddresses = []net.IP{ip}
	} else {
		srv.DNSNames = []string{host}
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

// TestRegistryTLS: a registry with a certificate from a self-made CA works once the CA is
// trusted (certs.d, as docker and podman read it) and fails clearly before. 127.0.0.2 is a
// loopback address that go-containerregistry does not downgrade to plain http.
func TestRegistryTLS(t *testing.T) {
	need(t, "runc")
	ca, cert, key := selfSignedCA(t, "127.0.0.2")
	reg := startRegistry(t, regOpts{cert: cert, key: key, host: "127.0.0.2"})
	build(t, tinyImage(t, unique(t)), "it-tls")
	out, err := cli(t, "push", "it-tls", reg+"/tls/tiny:1")
	if err == nil || !strings.Contains(out, "does not trust") || !strings.Contains(out, reg) {
		t.Errorf("push to an untrusted registry: %v\n%s", err, out)
	}
	write(t, filepath.Join(home, "certs.d", reg), "ca.crt", ca)
	defer os.RemoveAll(filepath.Join(home, "certs.d", reg))
	if out, err := cli(t, "push", "it-tls", reg+"/tls/tiny:1"); err != nil {
		t.Fatalf("push with the CA trusted: %v\n%s", err, out)
	}
	h := t.TempDir()
	write(t, filepath.Join(h, "certs.d", reg), "ca.crt", ca)
	if out, err := cliEnv(t, []string{"STRATA_HOME=" + h}, "", "pull", reg+"/tls/tiny:1", "-t", "tls"); err != nil {
		t.Errorf("pull with the CA trusted: %v\n%s", err, out)
	}
}

// TestSharedLayerCache: a second store builds the first one's spec from the registry cache
// without running a step (the step would fail there: its secret exists only in the first
// store), and a spec whose middle layer changed reuses the layers before it and rebuilds
// the ones after.
func TestSharedLayerCache(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	reg := registry(t)
	repo := reg + "/cache/layers"
	u := unique(t)
	if out, err := cli(t, "secret", "create", "it-gate", "GATE=open"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	specText := func(middle string) string {
		return fmt.Sprintf(`image:
  - debian_slim: {python_version: "3.13"}
  - run_commands: {commands: ["test \"$GATE\" = open && echo %s > /first"], secrets: [it-gate]}
  - run_commands: {commands: ["test \"$GATE\" = open && echo %s > /middle"], secrets: [it-gate]}
  - run_commands: {commands: ["test \"$GATE\" = open && cat /first /middle > /last"], secrets: [it-gate]}
`, u, middle)
	}
	file := spec(t, specText("one"))
	if out, err := cli(t, "build", "-f", file, "-t", "it-shared", "--cache-to", repo, "--progress", "plain"); err != nil {
		t.Fatalf("build --cache-to: %v\n%s", err, out)
	}
	second := []string{"STRATA_HOME=" + t.TempDir()}
	out, err := cliEnv(t, second, "", "build", "-f", file, "-t", "it-shared", "--cache-from", repo, "--progress", "plain")
	if err != nil {
		t.Fatalf("build --cache-from in a second store: %v\n%s", err, out)
	}
	if strings.Contains(out, "building") || strings.Count(out, "fetched from the registry cache") != 4 {
		t.Errorf("the second store built steps:\n%s", out)
	}
	if out, err := cliEnv(t, second, "", "run", "it-shared", "--", "cat", "/last"); err != nil || out != u+"\none\n" {
		t.Errorf("run: %v %q", err, out)
	}
	// The middle layer changes: the layers before it come from the cache, it and the one
	// after are built (and fail here, where the secret is missing, which proves they ran).
	changed := spec(t, specText("two"))
	out, err = cliEnv(t, second, "", "build", "-f", changed, "-t", "it-shared-2", "--cache-from", repo, "--progress", "plain")
	if err == nil || !strings.Contains(out, "#2 run_commands building") || strings.Count(out, "cached") < 2 || !strings.Contains(out, `secret "it-gate"`) {
		t.Errorf("the changed middle layer:\n%v\n%s", err, out)
	}
	// STRATA_CACHE_REPO does both: the first store stores the changed spec, the second then
	// fetches all of it.
	if out, err := cliEnv(t, []string{"STRATA_CACHE_REPO=" + repo}, "", "build", "-f", changed, "-t", "it-shared-2", "--progress", "plain"); err != nil {
		t.Fatalf("build with STRATA_CACHE_REPO: %v\n%s", err, out)
	}
	out, err = cliEnv(t, append(second, "STRATA_CACHE_REPO="+repo), "", "build", "-f", changed, "-t", "it-shared-2", "--progress", "plain")
	if err != nil || strings.Contains(out, "building") {
		t.Errorf("after the first store stored the change: %v\n%s", err, out)
	}
}
