package local

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// aptProxy is an http proxy, on 127.0.0.1 for the life of the process, through which the
// bootstrap and the apt steps fetch from plain-http archives, as apt-cacher-ng does. It
// keeps what never changes at its URL (the .deb files of a pool, and the index files apt
// fetches by hash) in the apt package cache, and passes everything else (Release files,
// https, ranges) through. apt checks every file against the signed Release file, so a
// cached file can make a build faster, never different.
//
// A proxy rather than a cache folder: steps run apt-get clean, which would empty a mounted
// archives folder, and apt's locks would serialize concurrent builds; the proxy is shared
// by all of them, and each file is written once, aside, then renamed.
type aptProxy struct {
	dir string
	ln  net.Listener
	srv *http.Server
	rp  *httputil.ReverseProxy
	// auth is the Proxy-Authorization the proxy's URL gives: other local users cannot use
	// it (nor, through it, the user's own upstream proxy).
	auth, token string
}

// aptProxyURL starts the process's apt proxy on first use and returns its URL.
func (e *Engine) aptProxyURL() (string, error) {
	e.aptOnce.Do(func() {
		dir, err := e.packageCacheDir("apt")
		if err != nil {
			e.aptErr = err
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.aptErr = fmt.Errorf("starting the apt cache proxy: %w", err)
			return
		}
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		token := hex.EncodeToString(b)
		p := &aptProxy{dir: dir, ln: ln, token: token, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("strata:"+token))}
		p.removeStale()
		p.rp = &httputil.ReverseProxy{
			// A proxy request carries its absolute URL: it goes where it names, unchanged.
			Rewrite:        func(*httputil.ProxyRequest) {},
			Transport:      &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second},
			ModifyResponse: p.keep,
		}
		p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
		go func() { _ = p.srv.Serve(ln) }()
		e.apt = p
	})
	if e.aptErr != nil {
		return "", e.aptErr
	}
	return "http://strata:" + e.apt.token + "@" + e.apt.ln.Addr().String() + "/", nil
}

// removeStale removes what a proxy that died left half-written (an hour old: another
// process's proxy may be writing its own now).
func (p *aptProxy) removeStale() {
	tmps, _ := filepath.Glob(filepath.Join(p.dir, ".tmp-*"))
	for _, f := range tmps {
		if info, err := os.Stat(f); err == nil && time.Since(info.ModTime()) > time.Hour {
			os.Remove(f)
		}
	}
}

func (p *aptProxy) close() {
	if p != nil {
		_ = p.srv.Close()
	}
}

// immutable says whether a request's answer never changes, and is anybody's: a whole GET,
// without credentials, of a package or of an index file by its hash.
func immutable(r *http.Request) bool {
	if r.Method != http.MethodGet || r.Header.Get("Range") != "" || r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" {
		return false
	}
	p := r.URL.Path
	return strings.HasSuffix(p, ".deb") || strings.HasSuffix(p, ".udeb") || strings.Contains(p, "/by-hash/")
}

func (p *aptProxy) file(u string) string {
	sum := sha256.Sum256([]byte(u))
	return filepath.Join(p.dir, hex.EncodeToString(sum[:]))
}

func (p *aptProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Proxy-Authorization")), []byte(p.auth)) != 1 {
		w.Header().Set("Proxy-Authenticate", `Basic realm="strata"`)
		http.Error(w, "strata's apt cache serves the builds of the process that started it", http.StatusProxyAuthRequired)
		return
	}
	r.Header.Del("Proxy-Authorization")
	if r.URL.Scheme != "http" || r.URL.Host == "" {
		// apt is only given this proxy for http; https goes straight to its host.
		http.Error(w, "strata's apt cache proxies plain-http requests in proxy form only", http.StatusBadRequest)
		return
	}
	if immutable(r) {
		if f, err := os.Open(p.file(r.URL.String())); err == nil {
			defer f.Close()
			if info, err := f.Stat(); err == nil {
				w.Header().Set("Content-Type", "application/octet-stream")
				http.ServeContent(w, r, "", info.ModTime(), f)
				return
			}
		}
	}
	p.rp.ServeHTTP(w, r)
}

// keep tees a whole answer to an immutable request into the cache, where it lands only
// once the body has been read to its end and is as long as the server said.
func (p *aptProxy) keep(resp *http.Response) error {
	// An encoded body is not the file: served from the cache without its header, it would
	// be read as the file.
	if resp.StatusCode != http.StatusOK || !immutable(resp.Request) || resp.Header.Get("Content-Encoding") != "" {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil { // emptied by prune --caches since
		return nil
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	tmp := filepath.Join(p.dir, ".tmp-"+hex.EncodeToString(b))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil // serve it uncached
	}
	deb := strings.HasSuffix(resp.Request.URL.Path, ".deb") || strings.HasSuffix(resp.Request.URL.Path, ".udeb")
	resp.Body = &teeToCache{ReadCloser: resp.Body, f: f, tmp: tmp, dst: p.file(resp.Request.URL.String()), want: resp.ContentLength, deb: deb}
	return nil
}

type teeToCache struct {
	io.ReadCloser
	f         *os.File
	tmp, dst  string
	want, got int64
	failed    bool
	done      sync.Once
	// deb files must start as ar archives do: a 200 page from a captive portal is no
	// package, and would fail apt's check in every later build.
	deb  bool
	head []byte
}

// arMagic starts every .deb.
const arMagic = "!<arch>\n"

func (t *teeToCache) Read(b []byte) (int, error) {
	n, err := t.ReadCloser.Read(b)
	if n > 0 && !t.failed {
		if _, werr := t.f.Write(b[:n]); werr != nil {
			t.failed = true
		}
		t.got += int64(n)
		if len(t.head) < len(arMagic) {
			t.head = append(t.head, b[:min(n, len(arMagic)-len(t.head))]...)
		}
	}
	if errors.Is(err, io.EOF) {
		t.finish(true)
	}
	return n, err
}

func (t *teeToCache) Close() error {
	t.finish(false)
	return t.ReadCloser.Close()
}

func (t *teeToCache) finish(eof bool) {
	t.done.Do(func() {
		ok := eof && !t.failed && (t.want < 0 || t.got == t.want) && (!t.deb || string(t.head) == arMagic)
		if err := t.f.Close(); err != nil {
			ok = false
		}
		if ok {
			ok = os.Rename(t.tmp, t.dst) == nil
		}
		if !ok {
			os.Remove(t.tmp)
		}
	})
}
