package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// baseForDockerfiles is the shared store's debian_slim image under a name a Dockerfile's
// FROM can use: strata resolves a FROM that names an image in its store.
func baseForDockerfiles(t *testing.T) string {
	t.Helper()
	build(t, base(), "it-df-base")
	return "it-df-base"
}

// dockerfileContext writes a Dockerfile and its context files into a new folder.
func dockerfileContext(t *testing.T, dockerfile string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "Dockerfile", dockerfile)
	for p, c := range files {
		write(t, dir, p, c)
	}
	return dir
}

// TestMultiStageDockerfile builds a multi-stage Dockerfile with strata build as docker
// build would: stages the target needs (and only those: one that would fail is never
// built), two independent stages at the same time (each waits for the other over a socket,
// so they cannot run one after the other), COPY --from by name and index, a bind mount from
// a stage, heredocs, build args and the proxy args; editing the last line rebuilds it alone.
func TestMultiStageDockerfile(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	from := baseForDockerfiles(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	u := unique(t)
	dockerfile := fmt.Sprintf(`ARG BASE
ARG GREETING=hello
FROM $BASE AS left
# Serves once, then connects back: only works if "right" runs at the same time.
RUN python3 -c "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', %[1]d)); s.listen(1); s.settimeout(120); c,_=s.accept(); c.sendall(b'left-%[2]s'); c.close()" && echo left > /left.txt

FROM $BASE AS right
RUN <<PY
#!/usr/bin/env python3
import socket, time
for i in range(1200):
    try:
        c = socket.create_connection(("127.0.0.1", %[1]d))
        break
    except OSError:
        time.sleep(0.1)
open("/right.txt", "wb").write(c.recv(100))
PY

FROM $BASE AS never
RUN echo this stage is not needed && exit 1

FROM $BASE AS final
ARG GREETING
COPY --from=left /left.txt /out/
COPY --from=1 /right.txt /out/
RUN --mount=type=bind,from=left,source=/,target=/l cat /l/left.txt > /out/bound.txt
RUN <<EOF
echo "$GREETING from a heredoc" > /out/heredoc.txt
echo "${HTTP_PROXY:-no proxy}" > /out/proxy.txt
EOF
COPY <<EOF /out/expanded.txt
$GREETING
EOF
COPY <<'EOF' /out/literal.txt
$GREETING
EOF
RUN echo last-%[2]s > /out/last.txt
`, port, u)
	dir := dockerfileContext(t, dockerfile, nil)
	out, err := cli(t, "build", "-t", "it-multistage", "--build-arg", "BASE="+from, "--build-arg", "GREETING=hi", "--build-arg", "HTTP_PROXY=http://proxy.example:3128", "--progress", "plain", dir)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if strings.Contains(out, "this stage is not needed") || strings.Contains(out, "[never") {
		t.Errorf("a stage the target does not need was built:\n%s", out)
	}
	got, err := cli(t, "run", "it-multistage", "--", "sh", "-c", "cd /out && for f in *; do echo $f=$(cat $f); done")
	want := fmt.Sprintf("bound.txt=left\nexpanded.txt=hi\nheredoc.txt=hi from a heredoc\nlast.txt=last-%[1]s\nleft.txt=left\nliteral.txt=$GREETING\nproxy.txt=http://proxy.example:3128\nright.txt=left-%[1]s\n", u)
	if err != nil || got != want {
		t.Errorf("run: %v\n got %q\nwant %q", err, got, want)
	}
	// The proxy arg is in no history.
	if insp, _ := cli(t, "inspect", "it-multistage", "--json"); strings.Contains(insp, "proxy.example") {
		t.Error("the proxy build arg is in the image's config or history")
	}
	// Editing the last line rebuilds that line only.
	write(t, dir, "Dockerfile", strings.Replace(dockerfile, "echo last-", "echo changed-last-", 1))
	out, err = cli(t, "build", "-t", "it-multistage", "--build-arg", "BASE="+from, "--build-arg", "GREETING=hi", "--build-arg", "HTTP_PROXY=http://proxy.example:3128", "--progress", "plain", dir)
	if err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	if n := strings.Count(out, " building "); n != 1 || !strings.Contains(out, "echo changed-last-") {
		t.Errorf("editing the last line rebuilt %d layers:\n%s", n, out)
	}
	// --target builds a stage and what it needs.
	out, err = cli(t, "build", "-t", "it-multistage-left", "--target", "left", "--build-arg", "BASE="+from, "--progress", "plain", dir)
	if err != nil || strings.Contains(out, "[right") {
		t.Errorf("--target left: %v\n%s", err, out)
	}
	// A failing instruction is named by its line.
	bad := dockerfileContext(t, "ARG BASE\nFROM $BASE\nRUN true\nRUN echo failing && exit 3\n", nil)
	if out, err := cli(t, "build", "-t", "it-df-bad", "--build-arg", "BASE="+from, "--progress", "plain", bad); err == nil || !strings.Contains(out, "line 4: RUN echo failing && exit 3: exit code 3") {
		t.Errorf("a failing line: %v\n%s", err, out)
	}
	// A stage that fails stops the stages building beside it, and its error is the one
	// reported, not that of a step it canceled.
	racing := dockerfileContext(t, "ARG BASE\nFROM $BASE AS slow\nRUN sleep 20 && echo "+u+" > /slow\n"+
		"FROM $BASE AS fails\nRUN echo failing-fast && exit 6\n"+
		"FROM $BASE\nCOPY --from=slow /slow /slow\nCOPY --from=fails /etc/hostname /x\n", nil)
	out, err = cli(t, "build", "-t", "it-df-racing", "--build-arg", "BASE="+from, "--progress", "plain", racing)
	if err == nil || !strings.Contains(out, "line 5: RUN echo failing-fast && exit 6: exit code 6") || strings.Contains(out, "exit code 137") {
		t.Errorf("a failing stage beside a running one: %v\n%s", err, out)
	}
}

// TestDockerfileSecretsAndMounts: a build secret reaches its step as a file and as an
// environment variable and appears in no layer, config, history or log; a required secret
// that is missing stops the build; cache mounts persist between builds; tmpfs mounts leave
// nothing behind.
func TestDockerfileSecretsAndMounts(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	from := baseForDockerfiles(t)
	value := "dockerfile-s3cret-" + strings.ReplaceAll(unique(t), "/", "-")
	sum := sha256.Sum256([]byte(value))
	dir := dockerfileContext(t, `ARG BASE
FROM $BASE
RUN --mount=type=secret,id=api,env=API_KEY --mount=type=secret,id=api,target=/run/key,mode=0440 \
    printf %s "$API_KEY" | sha256sum | cut -d' ' -f1 > /env-hash && \
    sha256sum < /run/key | cut -d' ' -f1 > /file-hash && \
    stat -c %a /run/key > /key-mode && echo "the key is $API_KEY"
RUN --mount=type=cache,target=/cache,id=it-df-cache,uid=1000,mode=0700 \
    stat -c '%u %a' /cache > /cache-owner && date +%N >> /cache/runs && wc -l < /cache/runs > /cache-runs
RUN --mount=type=tmpfs,target=/scratch touch /scratch/tmp && ls /scratch > /tmpfs-seen
`, nil)
	secretFile := filepath.Join(t.TempDir(), "api")
	os.WriteFile(secretFile, []byte(value), 0o600)
	out, err := cli(t, "build", "-t", "it-df-secret", "--build-arg", "BASE="+from, "--secret", "id=api,src="+secretFile, "--progress", "plain", dir)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if strings.Contains(out, value) || !strings.Contains(out, "the key is ****") {
		t.Errorf("the secret was not masked in the output:\n%s", out)
	}
	hash := hex.EncodeToString(sum[:]) + "\n"
	got, err := cli(t, "run", "it-df-secret", "--", "sh", "-c", "cat /env-hash /file-hash /key-mode /cache-owner /tmpfs-seen; ls /scratch /run/key 2>&1 | wc -l")
	if want := hash + hash + "440\n1000 700\ntmp\n2\n"; err != nil || got != want {
		t.Errorf("run: %v\n got %q\nwant %q", err, got, want)
	}
	// Nowhere in the image (every file of the export read, every layer decompressed) nor in
	// any log.
	oci := filepath.Join(t.TempDir(), "oci")
	if out, err := cli(t, "export", "it-df-secret", "--format", "oci", "-o", oci); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	scanForValue(t, oci, value)
	scanForValue(t, filepath.Join(home, "logs"), value)
	// A second build with a change after the cache mount's step reuses the cache mount.
	write(t, dir, "Dockerfile", strings.Replace(readFile(t, filepath.Join(dir, "Dockerfile")), "date +%N", "date +%s%N", 1))
	if out, err := cli(t, "build", "-t", "it-df-secret", "--build-arg", "BASE="+from, "--secret", "id=api,src="+secretFile, "--progress", "plain", dir); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	if got, _ := cli(t, "run", "it-df-secret", "--", "cat", "/cache-runs"); got != "2\n" {
		t.Errorf("the cache mount did not persist: %q runs", got)
	}
	// A required secret that is missing is an error naming it.
	req := dockerfileContext(t, "ARG BASE\nFROM $BASE\nRUN --mount=type=secret,id=absent,required true\n", nil)
	if out, err := cli(t, "build", "-t", "it-df-req", "--build-arg", "BASE="+from, "--progress", "plain", req); err == nil || !strings.Contains(out, `no secret "absent"`) {
		t.Errorf("a missing required secret: %v\n%s", err, out)
	}
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// scanForValue fails if value is in any file below dir, gzip blobs and tars included. It
// returns how many files it read, and how many of them were gzip blobs. Every file is read
// and every gzip blob decompressed whole: a file that cannot be read is a failure, not a
// clean file.
func scanForValue(t *testing.T, dir, value string) (scanned, gzipped int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if data, err = io.ReadAll(zr); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			gzipped++
		}
		scanned++
		if bytes.Contains(data, []byte(value)) {
			t.Errorf("the secret's value is in %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return scanned, gzipped
}

// TestDockerfileADDAndCOPYFlags: ADD of an http URL with --checksum and of a git repository
// (both on 127.0.0.1), of a local archive; COPY --exclude, --parents and --chown/--chmod.
func TestDockerfileADDAndCOPYFlags(t *testing.T) {
	need(t, "runc", "mmdebstrap", "git")
	from := baseForDockerfiles(t)
	u := unique(t)
	// A file over http, and a git repository over git's dumb http protocol.
	payload := "downloaded " + u + "\n"
	psum := sha256.Sum256([]byte(payload))
	repo := t.TempDir()
	for _, args := range [][]string{{"init", "-q", "-b", "main", repo}, {"-C", repo, "config", "user.email", "t@example.com"}, {"-C", repo, "config", "user.name", "t"}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	write(t, repo, "sub/hello.txt", "from git "+u+"\n")
	for _, args := range [][]string{{"-C", repo, "add", "."}, {"-C", repo, "commit", "-q", "-m", "first"}, {"-C", repo, "tag", "v1"}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	bare := filepath.Join(t.TempDir(), "repo.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", repo, bare).CombinedOutput(); err != nil {
		t.Fatalf("git clone --bare: %v %s", err, out)
	}
	if out, err := exec.Command("git", "-C", bare, "update-server-info").CombinedOutput(); err != nil {
		t.Fatalf("update-server-info: %v %s", err, out)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/files/payload.txt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
		io.WriteString(w, payload)
	})
	mux.Handle("/git/", http.StripPrefix("/git/", http.FileServer(http.Dir(filepath.Dir(bare)))))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// A local archive.
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	tw.WriteHeader(&tar.Header{Name: "unpacked.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	tw.Write([]byte("tar"))
	tw.Close()
	dir := dockerfileContext(t, fmt.Sprintf(`ARG BASE
FROM $BASE
ARG SERVER
ADD --checksum=sha256:%s ${SERVER}/files/payload.txt /dl/
ADD ${SERVER}/git/repo.git#v1:sub /fromgit/
ADD archive.tar /archive/
COPY --exclude=*.log --exclude=skip/ logs/ /logs/
COPY --parents a/b/c.txt a/d.txt /parents/
RUN useradd -u 4321 owner
COPY --chown=owner:owner --chmod=640 a/d.txt /owned.txt
`, hex.EncodeToString(psum[:])), map[string]string{
		"archive.tar":    archive.String(),
		"logs/keep.txt":  "keep",
		"logs/drop.log":  "drop",
		"logs/skip/x":    "skipped",
		"a/b/c.txt":      "c",
		"a/d.txt":        "d",
		"a/not-this.txt": "no",
	})
	out, err := cli(t, "build", "-t", "it-df-add", "--build-arg", "BASE="+from, "--build-arg", "SERVER="+srv.URL, "--progress", "plain", dir)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	got, err := cli(t, "run", "it-df-add", "--", "sh", "-c", `cat /dl/payload.txt /fromgit/hello.txt /archive/unpacked.txt; echo; stat -c '%a %Y' /dl/payload.txt; ls /logs; find /parents -type f | sort; stat -c '%U %a' /owned.txt; ls -a /fromgit`)
	want := payload + "from git " + u + "\ntar\n600 1445412480\nkeep.txt\n/parents/a/b/c.txt\n/parents/a/d.txt\nowner 640\n.\n..\nhello.txt\n"
	if err != nil || got != want {
		t.Errorf("run: %v\n got %q\nwant %q", err, got, want)
	}
	// A wrong checksum stops the build.
	bad := dockerfileContext(t, "ARG BASE\nFROM $BASE\nARG SERVER\nADD --checksum=sha256:"+strings.Repeat("0", 64)+" ${SERVER}/files/payload.txt /x\n", nil)
	if out, err := cli(t, "build", "-t", "it-df-badsum", "--build-arg", "BASE="+from, "--build-arg", "SERVER="+srv.URL, "--progress", "plain", bad); err == nil || !strings.Contains(out, "not the sha256:0000") {
		t.Errorf("a wrong checksum: %v\n%s", err, out)
	}
	// A new commit on the tag's branch does not move v1; moving the tag rebuilds.
	write(t, repo, "sub/hello.txt", "moved "+u+"\n")
	for _, args := range [][]string{{"-C", repo, "commit", "-qam", "second"}, {"-C", repo, "tag", "-f", "v1"}, {"-C", repo, "push", "-q", "-f", bare, "main", "v1"}, {"-C", bare, "update-server-info"}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	if out, err := cli(t, "build", "-t", "it-df-add", "--build-arg", "BASE="+from, "--build-arg", "SERVER="+srv.URL, "--progress", "plain", dir); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	if got, _ := cli(t, "run", "it-df-add", "--", "cat", "/fromgit/hello.txt"); got != "moved "+u+"\n" {
		t.Errorf("after the tag moved: %q", got)
	}
}
