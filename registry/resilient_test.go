package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-build/strata/internal/faultproxy"
)

// blobServer serves one blob at /v2/x/blobs/<digest> (with ranges, as registries do) and
// takes chunked uploads at /v2/x/blobs/uploads/, as the distribution spec describes them.
type blobServer struct {
	blob, digest string
	// dropBroken drops an upload when a PATCH to it breaks off, as docker-registry does.
	dropBroken bool
	// discardLater discards every chunk after the first, as ECR does.
	discardLater bool
	mu           sync.Mutex
	uploads      map[string][]byte
	committed    map[string][]byte
}

func newBlobServer(t *testing.T, size int) (*blobServer, *faultproxy.Proxy) {
	b := make([]byte, size)
	rand.Read(b)
	s := &blobServer{blob: string(b), digest: fmt.Sprintf("sha256:%x", sha256.Sum256(b)), uploads: map[string][]byte{}, committed: map[string][]byte{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	p := faultproxy.Start(strings.TrimPrefix(srv.URL, "http://"))
	t.Cleanup(p.Close)
	return s, p
}

func (s *blobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := strings.TrimPrefix(r.URL.Path, "/v2/x/blobs/uploads/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v2/x/blobs/"+s.digest:
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(s.blob))
	case r.Method == http.MethodPost && id == "":
		id = strconv.Itoa(len(s.uploads) + 1)
		s.uploads[id] = nil
		w.Header().Set("Location", "/v2/x/blobs/uploads/"+id)
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPatch:
		have, ok := s.uploads[id]
		if !ok {
			http.Error(w, "BLOB_UPLOAD_UNKNOWN", http.StatusNotFound)
			return
		}
		if cr := r.Header.Get("Content-Range"); cr != "" {
			start, _, _ := strings.Cut(cr, "-")
			if n, _ := strconv.Atoi(start); n != len(have) {
				w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
				return
			}
		}
		// What arrives is kept, even when the request breaks off, as registries do.
		buf := make([]byte, 32<<10)
		keep := !s.discardLater || len(have) == 0
		for {
			n, err := r.Body.Read(buf)
			if keep {
				s.uploads[id] = append(s.uploads[id], buf[:n]...)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				if s.dropBroken {
					delete(s.uploads, id)
				}
				return
			}
		}
		s.status(w, id, http.StatusAccepted)
	case r.Method == http.MethodGet:
		if _, ok := s.uploads[id]; !ok {
			http.Error(w, "BLOB_UPLOAD_UNKNOWN", http.StatusNotFound)
			return
		}
		s.status(w, id, http.StatusNoContent)
	case r.Method == http.MethodPut:
		s.committed[r.URL.Query().Get("digest")] = s.uploads[id]
		w.WriteHeader(http.StatusCreated)
	default:
		http.NotFound(w, r)
	}
}

func (s *blobServer) status(w http.ResponseWriter, id string, code int) {
	end := len(s.uploads[id]) - 1
	w.Header().Set("Range", fmt.Sprintf("0-%d", max(end, 0)))
	w.Header().Set("Location", "/v2/x/blobs/uploads/"+id)
	w.WriteHeader(code)
}

// uploadChunk is the tests' chunk size.
const uploadChunk = 8 << 20

// testTransport is the resilient transport with quick retries. Its stall is ten seconds:
// a loaded machine (the whole test suite on two cores) can leave an 8 MiB chunk's answer
// waiting past 300 ms, which made an upload test see a stall it did not inject. The test of
// stalls sets its own.
func testTransport() *resilient {
	return &resilient{inner: http.DefaultTransport, r: Retry{Attempts: 4, Backoff: time.Millisecond, MaxWait: 5 * time.Second, Stall: 10 * time.Second, Chunk: uploadChunk}}
}

func get(t *testing.T, tr http.RoundTripper, url string) (string, error) {
	t.Helper()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestDownloadsRideOutFaults: a blob download gets the whole blob through dropped
// connections, 503s and a 429's Retry-After, and resumes from the byte it reached (a ranged
// GET) when its body is cut short or stalls.
func TestDownloadsRideOutFaults(t *testing.T) {
	s, p := newBlobServer(t, 1<<20)
	url := "http://" + p.Host + "/v2/x/blobs/" + s.digest
	path := "/blobs/" + s.digest
	for _, c := range []struct {
		name   string
		faults []faultproxy.Fault
		ranges []string // the Range of each request
		stall  time.Duration
	}{
		{"drops and 503s", []faultproxy.Fault{{Drop: true}, {Status: 503}, {Status: 502}}, []string{"", "", "", ""}, 0},
		{"cut short twice", []faultproxy.Fault{{CutAfter: 100000}, {CutAfter: 200000}}, []string{"", "bytes=100000-", "bytes=300000-"}, 0},
		{"stalls", []faultproxy.Fault{{StallAfter: 500000}}, []string{"", "bytes=500000-"}, 300 * time.Millisecond},
		{"429 then cut", []faultproxy.Fault{{Status: 429, RetryAfter: "1"}, {CutAfter: 7}}, []string{"", "", "bytes=7-"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.Reset()
			for _, f := range c.faults {
				p.Add(faultproxy.Rule{Method: "GET", Path: path, Times: 1, Fault: f})
			}
			tr := testTransport()
			if c.stall > 0 {
				tr.r.Stall = c.stall
			}
			got, err := get(t, tr, url)
			if err != nil || got != s.blob {
				t.Fatalf("got %d bytes (%v), want the blob's %d", len(got), err, len(s.blob))
			}
			reqs := p.Requests()
			var ranges []string
			for _, r := range reqs {
				ranges = append(ranges, r.Range)
			}
			if fmt.Sprint(ranges) != fmt.Sprint(c.ranges) {
				t.Errorf("requests' ranges %q, want %q", ranges, c.ranges)
			}
			if c.faults[0].RetryAfter != "" {
				if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
					t.Errorf("retried %s after a 429 with Retry-After: 1", gap)
				}
			}
		})
	}
}

// TestDownloadsGiveUp: a fault that does not pass ends in a GaveUp that names the request and
// what the registry said; a Retry-After past MaxWait is the registry's answer at once; a 404
// is not retried.
func TestDownloadsGiveUp(t *testing.T) {
	s, p := newBlobServer(t, 1000)
	url := "http://" + p.Host + "/v2/x/blobs/" + s.digest
	p.Add(faultproxy.Rule{Method: "GET", Fault: faultproxy.Fault{Status: 500}})
	_, err := (&http.Client{Transport: testTransport()}).Get(url)
	var gave *GaveUp
	if !errors.As(err, &gave) || gave.Tries != 4 || !strings.Contains(err.Error(), "500 Internal Server Error, 4 times") || !strings.Contains(err.Error(), s.digest) || !strings.Contains(err.Error(), "faultproxy: 500") {
		t.Errorf("always 500: %v", err)
	}
	if retryAgain(err) {
		t.Errorf("go-containerregistry would retry what the transport gave up on")
	}

	p.Reset()
	p.Add(faultproxy.Rule{Method: "GET", Fault: faultproxy.Fault{Status: 429, RetryAfter: "3600"}})
	start := time.Now()
	if _, err := get(t, testTransport(), url); err == nil || !strings.Contains(err.Error(), "429") || time.Since(start) > 2*time.Second || len(p.Requests()) != 1 {
		t.Errorf("429 with Retry-After: 3600: %v after %s, %d requests", err, time.Since(start), len(p.Requests()))
	}

	p.Reset()
	if _, err := get(t, testTransport(), "http://"+p.Host+"/v2/x/blobs/sha256:0000"); err == nil || !strings.Contains(err.Error(), "404") || len(p.Requests()) != 1 {
		t.Errorf("404: %v, %d requests", err, len(p.Requests()))
	}

	// Cut short every time: it gives up after Attempts resumes that got no further.
	p.Reset()
	p.Add(faultproxy.Rule{Method: "GET", Times: 1, Fault: faultproxy.Fault{CutAfter: 10}}, faultproxy.Rule{Method: "GET", Fault: faultproxy.Fault{Drop: true}})
	if _, err := get(t, testTransport(), url); !errors.As(err, &gave) || !strings.Contains(err.Error(), "broke off at byte 10 of 1000") {
		t.Errorf("cut, then dropped: %v", err)
	}
}

// TestUploadsResumeFromWhatTheRegistryHas: a blob of more than one chunk goes up in chunks;
// a chunk that breaks off part way, or gets a 503, goes on from the byte the registry says it
// has, in the same upload; the registry gets the blob whole.
func TestUploadsResumeFromWhatTheRegistryHas(t *testing.T) {
	s, p := newBlobServer(t, 2*uploadChunk+12345)
	p.Add(faultproxy.Rule{Method: "PATCH", Times: 1, Fault: faultproxy.Fault{Status: 503}},
		faultproxy.Rule{Method: "PATCH", Times: 1, Fault: faultproxy.Fault{BreakUploadAfter: 3 << 20}})
	c := &http.Client{Transport: testTransport()}
	resp, err := c.Do(startUpload(t, c, p, s.blob))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %v %v", err, resp)
	}
	put, _ := http.NewRequest(http.MethodPut, resp.Request.URL.ResolveReference(mustURL(t, resp.Header.Get("Location"))).String()+"?digest="+s.digest, nil)
	if resp, err := c.Do(put); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %v %v", err, resp)
	}
	if got := s.committed[s.digest]; !bytes.Equal(got, []byte(s.blob)) {
		t.Errorf("the registry has %d bytes, want the blob's %d", len(got), len(s.blob))
	}
	// The 503: the registry has nothing (a GET asks), so the chunk goes again from 0; the
	// break: it goes on from what arrived, at most 3 MiB.
	var methods []string
	for _, r := range p.Requests() {
		methods = append(methods, r.Method)
	}
	reqs := p.Requests()
	if fmt.Sprint(methods) != "[POST PATCH GET PATCH GET PATCH PATCH PATCH PUT]" {
		t.Fatalf("requests %v", reqs)
	}
	if from := rangeStart("bytes " + reqs[5].ContentRange); from <= 0 || from > 3<<20 || reqs[5].ContentRange != fmt.Sprintf("%d-%d", from, uploadChunk-1) {
		t.Errorf("after the break, PATCH %s", reqs[5].ContentRange)
	}
	if reqs[1].ContentRange != reqs[3].ContentRange || reqs[6].ContentRange != fmt.Sprintf("%d-%d", uploadChunk, 2*uploadChunk-1) || reqs[7].ContentRange != fmt.Sprintf("%d-%d", 2*uploadChunk, len(s.blob)-1) {
		t.Errorf("chunks %v", reqs)
	}
}

// TestUploadsTheRegistryDroppedStartAgain: when the registry drops an upload whose chunk
// broke off, the transport's error is one go-containerregistry's retries take, to start it
// again.
func TestUploadsTheRegistryDroppedStartAgain(t *testing.T) {
	s, p := newBlobServer(t, 2*uploadChunk)
	s.dropBroken = true
	p.Add(faultproxy.Rule{Method: "PATCH", Times: 1, Fault: faultproxy.Fault{BreakUploadAfter: 1 << 20}})
	c := &http.Client{Transport: testTransport()}
	_, err := c.Do(startUpload(t, c, p, s.blob))
	var restart *restartUpload
	if !errors.As(err, &restart) || !retryAgain(err) || !strings.Contains(err.Error(), "the upload starts again") {
		t.Errorf("an upload the registry dropped: %v", err)
	}
}

// startUpload starts an upload through p and returns the PATCH of blob to it, as
// go-containerregistry streams one.
func startUpload(t *testing.T, c *http.Client, p *faultproxy.Proxy, blob string) *http.Request {
	t.Helper()
	resp, err := c.Post("http://"+p.Host+"/v2/x/blobs/uploads/", "", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %v %v", err, resp)
	}
	loc := resp.Request.URL.ResolveReference(mustURL(t, resp.Header.Get("Location")))
	req, _ := http.NewRequest(http.MethodPatch, loc.String(), io.NopCloser(strings.NewReader(blob)))
	return req
}

// TestChunksARegistryDiscardsAreCaught: a registry whose Range does not grow with a chunk
// (ECR discards every chunk after the first) fails the upload with the fix, not a digest
// error at the end.
func TestChunksARegistryDiscardsAreCaught(t *testing.T) {
	s, p := newBlobServer(t, 2*uploadChunk+1)
	s.discardLater = true
	c := &http.Client{Transport: testTransport()}
	if _, err := c.Do(startUpload(t, c, p, s.blob)); err == nil || !strings.Contains(err.Error(), "does not take chunked uploads") || !strings.Contains(err.Error(), EnvChunkSize) {
		t.Errorf("chunks discarded: %v", err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRetryFromEnv: the variables parse, and bad values name the variable and the fix.
func TestRetryFromEnv(t *testing.T) {
	t.Setenv(EnvRetries, "3")
	t.Setenv(EnvTimeout, "2.5")
	r, err := RetryFromEnv()
	if err != nil || r.Attempts != 3 || r.Stall != 2500*time.Millisecond {
		t.Errorf("%+v %v", r, err)
	}
	t.Setenv(EnvTimeout, "90s")
	if r, _ := RetryFromEnv(); r.Stall != 90*time.Second {
		t.Errorf("90s: %s", r.Stall)
	}
	for k, v := range map[string]string{EnvRetries: "0", EnvTimeout: "soon"} {
		t.Setenv(k, v)
		if _, err := RetryFromEnv(); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
		t.Setenv(k, "1")
	}
}

// TestManifestsPastFourMiBAreRefused: a manifest larger than MaxManifestSize is refused by
// its Content-Length before a byte is read, and by its length when the registry gives none.
func TestManifestsPastFourMiBAreRefused(t *testing.T) {
	big := strings.Repeat(" ", MaxManifestSize+1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/chunked") {
			w.Write([]byte("{"))
			w.(http.Flusher).Flush() // no Content-Length from here on
		}
		io.WriteString(w, big)
	}))
	defer srv.Close()
	for _, path := range []string{"/v2/x/manifests/big", "/v2/x/manifests/chunked"} {
		_, err := get(t, testTransport(), srv.URL+path)
		var tl *TooLargeError
		if !errors.As(err, &tl) || !strings.Contains(err.Error(), "at most 4194304 bytes") {
			t.Errorf("%s: %v", path, err)
		}
	}
	// A blob that large is fine.
	if got, err := get(t, testTransport(), srv.URL+"/v2/x/blobs/big"); err != nil || len(got) != len(big) {
		t.Errorf("a blob: %d bytes, %v", len(got), err)
	}
}

// TestHTTPSToAPlainRegistryFailsAtOnce: https to a plain http server is not retried, so that
// go-containerregistry's ping, which tries https first on a loopback registry, falls back to
// http at once.
func TestHTTPSToAPlainRegistryFailsAtOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, err := get(t, testTransport(), strings.Replace(srv.URL, "http:", "https:", 1)+"/v2/")
	var gave *GaveUp
	if err == nil || errors.As(err, &gave) {
		t.Errorf("https to an http server: %v", err)
	}
}

// TestStoppedUploadsAreDeleted: an upload whose context ends (Ctrl-C) is deleted from the
// registry.
func TestStoppedUploadsAreDeleted(t *testing.T) {
	for _, c := range []struct {
		size  int
		chunk int64
	}{{1000, uploadChunk}, {2 * uploadChunk, uploadChunk}, {2 * uploadChunk, 0}} { // one PATCH, chunks, chunks off
		size := c.size
		s, p := newBlobServer(t, size)
		p.Add(faultproxy.Rule{Method: "PATCH", Fault: faultproxy.Fault{StallHeaders: time.Minute}})
		tr := testTransport()
		tr.r.Chunk = c.chunk
		c := &http.Client{Transport: tr}
		req := startUpload(t, c, p, s.blob)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := c.Do(req.WithContext(ctx)); err == nil {
			t.Fatalf("%d bytes: a stalled upload succeeded", size)
		}
		reqs := p.Requests()
		if last := reqs[len(reqs)-1]; last.Method != "DELETE" || last.Path != req.URL.Path {
			t.Errorf("%d bytes: requests %v, want a DELETE of %s last", size, reqs, req.URL.Path)
		}
	}
}
