package registry

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

const (
	testAccessKeyID     = "AKIDEXAMPLE123456789"
	testSecretAccessKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETKEY"
	testRegion          = "eu-west-3"
	testECRHost         = "123456789012.dkr.ecr.eu-west-3.amazonaws.com"
	testECRPassword     = "ecr-password-0123"
)

// ecrServer is an httptest server speaking ECR's JSON 1.1 protocol for
// GetAuthorizationToken, checking the SigV4 signature's shape (not its
// value: that would re-implement the SDK's signer).
type ecrServer struct {
	t *testing.T
	// status and body, when set, replace the normal answer.
	status int
	body   string
	// block makes the handler wait for the client to give up, or for
	// release to be closed.
	block   bool
	release chan struct{}

	mu           sync.Mutex
	calls        int
	sessionToken string
}

func (s *ecrServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls++
	s.sessionToken = r.Header.Get("X-Amz-Security-Token")
	s.mu.Unlock()

	fail := func(format string, args ...any) {
		s.t.Errorf("ECR server: "+format, args...)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"ValidationException","message":%q}`, fmt.Sprintf(format, args...))
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		fail("got %s %s, want POST /", r.Method, r.URL.Path)
		return
	}
	if got, want := r.Header.Get("X-Amz-Target"), "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"; got != want {
		fail("X-Amz-Target = %q, want %q", got, want)
		return
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-amz-json-1.1" {
		fail("Content-Type = %q", got)
		return
	}
	if _, err := io.ReadAll(r.Body); err != nil {
		fail("reading body: %v", err)
		return
	}
	auth := r.Header.Get("Authorization")
	const sigPrefix = "AWS4-HMAC-SHA256 Credential="
	if !strings.HasPrefix(auth, sigPrefix) {
		fail("Authorization %q is not SigV4", auth)
		return
	}
	if !strings.Contains(auth, "/"+testRegion+"/ecr/aws4_request") {
		fail("Authorization %q does not name region %s and service ecr", auth, testRegion)
		return
	}
	if !strings.HasPrefix(auth, sigPrefix+testAccessKeyID+"/") {
		// What real ECR answers for an unknown access key.
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`)
		return
	}
	if s.block {
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if s.status != 0 {
		w.WriteHeader(s.status)
		io.WriteString(w, s.body)
		return
	}
	token := base64.StdEncoding.EncodeToString([]byte("AWS:" + testECRPassword))
	fmt.Fprintf(w, `{"authorizationData":[{"authorizationToken":%q,"expiresAt":1.9e9,"proxyEndpoint":"https://%s"}]}`, token, testECRHost)
}

func newECRServer(t *testing.T, s *ecrServer) *httptest.Server {
	t.Helper()
	s.t = t
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

func ecrSecret(endpoint string) map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     testAccessKeyID,
		"AWS_SECRET_ACCESS_KEY": testSecretAccessKey,
		"AWS_REGION":            testRegion,
		"AWS_ENDPOINT_URL_ECR":  endpoint,
	}
}

func assertBasic(t *testing.T, a authn.Authenticator, user, pass string) {
	t.Helper()
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatalf("Authorization: %v", err)
	}
	if cfg.Username != user || cfg.Password != pass {
		t.Errorf("got %q / %q, want %q / %q", cfg.Username, cfg.Password, user, pass)
	}
}

func TestECR(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret func(url string) map[string]string
		// wantSession is the X-Amz-Security-Token the server must see.
		wantSession string
	}{
		{
			name:   "ECR endpoint key",
			secret: ecrSecret,
		},
		{
			name: "generic endpoint key",
			secret: func(url string) map[string]string {
				s := ecrSecret("")
				delete(s, "AWS_ENDPOINT_URL_ECR")
				s["AWS_ENDPOINT_URL"] = url
				return s
			},
		},
		{
			name: "ECR endpoint key wins",
			secret: func(url string) map[string]string {
				s := ecrSecret(url)
				s["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1" // nothing listens there
				return s
			},
		},
		{
			name: "session token and trailing newlines",
			secret: func(url string) map[string]string {
				s := ecrSecret(url + "\n")
				s["AWS_SECRET_ACCESS_KEY"] += "\n"
				s["AWS_REGION"] += "\n"
				s["AWS_SESSION_TOKEN"] = "session-token\n"
				return s
			},
			wantSession: "session-token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &ecrServer{}
			srv := newECRServer(t, s)
			a, err := ECR(context.Background(), testECRHost, tt.secret(srv.URL))
			if err != nil {
				t.Fatalf("ECR: %v", err)
			}
			assertBasic(t, a, "AWS", testECRPassword)
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.calls != 1 {
				t.Errorf("server saw %d calls, want 1", s.calls)
			}
			if s.sessionToken != tt.wantSession {
				t.Errorf("X-Amz-Security-Token = %q, want %q", s.sessionToken, tt.wantSession)
			}
		})
	}
}

func TestECRErrors(t *testing.T) {
	t.Parallel()
	badToken := base64.StdEncoding.EncodeToString([]byte("no-colon-here"))
	tests := []struct {
		name   string
		server *ecrServer // nil: no server is needed
		secret func(url string) map[string]string
		want   []string
	}{
		{
			name:   "wrong access key",
			server: &ecrServer{},
			secret: func(url string) map[string]string {
				s := ecrSecret(url)
				s["AWS_ACCESS_KEY_ID"] = "AKIDWRONG"
				return s
			},
			want: []string{
				"ECR GetAuthorizationToken for " + testECRHost + ": ",
				"UnrecognizedClientException",
				"The security token included in the request is invalid.",
			},
		},
		{
			name: "access denied",
			server: &ecrServer{
				status: http.StatusBadRequest,
				body:   `{"__type":"AccessDeniedException","message":"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ecr:GetAuthorizationToken"}`,
			},
			secret: ecrSecret,
			want: []string{
				"ECR GetAuthorizationToken for " + testECRHost + ": ",
				"AccessDeniedException",
				"is not authorized to perform: ecr:GetAuthorizationToken",
			},
		},
		{
			name:   "empty authorizationData",
			server: &ecrServer{status: http.StatusOK, body: `{"authorizationData":[]}`},
			secret: ecrSecret,
			want:   []string{"ECR GetAuthorizationToken for " + testECRHost + ": ", "no authorization data"},
		},
		{
			name:   "token not base64",
			server: &ecrServer{status: http.StatusOK, body: `{"authorizationData":[{"authorizationToken":"%%%"}]}`},
			secret: ecrSecret,
			want:   []string{"ECR GetAuthorizationToken for " + testECRHost + ": ", "not valid base64"},
		},
		{
			name:   "token without colon",
			server: &ecrServer{status: http.StatusOK, body: `{"authorizationData":[{"authorizationToken":"` + badToken + `"}]}`},
			secret: ecrSecret,
			want:   []string{"ECR GetAuthorizationToken for " + testECRHost + ": ", "USER:PASSWORD"},
		},
		{
			name: "missing secret key and region",
			secret: func(string) map[string]string {
				return map[string]string{"AWS_ACCESS_KEY_ID": testAccessKeyID, "AWS_SECRET_ACCESS_KEY": " \n"}
			},
			want: []string{"missing AWS_SECRET_ACCESS_KEY, AWS_REGION:", "the secret must hold", "AWS_ACCESS_KEY_ID"},
		},
		{
			name:   "missing everything",
			secret: func(string) map[string]string { return nil },
			want:   []string{"missing AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION:", "the secret must hold"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := "http://127.0.0.1:1"
			if tt.server != nil {
				url = newECRServer(t, tt.server).URL
			}
			a, err := ECR(context.Background(), testECRHost, tt.secret(url))
			if err == nil {
				t.Fatalf("ECR returned %v, want an error", a)
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, testSecretAccessKey) {
				t.Errorf("error %q reveals the secret access key", msg)
			}
			if strings.Contains(msg, badToken) {
				t.Errorf("error %q reveals the authorization token", msg)
			}
			if tt.server != nil {
				tt.server.mu.Lock()
				defer tt.server.mu.Unlock()
				if tt.server.calls > 1 {
					// A client error must not be retried.
					t.Errorf("server saw %d calls, want 1", tt.server.calls)
				}
			}
		})
	}
}

// returnsWithin runs f and fails the test if it has not returned within d,
// so a call that ignores its context fails fast instead of hanging the
// test binary until its timeout.
func returnsWithin(t *testing.T, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("call still running %v after its context expired", d)
		return nil
	}
}

func TestECRContextCancel(t *testing.T) {
	t.Parallel()
	s := &ecrServer{block: true, release: make(chan struct{})}
	srv := newECRServer(t, s)
	t.Cleanup(func() { close(s.release) }) // runs before srv.Close
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := returnsWithin(t, 10*time.Second, func() error {
		_, err := ECR(ctx, testECRHost, ecrSecret(srv.URL))
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ECR error = %v, want one wrapping context.DeadlineExceeded", err)
	}
}

func TestIsECRHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want bool
	}{
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com", true},
		{"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", true},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", true},
		{"123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM", true},
		{"12345678901.dkr.ecr.us-east-1.amazonaws.com", false},   // 11 digits
		{"1234567890123.dkr.ecr.us-east-1.amazonaws.com", false}, // 13 digits
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example", false},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com:443", false},
		{"evil.example/123456789012.dkr.ecr.us-east-1.amazonaws.com", false},
		{"public.ecr.aws", false},
		{"localhost:5000", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsECRHost(tt.host); got != tt.want {
			t.Errorf("IsECRHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestECREndpointOverridden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret map[string]string
		want   bool
	}{
		{"none", map[string]string{"AWS_REGION": "us-east-1"}, false},
		{"nil", nil, false},
		{"blank", map[string]string{"AWS_ENDPOINT_URL": "  "}, false},
		{"ECR key", map[string]string{"AWS_ENDPOINT_URL_ECR": "http://127.0.0.1:4566"}, true},
		{"generic key", map[string]string{"AWS_ENDPOINT_URL": "http://localstack:4566"}, true},
		{"AWS endpoint", map[string]string{"AWS_ENDPOINT_URL_ECR": "https://api.ecr.us-east-1.amazonaws.com"}, false},
		{"AWS FIPS endpoint", map[string]string{"AWS_ENDPOINT_URL_ECR": "https://ecr-fips.us-east-1.amazonaws.com"}, false},
		{"AWS China endpoint", map[string]string{"AWS_ENDPOINT_URL": "https://api.ecr.cn-north-1.amazonaws.com.cn"}, false},
		{"AWS dual-stack endpoint", map[string]string{"AWS_ENDPOINT_URL": "https://ecr.us-east-1.api.aws"}, false},
		{"not a URL", map[string]string{"AWS_ENDPOINT_URL": "api.ecr.us-east-1.amazonaws.com"}, false},
		{"lookalike", map[string]string{"AWS_ENDPOINT_URL": "https://amazonaws.com.evil.example"}, true},
	}
	for _, tt := range tests {
		if got := ECREndpointOverridden(tt.secret); got != tt.want {
			t.Errorf("%s: ECREndpointOverridden(%v) = %v, want %v", tt.name, tt.secret, got, tt.want)
		}
	}
}

const (
	testGCPHost   = "europe-west1-docker.pkg.dev"
	testGCPEmail  = "sa@p.iam.gserviceaccount.com"
	testGCPToken  = "ya29.test"
	testGCPKeyID  = "k1"
	testGCPScope  = "https://www.googleapis.com/auth/cloud-platform"
	testGrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// testRSAKey is shared: generating a 2048-bit key takes a noticeable
// fraction of a second.
var testRSAKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := testRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// serviceAccountJSON returns a service-account key file's JSON text, as
// the IAM console would produce it, pointing at tokenURI.
func serviceAccountJSON(t *testing.T, typ, tokenURI string) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type":           typ,
		"project_id":     "p",
		"private_key_id": testGCPKeyID,
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   testGCPEmail,
		"client_id":      "1",
		"token_uri":      tokenURI,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// gcpTokenHandler plays Google's OAuth2 token endpoint for the JWT bearer
// grant, verifying the assertion with the service account's public key.
func gcpTokenHandler(t *testing.T, tokenURI *string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fail := func(format string, args ...any) {
			t.Errorf("token server: "+format, args...)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%q}`, fmt.Sprintf(format, args...))
		}
		if r.Method != http.MethodPost || r.URL.Path != "/token" {
			fail("got %s %s, want POST /token", r.Method, r.URL.Path)
			return
		}
		if err := r.ParseForm(); err != nil {
			fail("parsing form: %v", err)
			return
		}
		if got := r.PostForm.Get("grant_type"); got != testGrantType {
			fail("grant_type = %q, want %q", got, testGrantType)
			return
		}
		parts := strings.Split(r.PostForm.Get("assertion"), ".")
		if len(parts) != 3 {
			fail("assertion has %d parts, want 3", len(parts))
			return
		}
		var header struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
		}
		var claims struct {
			Iss   string `json:"iss"`
			Aud   string `json:"aud"`
			Scope string `json:"scope"`
			Exp   int64  `json:"exp"`
			Iat   int64  `json:"iat"`
		}
		for i, v := range []any{&header, &claims} {
			raw, err := base64.RawURLEncoding.DecodeString(parts[i])
			if err != nil {
				fail("decoding assertion part %d: %v", i, err)
				return
			}
			if err := json.Unmarshal(raw, v); err != nil {
				fail("parsing assertion part %d: %v", i, err)
				return
			}
		}
		if header.Alg != "RS256" || header.Kid != testGCPKeyID {
			fail("JWT header alg %q kid %q, want RS256 %s", header.Alg, header.Kid, testGCPKeyID)
			return
		}
		if claims.Iss != testGCPEmail || claims.Aud != *tokenURI || claims.Scope != testGCPScope {
			fail("JWT claims iss %q aud %q scope %q, want %q %q %q",
				claims.Iss, claims.Aud, claims.Scope, testGCPEmail, *tokenURI, testGCPScope)
			return
		}
		if now := time.Now().Unix(); claims.Iat > now+60 || claims.Exp <= now {
			fail("JWT iat %d exp %d are not current (now %d)", claims.Iat, claims.Exp, now)
			return
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			fail("decoding signature: %v", err)
			return
		}
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if err := rsa.VerifyPKCS1v15(&rsaKey(t).PublicKey, crypto.SHA256, digest[:], sig); err != nil {
			fail("JWT signature: %v", err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, testGCPToken)
	}
}

func TestGCP(t *testing.T) {
	t.Parallel()
	var tokenURI string
	srv := httptest.NewServer(gcpTokenHandler(t, &tokenURI))
	t.Cleanup(srv.Close)
	tokenURI = srv.URL + "/token"

	for _, host := range []string{testGCPHost, "gcr.io"} {
		a, err := GCP(context.Background(), host, map[string]string{
			"SERVICE_ACCOUNT_JSON": serviceAccountJSON(t, "service_account", tokenURI) + "\n",
		})
		if err != nil {
			t.Fatalf("GCP(%s): %v", host, err)
		}
		assertBasic(t, a, "oauth2accesstoken", testGCPToken)
	}
}

func TestGCPErrors(t *testing.T) {
	t.Parallel()
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_client","error_description":"The OAuth client was not found."}`)
	}))
	t.Cleanup(unauthorized.Close)
	unauthorizedURI := unauthorized.URL + "/token"

	tests := []struct {
		name   string
		secret map[string]string
		want   []string
	}{
		{
			name:   "token endpoint answers 401",
			secret: map[string]string{"SERVICE_ACCOUNT_JSON": serviceAccountJSON(t, "service_account", unauthorizedURI)},
			want:   []string{"GCP access token for " + testGCPHost + ": ", "401", "invalid_client"},
		},
		{
			name:   "missing key",
			secret: map[string]string{"AWS_REGION": "us-east-1"},
			want:   []string{"GCP access token for " + testGCPHost + ": ", "missing SERVICE_ACCOUNT_JSON", "the secret must hold", "service account key"},
		},
		{
			name:   "blank key",
			secret: map[string]string{"SERVICE_ACCOUNT_JSON": "\n"},
			want:   []string{"missing SERVICE_ACCOUNT_JSON"},
		},
		{
			name:   "not JSON",
			secret: map[string]string{"SERVICE_ACCOUNT_JSON": "ya29.not-a-key"},
			want:   []string{"SERVICE_ACCOUNT_JSON is not a service account key"},
		},
		{
			name:   "user credentials",
			secret: map[string]string{"SERVICE_ACCOUNT_JSON": `{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}`},
			want:   []string{"SERVICE_ACCOUNT_JSON is not a service account key", `"authorized_user"`},
		},
		{
			name: "external account",
			secret: map[string]string{"SERVICE_ACCOUNT_JSON": `{"type":"external_account","audience":"a","subject_token_type":"t",` +
				`"token_url":"` + unauthorizedURI + `","credential_source":{"executable":{"command":"/bin/false"}}}`},
			want: []string{"SERVICE_ACCOUNT_JSON is not a service account key", `"external_account"`},
		},
		{
			name: "bad private key",
			secret: map[string]string{"SERVICE_ACCOUNT_JSON": `{"type":"service_account","client_email":"` + testGCPEmail +
				`","private_key":"not a key","token_uri":"` + unauthorizedURI + `"}`},
			want: []string{"GCP access token for " + testGCPHost + ": "},
		},
	}
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey(t))
	if err != nil {
		t.Fatal(err)
	}
	keyText := base64.StdEncoding.EncodeToString(der)[:64]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := GCP(context.Background(), testGCPHost, tt.secret)
			if err == nil {
				t.Fatalf("GCP returned %v, want an error", a)
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, keyText) {
				t.Errorf("error %q reveals the private key", msg)
			}
		})
	}
}

func TestGCPContextCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	secret := map[string]string{
		"SERVICE_ACCOUNT_JSON": serviceAccountJSON(t, "service_account", srv.URL+"/token"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := returnsWithin(t, 10*time.Second, func() error {
		_, err := GCP(ctx, testGCPHost, secret)
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GCP error = %v, want one wrapping context.DeadlineExceeded", err)
	}
}

func TestIsGCPHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want bool
	}{
		{"europe-west1-docker.pkg.dev", true},
		{"us-docker.pkg.dev", true},
		{"gcr.io", true},
		{"eu.gcr.io", true},
		{"GCR.IO", true},
		{"docker.pkg.dev", false},
		{"evilgcr.io", false},
		{"gcr.io.evil.example", false},
		{"us-docker.pkg.dev.evil.example", false},
		{"ghcr.io", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsGCPHost(tt.host); got != tt.want {
			t.Errorf("IsGCPHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestGCPEndpointOverridden(t *testing.T) {
	t.Parallel()
	withURI := func(uri string) map[string]string {
		b, err := json.Marshal(map[string]string{"type": "service_account", "token_uri": uri})
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"SERVICE_ACCOUNT_JSON": string(b)}
	}
	tests := []struct {
		name   string
		secret map[string]string
		want   bool
	}{
		{"no key", nil, false},
		{"not JSON", map[string]string{"SERVICE_ACCOUNT_JSON": "nope"}, false},
		{"no token_uri", map[string]string{"SERVICE_ACCOUNT_JSON": `{"type":"service_account"}`}, false},
		{"Google", withURI("https://oauth2.googleapis.com/token"), false},
		{"Google legacy", withURI("https://accounts.google.com/o/oauth2/token"), false},
		{"Google with trailing slash", withURI("https://oauth2.googleapis.com/token/"), false},
		{"Google mTLS", withURI("https://oauth2.mtls.googleapis.com/token"), false},
		{"not a URL", withURI("oauth2.googleapis.com/token"), false},
		{"local emulation", withURI("http://127.0.0.1:8080/token"), true},
		{"other host", withURI("https://auth.example.com/token"), true},
		{"lookalike", withURI("https://googleapis.com.evil.example/token"), true},
	}
	for _, tt := range tests {
		if got := GCPEndpointOverridden(tt.secret); got != tt.want {
			t.Errorf("%s: GCPEndpointOverridden = %v, want %v", tt.name, got, tt.want)
		}
	}
}
