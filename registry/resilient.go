package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strata-build/strata/internal/units"
)

// Retry says how strata rides out a registry's passing faults: a dropped connection, a 408,
// 429 or 5xx answer, a body cut short, a registry that goes silent.
type Retry struct {
	// Attempts is how often one request is tried, and how often in a row a download or an
	// upload that broke off is resumed without getting further (default 5).
	Attempts int
	// Backoff is the wait before the first retry; each next one doubles, with a quarter of
	// jitter, up to MaxWait (default 250ms).
	Backoff time.Duration
	// MaxWait is the longest wait before one retry, and the longest Retry-After strata
	// honours: a registry that asks for more is answered with its own refusal (default 1m).
	MaxWait time.Duration
	// Stall is how long a registry may send nothing (no answer to a request, no byte of a
	// body it is sending, no read of one it is taking) before strata drops the connection
	// and tries again (default 1m).
	Stall time.Duration
	// Chunk, if positive, sends blob uploads larger than it in chunks of that size (PATCH
	// with Content-Range), so that a chunk that fails is sent again from the byte the
	// registry has rather than the whole upload from the start. Zero sends each blob in one
	// PATCH, as docker, podman and containerd do: registries differ in chunked uploads (ECR
	// discards every chunk after the first), so they are asked for (STRATA_REGISTRY_CHUNK_SIZE).
	Chunk int64
}

// Environment variables that set Retry.
const (
	EnvRetries   = "STRATA_REGISTRY_RETRIES"
	EnvTimeout   = "STRATA_REGISTRY_TIMEOUT"
	EnvChunkSize = "STRATA_REGISTRY_CHUNK_SIZE"
)

// RetryFromEnv reads STRATA_REGISTRY_RETRIES (attempts per request), STRATA_REGISTRY_TIMEOUT
// (how long a registry may stay silent: "90s", "2m", or seconds) and
// STRATA_REGISTRY_CHUNK_SIZE (chunked uploads: "16M").
func RetryFromEnv() (Retry, error) {
	var r Retry
	if v := os.Getenv(EnvChunkSize); v != "" {
		n, err := units.ParseBytes(v)
		if err != nil || n < 1<<20 {
			return r, fmt.Errorf("%s=%q: want a chunk size of 1M or more, such as 16M (unset, each blob goes in one request)", EnvChunkSize, v)
		}
		r.Chunk = n
	}
	if v := os.Getenv(EnvRetries); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return r, fmt.Errorf("%s=%q: want a whole number of attempts, 1 or more (1 turns retries off)", EnvRetries, v)
		}
		r.Attempts = n
	}
	if v := os.Getenv(EnvTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			n, nerr := strconv.ParseFloat(v, 64)
			err, d = nerr, time.Duration(n*float64(time.Second))
		}
		if err != nil || d <= 0 {
			return r, fmt.Errorf("%s=%q: want how long a registry may stay silent, as 90s, 2m or a number of seconds", EnvTimeout, v)
		}
		r.Stall = d
	}
	return r, nil
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 5
	}
	if r.Backoff <= 0 {
		r.Backoff = 250 * time.Millisecond
	}
	if r.MaxWait <= 0 {
		r.MaxWait = time.Minute
	}
	if r.Stall <= 0 {
		r.Stall = time.Minute
	}
	return r
}

// backoff is the wait before retry n (1 for the first).
func (r Retry) backoff(n int) time.Duration {
	d := r.Backoff << min(n-1, 20)
	if d <= 0 || d > r.MaxWait {
		d = r.MaxWait
	}
	return d - d/8 + time.Duration(rand.Int64N(int64(d/4)+1))
}

// resilient is the transport under go-containerregistry's: it retries a request that can be
// sent again when it failed for a reason that passes, waiting as the registry's Retry-After
// says or backing off; it resumes a download that broke off with a ranged GET from the byte
// it reached, and an upload with a PATCH from the byte the registry has; and it drops a
// connection on which the registry stays silent for Retry.Stall.
type resilient struct {
	inner http.RoundTripper
	r     Retry
}

// GaveUp is a request strata retried until its attempts ran out.
type GaveUp struct {
	Method, URL string
	Tries       int
	Status      string // the last answer's status, or ""
	Body        string // the start of the last answer's body
	Err         error  // the last error, when there was no answer
}

func (e *GaveUp) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s %s failed %d times: %v", e.Method, e.URL, e.Tries, e.Err)
	}
	s := fmt.Sprintf("%s %s: the registry answered %s, %d times", e.Method, e.URL, e.Status, e.Tries)
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// gaveUpOn is the error for the last of n answers that were all worth a retry; it keeps
// the start of what the registry said.
func gaveUpOn(req *http.Request, resp *http.Response, n int) *GaveUp {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &GaveUp{Method: req.Method, URL: req.URL.Redacted(), Tries: n, Status: resp.Status, Body: strings.TrimSpace(string(b))}
}

func (e *GaveUp) Unwrap() error { return e.Err }

// StallError is a registry that sent nothing for as long as strata waits.
type StallError struct{ After time.Duration }

func (e *StallError) Error() string {
	return fmt.Sprintf("the registry sent nothing for %s (%s sets how long strata waits)", e.After, EnvTimeout)
}

// Timeout makes a stall a network timeout, which is worth a retry.
func (e *StallError) Timeout() bool { return true }

func (t *resilient) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", "strata")
	}
	if req.Method == http.MethodPatch && req.Body != nil && req.Body != http.NoBody && strings.Contains(req.URL.Path, "/blobs/uploads/") {
		return t.upload(req)
	}
	resp, err := t.try(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	manifest := strings.Contains(req.URL.Path, "/manifests/")
	if manifest && resp.ContentLength > MaxManifestSize {
		resp.Body.Close()
		return nil, &TooLargeError{URL: req.URL.Redacted(), Size: resp.ContentLength}
	}
	if resp.ContentLength > 0 && !resp.Uncompressed {
		// A body that may change between requests resumes only where the server can say it
		// did not (If-Range with its entity tag); a weak tag cannot.
		etag := resp.Header.Get("ETag")
		switch {
		case contentAddressed(req):
			resp.Body = &resumeBody{t: t, req: req, body: resp.Body, size: resp.ContentLength}
		case etag != "" && !strings.HasPrefix(etag, "W/"):
			resp.Body = &resumeBody{t: t, req: req, body: resp.Body, size: resp.ContentLength, etag: etag}
		}
	}
	if manifest {
		resp.Body = &cappedBody{ReadCloser: resp.Body, left: MaxManifestSize, url: req.URL.Redacted()}
	}
	return resp, nil
}

// MaxManifestSize is the largest manifest or index strata reads: the size the OCI
// distribution spec says registries should take at least, and what docker-registry takes at
// most. A manifest that big lists some 25,000 layers.
const MaxManifestSize = 4 << 20

// TooLargeError is a manifest larger than MaxManifestSize.
type TooLargeError struct {
	URL  string
	Size int64 // -1 when the registry did not say
}

func (e *TooLargeError) Error() string {
	size := "more"
	if e.Size >= 0 {
		size = strconv.FormatInt(e.Size, 10) + " bytes"
	}
	return fmt.Sprintf("GET %s: the manifest is %s; strata reads manifests of at most %d bytes (4 MiB, the distribution spec's size)", e.URL, size, MaxManifestSize)
}

// cappedBody is a manifest's body, cut off with a TooLargeError past its limit.
type cappedBody struct {
	io.ReadCloser
	left int64
	url  string
}

func (b *cappedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return n, &TooLargeError{URL: b.url, Size: -1}
	}
	return n, err
}

// contentAddressed is a GET of a blob or a manifest by digest, whose bytes never change.
func contentAddressed(req *http.Request) bool {
	p := req.URL.Path
	return strings.Contains(p, "/blobs/sha256:") || strings.Contains(p, "/manifests/sha256:")
}

// try sends a request, again after a passing fault when it can be sent again. A response
// it returns may be a failure the caller reports; an error after retries is a GaveUp.
func (t *resilient) try(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replay := req.Method != http.MethodPatch && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
	var (
		resp *http.Response
		err  error
	)
	for n := 1; ; n++ {
		r := req
		if n > 1 {
			r = req.Clone(ctx)
			if req.GetBody != nil {
				if r.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
			}
		}
		resp, err = t.send(r)
		if !replay || ctx.Err() != nil {
			return resp, err
		}
		wait, again := t.retryable(resp, err, n)
		if !again {
			return resp, err
		}
		if n >= t.r.Attempts {
			if err != nil {
				return nil, &GaveUp{Method: req.Method, URL: req.URL.Redacted(), Tries: n, Err: err}
			}
			return nil, gaveUpOn(req, resp, n)
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// retryable says whether a request that got resp or err on try n is worth another, and
// after how long.
func (t *resilient) retryable(resp *http.Response, err error, n int) (time.Duration, bool) {
	if err != nil {
		return t.r.backoff(n), transient(err)
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		return 0, false
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
		return d, d <= t.r.MaxWait
	}
	return t.r.backoff(n), true
}

// transient is a network error that may pass: not a TLS one (a certificate this machine does
// not trust, a server that does not speak TLS, which go-containerregistry's ping meets when it
// tries https on a plain http registry and should hear at once), nor a host name that does not
// exist.
func transient(err error) bool {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var alert tls.AlertError
	var dns *net.DNSError
	switch {
	case errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify),
		errors.As(err, &record), errors.As(err, &alert), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return false
	case errors.As(err, &dns):
		return !dns.IsNotFound
	}
	return true
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(time.Until(at), 0), true
	}
	return 0, false
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send sends a request once, with a watchdog that cancels it when the registry stays silent
// for Retry.Stall: while the request waits for its answer (restarted by every read of the
// request's body, which the connection takes as fast as the registry does) and while a read
// of the response's body waits. Time the caller spends between reads does not count.
func (t *resilient) send(req *http.Request) (*http.Response, error) {
	parent := req.Context()
	ctx, cancel := context.WithCancelCause(parent)
	stall := &StallError{After: t.r.Stall}
	timer := time.AfterFunc(t.r.Stall, func() { cancel(stall) })
	r := req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		r.Body = &kickedBody{ReadCloser: req.Body, timer: timer, d: t.r.Stall}
	}
	resp, err := t.inner.RoundTrip(r)
	timer.Stop()
	if err != nil {
		cancel(nil)
		if parent.Err() == nil && context.Cause(ctx) == stall {
			err = fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), stall)
		}
		return nil, err
	}
	resp.Body = &watchedBody{ReadCloser: resp.Body, ctx: ctx, parent: parent, cancel: cancel, timer: timer, stall: stall, what: req.Method + " " + req.URL.Redacted()}
	return resp, nil
}

// kickedBody restarts the watchdog on every read of a request's body.
type kickedBody struct {
	io.ReadCloser
	timer *time.Timer
	d     time.Duration
}

func (b *kickedBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.d)
	return b.ReadCloser.Read(p)
}

// watchedBody is a response body whose reads the watchdog guards.
type watchedBody struct {
	io.ReadCloser
	ctx, parent context.Context
	cancel      context.CancelCauseFunc
	timer       *time.Timer
	stall       *StallError
	what        string
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.stall.After)
	n, err := b.ReadCloser.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF && b.parent.Err() == nil && context.Cause(b.ctx) == b.stall {
		err = fmt.Errorf("%s: %w", b.what, b.stall)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.timer.Stop()
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// resumeBody is a download that, when its connection breaks off, asks for the rest with a
// ranged GET and goes on from the byte it reached, as long as each try gets further.
type resumeBody struct {
	t     *resilient
	req   *http.Request
	body  io.ReadCloser
	n     int64 // bytes read so far
	size  int64
	etag  string // If-Range for a body that is not content-addressed
	fails int    // resumes in a row that got no byte further
	err   error  // what broke the last connection
}

func (b *resumeBody) Read(p []byte) (int, error) {
	for {
		if b.body == nil {
			if err := b.resume(); err != nil {
				return 0, err
			}
		}
		k, err := b.body.Read(p)
		b.n += int64(k)
		if k > 0 {
			b.fails = 0
		}
		if err == nil || (err == io.EOF && b.n >= b.size) || b.req.Context().Err() != nil {
			return k, err
		}
		// Cut short (io.ErrUnexpectedEOF), reset, or silent: ask for the rest.
		b.body.Close()
		b.body, b.err = nil, err
		if k > 0 {
			return k, nil
		}
	}
}

func (b *resumeBody) Close() error {
	if b.body == nil {
		return nil
	}
	return b.body.Close()
}

// resume asks for the bytes from b.n on.
func (b *resumeBody) resume() error {
	ctx := b.req.Context()
	for {
		b.fails++
		if b.fails >= b.t.r.Attempts {
			return &GaveUp{Method: b.req.Method, URL: b.req.URL.Redacted(), Tries: b.fails, Err: fmt.Errorf("the download broke off at byte %d of %d: %w", b.n, b.size, b.err)}
		}
		if err := sleep(ctx, b.t.r.backoff(b.fails)); err != nil {
			return err
		}
		r := b.req.Clone(ctx)
		r.Header.Set("Range", fmt.Sprintf("bytes=%d-", b.n))
		if b.etag != "" {
			r.Header.Set("If-Range", b.etag)
		}
		resp, err := b.t.try(r)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			b.err = err
			continue
		}
		switch {
		case resp.StatusCode == http.StatusPartialContent && rangeStart(resp.Header.Get("Content-Range")) == b.n:
			b.body = resp.Body
			return nil
		case resp.StatusCode == http.StatusOK && b.etag == "" && resp.ContentLength == b.size:
			// A registry that ignores Range sends the whole blob again: skip what was read.
			if _, err := io.CopyN(io.Discard, resp.Body, b.n); err != nil {
				resp.Body.Close()
				b.err = err
				continue
			}
			b.body = resp.Body
			return nil
		}
		resp.Body.Close()
		return fmt.Errorf("%s %s broke off at byte %d of %d (%v), and asking for the rest got %s", b.req.Method, b.req.URL.Redacted(), b.n, b.size, b.err, resp.Status)
	}
}

// rangeStart is the first byte of a Content-Range ("bytes 100-199/200"), or -1.
func rangeStart(v string) int64 {
	v, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return -1
	}
	start, _, ok := strings.Cut(v, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(start, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// retryAgain is go-containerregistry's retry predicate (for its retries of a whole blob
// upload or manifest push): the network errors its default retries, but not a GaveUp, which
// the resilient transport already retried, nor a cancelled operation.
func retryAgain(err error) bool {
	var gave *GaveUp
	if err == nil || errors.As(err, &gave) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var temp interface{ Temporary() bool }
	return (errors.As(err, &temp) && temp.Temporary()) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// upload sends the body of a blob upload, which go-containerregistry streams in one PATCH,
// as it is unless Retry.Chunk is set. A body of more than Retry.Chunk bytes goes in chunks (PATCH with Content-Range, as the
// distribution spec's chunked upload), so that a chunk that breaks off, times out or gets a
// passing error is sent again from the byte the registry says it has (a GET of the upload's
// location answers with its Range); an upload the registry dropped starts again. The answer go-containerregistry gets is a 202 with the
// location to commit to. A registry that refuses the first chunk gets the
// whole body in one PATCH, as before.
//
// An upload stopped by its context (Ctrl-C) is deleted from the registry, so that it does not
// keep the bytes until it expires them.
func (t *resilient) upload(req *http.Request) (_ *http.Response, err error) {
	defer req.Body.Close()
	ctx := req.Context()
	loc := req.URL
	defer func() {
		if err != nil && ctx.Err() != nil {
			t.abandon(req, loc)
		}
	}()
	if t.r.Chunk <= 0 {
		return t.send(req)
	}
	buf := make([]byte, t.r.Chunk)
	k, err := io.ReadFull(req.Body, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		// One chunk or less: one plain PATCH. If it fails go-containerregistry starts over.
		return t.patch(req, req.URL, buf[:k], -1)
	}
	if err != nil {
		return nil, err
	}
	var off int64 // the bytes the registry has
	for k > 0 {
		chunk, start := buf[:k], off
		for fails := 0; ; {
			resp, err := t.patch(req, loc, chunk[off-start:], off)
			if err == nil && (resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNoContent) {
				loc, err = location(resp, loc)
				resp.Body.Close()
				if err != nil {
					return nil, err
				}
				off = start + int64(k)
				if end, ok := rangeEnd(resp.Header.Get("Range")); ok && end+1 != off {
					return nil, fmt.Errorf("PATCH %s: after a chunk that ends at byte %d the registry says it has %d bytes: it does not take chunked uploads as the distribution spec says; unset %s", loc.Redacted(), off, end+1, EnvChunkSize)
				}
				break
			}
			wait, refused := t.r.backoff(fails+1), 0
			if err == nil {
				if start == 0 && fails == 0 && refusesChunks(resp.StatusCode) {
					// No chunked uploads here: the whole body in one PATCH.
					resp.Body.Close()
					rest := io.MultiReader(bytes.NewReader(chunk), req.Body)
					return t.patch(req, loc, nil, -1, rest)
				}
				var again bool
				if wait, again = t.retryable(resp, nil, fails+1); !again && resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
					return resp, nil
				}
				refused, err = resp.StatusCode, errors.New(resp.Status)
				resp.Body.Close()
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if fails++; fails >= t.r.Attempts {
				return nil, &GaveUp{Method: req.Method, URL: loc.Redacted(), Tries: fails, Err: fmt.Errorf("the upload broke off at byte %d: %w", off, err)}
			}
			if err := sleep(ctx, wait); err != nil {
				return nil, err
			}
			// Go on from what the registry has. An upload it lost fails here, and
			// go-containerregistry starts it again.
			have, exact, l, serr := t.uploaded(req, loc)
			if serr != nil {
				return nil, &restartUpload{fmt.Errorf("the upload broke off at byte %d (%v), and the registry no longer has it: %w", off, err, serr)}
			}
			if !exact && !(refused == http.StatusRequestedRangeNotSatisfiable && off == 0) {
				have = 0 // "0-0": none, unless a chunk from 0 was just refused
			}
			if have < start || have > start+int64(k) {
				return nil, &restartUpload{fmt.Errorf("the upload broke off at byte %d (%v), and the registry has %d bytes, outside the chunk from %d that strata holds", off, err, have, start)}
			}
			off, loc = have, l
			if off == start+int64(k) {
				break
			}
		}
		if k, err = io.ReadFull(req.Body, buf); err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return nil, err
		}
	}
	return &http.Response{
		Status: "202 Accepted", StatusCode: http.StatusAccepted, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Location": {loc.String()}}, Body: http.NoBody, Request: req,
	}, nil
}

// restartUpload is an upload that cannot go on: the registry no longer has it, or not as
// strata sent it. docker-registry (distribution) drops an upload whose size is not what the
// location's state says, so a chunk that broke off part way ends it. It is temporary to
// go-containerregistry's retries, which start the upload again.
type restartUpload struct{ err error }

func (e *restartUpload) Error() string   { return e.err.Error() + "; the upload starts again" }
func (e *restartUpload) Unwrap() error   { return e.err }
func (e *restartUpload) Temporary() bool { return true }

// refusesChunks is an answer to a first chunk from a registry that takes no chunked upload.
func refusesChunks(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusLengthRequired, http.StatusRequestedRangeNotSatisfiable, http.StatusNotImplemented:
		return true
	}
	return false
}

// patch sends data (or body, when given) to an upload's location; from >= 0 sends it as
// the chunk at that offset.
func (t *resilient) patch(orig *http.Request, loc *url.URL, data []byte, from int64, body ...io.Reader) (*http.Response, error) {
	r := orig.Clone(orig.Context())
	r.URL, r.Host = loc, ""
	if len(body) > 0 {
		r.Body, r.ContentLength = io.NopCloser(body[0]), -1
		if orig.ContentLength > 0 {
			r.ContentLength = orig.ContentLength
		}
	} else {
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(data)), int64(len(data))
	}
	r.GetBody = nil
	r.Header.Set("Content-Type", "application/octet-stream")
	if from >= 0 {
		r.Header.Set("Content-Range", fmt.Sprintf("%d-%d", from, from+int64(len(data))-1))
	}
	return t.send(r)
}

// uploaded asks an upload's location how many bytes the registry has (its Range header,
// "0-<last byte>"), and where to send the next. Not exact is "0-0", which registries say for
// no bytes and for one.
func (t *resilient) uploaded(orig *http.Request, loc *url.URL) (have int64, exact bool, next *url.URL, err error) {
	resp, err := t.try(bare(orig.Context(), orig, http.MethodGet, loc))
	if err != nil {
		return 0, false, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return 0, false, nil, fmt.Errorf("GET %s: %s", loc.Redacted(), resp.Status)
	}
	if next, err = location(resp, loc); err != nil {
		return 0, false, nil, err
	}
	rg := resp.Header.Get("Range")
	if rg == "" {
		return 0, true, next, nil
	}
	n, ok := rangeEnd(rg)
	if !ok {
		return 0, false, nil, fmt.Errorf("GET %s: a Range of %q", loc.Redacted(), rg)
	}
	return n + 1, n > 0, next, nil
}

// rangeEnd is the last byte of an upload's Range ("0-<last>").
func rangeEnd(rg string) (int64, bool) {
	_, end, ok := strings.Cut(strings.TrimPrefix(rg, "bytes="), "-")
	n, err := strconv.ParseInt(end, 10, 64)
	return n, ok && err == nil
}

// abandon deletes an upload that its context stopped, waiting at most two seconds.
func (t *resilient) abandon(orig *http.Request, loc *url.URL) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(orig.Context()), 2*time.Second)
	defer cancel()
	if resp, err := t.inner.RoundTrip(bare(ctx, orig, http.MethodDelete, loc)); err == nil {
		resp.Body.Close()
	}
}

// bare is a request without a body to an upload's location, with orig's headers (its
// credentials among them).
func bare(ctx context.Context, orig *http.Request, method string, loc *url.URL) *http.Request {
	r := orig.Clone(ctx)
	r.Method, r.URL, r.Host, r.Body, r.GetBody, r.ContentLength = method, loc, "", http.NoBody, nil, 0
	r.Header.Del("Content-Type")
	r.Header.Del("Content-Range")
	return r
}

// location is where an upload goes on, from an answer's Location (relative to the request).
func location(resp *http.Response, from *url.URL) (*url.URL, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return from, nil
	}
	u, err := url.Parse(l)
	if err != nil {
		return nil, fmt.Errorf("the registry's Location %q: %w", l, err)
	}
	return from.ResolveReference(u), nil
}
