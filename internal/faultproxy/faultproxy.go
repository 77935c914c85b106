// Package faultproxy is a reverse proxy for tests that puts a failing network between a
// client and a real registry: it drops connections, answers with errors (and Retry-After),
// stalls, cuts answers short, and breaks off uploads part way, by rules the test sets. It
// logs every request, so a test can check what the client did about each fault.
package faultproxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Fault is what happens to a request a rule matches. The zero Fault forwards it.
type Fault struct {
	// Drop closes the connection without an answer.
	Drop bool
	// Status answers with this status (and a registry's JSON error) instead of forwarding.
	Status int
	// RetryAfter is the Retry-After header of that answer.
	RetryAfter string
	// StallHeaders waits this long before doing anything else (the client's own timeout
	// may end it first).
	StallHeaders time.Duration
	// CutAfter forwards the registry's answer but closes the connection after this many
	// bytes of its body.
	CutAfter int64
	// StallAfter forwards the registry's answer but sends nothing more after this many bytes
	// of its body, until the client goes away or the proxy closes.
	StallAfter int64
	// BreakUploadAfter forwards this many bytes of a request's body to the registry, then
	// breaks off both connections.
	BreakUploadAfter int64
}

func (f Fault) String() string {
	switch {
	case f.Drop:
		return "drop"
	case f.Status != 0:
		return fmt.Sprintf("status %d", f.Status)
	case f.CutAfter > 0:
		return fmt.Sprintf("cut after %d", f.CutAfter)
	case f.StallAfter > 0:
		return fmt.Sprintf("stall after %d", f.StallAfter)
	case f.BreakUploadAfter > 0:
		return fmt.Sprintf("break upload after %d", f.BreakUploadAfter)
	case f.StallHeaders > 0:
		return fmt.Sprintf("stall %s", f.StallHeaders)
	}
	return ""
}

// Rule gives a fault to requests with a method and a path that contains Path.
type Rule struct {
	Method string // "" matches any
	Path   string // a substring of the path; "" matches any
	Header string // a header the request must have; "" matches any
	// Times is how many matching requests get the fault; 0 is every one.
	Times int
	Fault
}

// Request is a request the proxy saw, and the fault it got.
type Request struct {
	Method, Path, Range, ContentRange string
	At                                time.Time
	Fault                             string
}

// Proxy is a fault-injecting proxy in front of one registry.
type Proxy struct {
	// Host is the proxy's host:port, to use in image references instead of the registry's.
	Host     string
	upstream string
	srv      *httptest.Server
	done     chan struct{}

	mu    sync.Mutex
	rules []*Rule
	log   []Request
}

// Start starts a proxy on 127.0.0.1 in front of the registry at upstream (host:port, plain
// http).
func Start(upstream string) *Proxy {
	p := &Proxy{upstream: upstream, done: make(chan struct{})}
	p.srv = httptest.NewServer(p)
	p.Host = strings.TrimPrefix(p.srv.URL, "http://")
	return p
}

// Close stops the proxy, ending any stall.
func (p *Proxy) Close() {
	close(p.done)
	p.srv.CloseClientConnections()
	p.srv.Close()
}

// Add adds rules; the first one that matches a request, and has times left, applies.
func (p *Proxy) Add(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range rules {
		p.rules = append(p.rules, &rules[i])
	}
}

// Reset removes the rules and forgets the requests.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules, p.log = nil, nil
}

// Requests are the requests seen so far, in order.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.log...)
}

func (p *Proxy) match(r *http.Request) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	var f Fault
	for _, rule := range p.rules {
		if (rule.Method == "" || rule.Method == r.Method) && strings.Contains(r.URL.Path, rule.Path) &&
			(rule.Header == "" || r.Header.Get(rule.Header) != "") && rule.Times >= 0 {
			if rule.Times > 0 {
				if rule.Times--; rule.Times == 0 {
					rule.Times = -1 // used up
				}
			}
			f = rule.Fault
			break
		}
	}
	p.log = append(p.log, Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), ContentRange: r.Header.Get("Content-Range"), At: time.Now(), Fault: f.String()})
	return f
}

// hopHeaders are not forwarded.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.match(r)
	if f.StallHeaders > 0 {
		select {
		case <-time.After(f.StallHeaders):
		case <-r.Context().Done():
			return
		case <-p.done:
			return
		}
	}
	switch {
	case f.Drop:
		hangUp(w, false)
		return
	case f.Status != 0:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":"faultproxy: %d for %s %s"}]}`, f.Status, r.Method, r.URL.Path)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.upstream+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	// The registry writes its Location headers for the host it is asked by: the proxy's.
	out.Host = r.Host
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	if f.BreakUploadAfter > 0 {
		out.Body = io.NopCloser(&breakingReader{r: r.Body, left: f.BreakUploadAfter})
		out.ContentLength = -1
		if out.Header.Get("Content-Range") != "" {
			// A chunk keeps its length, so that the registry takes what arrives as part
			// of it.
			out.ContentLength = r.ContentLength
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		if f.BreakUploadAfter > 0 {
			hangUp(w, false)
			return
		}
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	w.WriteHeader(resp.StatusCode)
	switch {
	case f.CutAfter > 0:
		io.CopyN(w, resp.Body, f.CutAfter)
		hangUp(w, true)
	case f.StallAfter > 0:
		io.CopyN(w, resp.Body, f.StallAfter)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-p.done:
		}
	default:
		io.Copy(w, resp.Body)
	}
}

// hangUp closes the client's connection. cut closes it after what was written so far;
// else it is closed as a dropped network does, with a TCP reset and no answer.
func hangUp(w http.ResponseWriter, cut bool) {
	if cut {
		w.(http.Flusher).Flush()
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok && !cut {
		tc.SetLinger(0)
	}
	conn.Close()
}

// breakingReader gives left bytes, then an error that breaks off the request it is the body
// of.
type breakingReader struct {
	r    io.Reader
	left int64
}

func (b *breakingReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("faultproxy: the upload is broken off")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
