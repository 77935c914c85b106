// Package registry is how strata talks to OCI registries: references, transports that trust
// the right certificates, credentials (the user's docker config and credential helpers, a
// named secret's static credentials, AWS ECR and Google Cloud tokens), and errors that say
// which registry refused what and how to fix it. Pulls and pushes are go-containerregistry's.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Options say how to reach registries.
type Options struct {
	// Insecure are registries ("host" or "host:port") reached over plain http, or over TLS
	// without verifying their certificate. Loopback registries are always reached over http
	// when they do not speak TLS.
	Insecure []string
	// CertDirs are folders in Docker's certs.d layout: DIR/HOST[:PORT]/*.crt are certificate
	// authorities trusted for that registry, besides the system's, and a *.cert with its
	// *.key is a client certificate.
	CertDirs []string
	// Keychain finds credentials when a call names none (default: the user's docker config
	// and its credential helpers, as docker, podman and crane read them).
	Keychain authn.Keychain
	// Retry says how passing faults are retried and resumed (zero: the defaults).
	Retry Retry
}

// Client reaches registries with its options. Its transports are made once per registry
// and shared, so connections are reused.
type Client struct {
	o          Options
	mu         sync.Mutex
	transports map[string]http.RoundTripper
}

// New returns a client.
func New(o Options) *Client {
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	o.Retry = o.Retry.withDefaults()
	return &Client{o: o, transports: map[string]http.RoundTripper{}}
}

// DefaultCertDirs are the certs.d folders docker and podman read, after strata's own.
func DefaultCertDirs(home string) []string {
	dirs := []string{filepath.Join(home, "certs.d"), "/etc/containers/certs.d", "/etc/docker/certs.d"}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".config", "containers", "certs.d"))
	}
	return dirs
}

// ParseReference parses an image reference; registries named insecure are reached over
// plain http.
func (c *Client) ParseReference(ref string) (name.Reference, error) {
	var opts []name.Option
	if c.insecure(ref) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("%q is not an image reference: %w", ref, err)
	}
	return r, nil
}

// ParseRepository parses a repository ("registry/name").
func (c *Client) ParseRepository(repo string) (name.Repository, error) {
	var opts []name.Option
	if c.insecure(repo) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(repo, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%q is not a repository (REGISTRY/NAME): %w", repo, err)
	}
	return r, nil
}

func (c *Client) insecure(ref string) bool {
	host := strings.SplitN(ref, "/", 2)[0]
	h := host
	if i := strings.LastIndex(h, ":"); i > 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	for _, r := range c.o.Insecure {
		if r != "" && (r == host || r == h) {
			return true
		}
	}
	return false
}

// Options are the go-containerregistry options that reach reg: its transport, and auth, or
// the keychain's credentials when auth is nil.
func (c *Client) Options(ctx context.Context, reg name.Registry, auth authn.Authenticator) ([]remote.Option, error) {
	tr, err := c.transport(reg)
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(tr), remote.WithUserAgent("strata"),
		// The resilient transport retries requests; go-containerregistry's own retries are
		// left for what it alone can do again, a whole blob upload or manifest push.
		remote.WithRetryStatusCodes(), remote.WithRetryPredicate(retryAgain),
		remote.WithRetryBackoff(remote.Backoff{Duration: c.o.Retry.Backoff, Factor: 2, Jitter: 0.25, Steps: 3})}
	if auth != nil {
		opts = append(opts, remote.WithAuth(auth))
	} else {
		opts = append(opts, remote.WithAuthFromKeychain(c.o.Keychain))
	}
	return opts, nil
}

// transport returns the HTTP transport for a registry: the system's CAs plus those of its
// certs.d folders, client certificates, and no verification for registries named insecure.
func (c *Client) transport(reg name.Registry) (http.RoundTripper, error) {
	host := reg.RegistryStr()
	c.mu.Lock()
	defer c.mu.Unlock()
	if tr, ok := c.transports[host]; ok {
		return tr, nil
	}
	base := remote.DefaultTransport.(*http.Transport).Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.insecure(host) {
		cfg.InsecureSkipVerify = true
	}
	var pool *x509.CertPool
	for _, dir := range c.o.CertDirs {
		d := filepath.Join(dir, host)
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			switch {
			case strings.HasSuffix(e.Name(), ".crt"):
				pem, err := os.ReadFile(p)
				if err != nil {
					return nil, err
				}
				if pool == nil {
					if pool, err = x509.SystemCertPool(); err != nil {
						pool = x509.NewCertPool()
					}
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("%s holds no PEM certificate", p)
				}
			case strings.HasSuffix(e.Name(), ".cert"):
				key := strings.TrimSuffix(p, ".cert") + ".key"
				cert, err := tls.LoadX509KeyPair(p, key)
				if err != nil {
					return nil, fmt.Errorf("client certificate %s and %s: %w", p, key, err)
				}
				cfg.Certificates = append(cfg.Certificates, cert)
			}
		}
	}
	cfg.RootCAs = pool
	base.TLSClientConfig = cfg
	tr := &resilient{inner: base, r: c.o.Retry}
	c.transports[host] = tr
	return tr, nil
}

// Explain turns a registry error into one that names the registry and the fix: refused
// credentials (401), denied access (403), a missing image (404), a certificate this machine
// does not trust. Other errors are returned as they are.
func Explain(err error, ref string) error {
	if err == nil {
		return nil
	}
	host := strings.SplitN(ref, "/", 2)[0]
	if r, perr := name.ParseReference(ref); perr == nil {
		host = r.Context().RegistryStr()
	} else if repo, perr := name.NewRepository(ref); perr == nil {
		host = repo.RegistryStr()
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("registry %s answered 401 Unauthorized for %s: log in (strata login %s), or name a secret with REGISTRY_USERNAME and REGISTRY_PASSWORD: %w", host, ref, host, err)
		case http.StatusForbidden:
			return fmt.Errorf("registry %s answered 403 Forbidden for %s: the credentials it was given may not do this: %w", host, ref, err)
		case http.StatusNotFound:
			return fmt.Errorf("registry %s has no %s (404 Not Found): %w", host, ref, err)
		}
		return fmt.Errorf("registry %s, %s: %w", host, ref, err)
	}
	var gave *GaveUp
	if errors.As(err, &gave) {
		return fmt.Errorf("registry %s, %s: %w", host, ref, err)
	}
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknown) || errors.As(err, &verify) {
		return fmt.Errorf("registry %s presents a TLS certificate that this machine does not trust: put its CA in certs.d/%s/ca.crt (in strata's home, /etc/containers or /etc/docker) or the system trust store; for a test registry, STRATA_INSECURE_REGISTRIES=%s skips the check: %w", host, host, host, err)
	}
	return err
}
