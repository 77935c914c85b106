package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// Secret keys read by ECR. They mirror the AWS SDK's environment variable
// names so a secret can be filled from an existing AWS environment as is.
const (
	ecrKeyAccessKeyID     = "AWS_ACCESS_KEY_ID"
	ecrKeySecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	ecrKeySessionToken    = "AWS_SESSION_TOKEN"
	ecrKeyRegion          = "AWS_REGION"
	ecrKeyEndpointECR     = "AWS_ENDPOINT_URL_ECR"
	ecrKeyEndpoint        = "AWS_ENDPOINT_URL"
)

// gcpKeyServiceAccount is the secret key holding a service-account key
// file's JSON text.
const gcpKeyServiceAccount = "SERVICE_ACCOUNT_JSON"

// gcpScope is the scope Artifact Registry and gcr.io accept for pulls and
// pushes; narrower scopes are not honoured by the registry.
const gcpScope = "https://www.googleapis.com/auth/cloud-platform"

// gcpUsername is the fixed user name the Google registries expect when the
// password is an OAuth2 access token.
const gcpUsername = "oauth2accesstoken"

// ecrHostRE matches private ECR registry hosts (account ID, optional FIPS,
// region, commercial or China partition).
var ecrHostRE = regexp.MustCompile(`^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// secretValue returns the trimmed value of key; values pasted into secret
// files often carry a trailing newline that would otherwise break signing.
func secretValue(secret map[string]string, key string) string {
	return strings.TrimSpace(secret[key])
}

// ECR returns an authenticator for the Amazon ECR registry at host, using
// the AWS credentials held in secret (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION and optionally AWS_SESSION_TOKEN).
//
// It calls GetAuthorizationToken once and returns the resulting basic
// credentials, which ECR accepts for 12 hours. The AWS configuration is
// built from secret alone, never from the machine's files or environment,
// so a build only ever uses the credentials it was given. AWS_ENDPOINT_URL_ECR
// or else AWS_ENDPOINT_URL, if set, replaces the ECR API endpoint (for ECR
// emulations and tests).
func ECR(ctx context.Context, host string, secret map[string]string) (authn.Authenticator, error) {
	var missing []string
	for _, k := range []string{ecrKeyAccessKeyID, ecrKeySecretAccessKey, ecrKeyRegion} {
		if secretValue(secret, k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("ECR credentials for %s: missing %s: the secret must hold %s, %s and %s (and may hold %s)",
			host, strings.Join(missing, ", "),
			ecrKeyAccessKeyID, ecrKeySecretAccessKey, ecrKeyRegion, ecrKeySessionToken)
	}

	region := secretValue(secret, ecrKeyRegion)
	creds := awsCredentials{
		accessKeyID:     secretValue(secret, ecrKeyAccessKeyID),
		secretAccessKey: secretValue(secret, ecrKeySecretAccessKey),
		sessionToken:    secretValue(secret, ecrKeySessionToken),
	}
	token, err := ecrAuthorizationToken(ctx, ecrAPIEndpoint(ecrEndpoint(secret), host, region), region, creds)
	if err != nil {
		// The error keeps the service's type and message (for example
		// AccessDeniedException) and never includes credentials.
		return nil, fmt.Errorf("ECR GetAuthorizationToken for %s: %w", host, err)
	}
	user, pass, err := decodeECRToken(token)
	if err != nil {
		return nil, fmt.Errorf("ECR GetAuthorizationToken for %s: %w", host, err)
	}
	return &authn.Basic{Username: user, Password: pass}, nil
}

// ecrEndpoint returns the endpoint override in secret, preferring the
// service-specific key as the AWS SDKs do.
func ecrEndpoint(secret map[string]string) string {
	if v := secretValue(secret, ecrKeyEndpointECR); v != "" {
		return v
	}
	return secretValue(secret, ecrKeyEndpoint)
}

// decodeECRToken splits an ECR authorization token, base64 of
// "USER:PASSWORD". Errors never quote the token: it is a credential.
func decodeECRToken(token string) (user, pass string, err error) {
	raw, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return "", "", errors.New("the authorization token is not valid base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return "", "", errors.New("the authorization token is not of the form USER:PASSWORD")
	}
	return user, pass, nil
}

// IsECRHost reports whether host is a private Amazon ECR registry host
// (ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]). Callers use it to
// avoid sending AWS-minted credentials to any other host. Host names are
// compared case-insensitively, as DNS does.
func IsECRHost(host string) bool {
	return ecrHostRE.MatchString(strings.ToLower(host))
}

// ECREndpointOverridden reports whether secret redirects the ECR API
// (AWS_ENDPOINT_URL_ECR or AWS_ENDPOINT_URL is set) to somewhere other than
// AWS itself. Only then may a caller use ECR for a host that IsECRHost
// rejects: the credentials come from an emulation, not from AWS. An
// override that still points at an AWS domain yields real AWS credentials,
// so it does not count; neither does one that is not an absolute URL.
func ECREndpointOverridden(secret map[string]string) bool {
	ep := ecrEndpoint(secret)
	if ep == "" {
		return false
	}
	u, err := url.Parse(ep)
	if err != nil || u.Hostname() == "" {
		// When in doubt, say no: the caller then refuses rather than
		// risk sending AWS credentials to a foreign host.
		return false
	}
	h := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	for _, d := range []string{"amazonaws.com", "amazonaws.com.cn", "api.aws"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return false
		}
	}
	return true
}

// GCP returns an authenticator for the Google Artifact Registry or
// Container Registry at host, using the service-account key file JSON held
// in secret under SERVICE_ACCOUNT_JSON.
//
// It exchanges a signed JWT for an OAuth2 access token at the key's
// token_uri and returns it as basic credentials with the user name
// "oauth2accesstoken", which the registries accept for the token's lifetime
// (usually one hour). Only service-account keys are accepted: other Google
// credential types (external accounts in particular) can make the library
// fetch URLs or run commands named in the JSON.
func GCP(ctx context.Context, host string, secret map[string]string) (authn.Authenticator, error) {
	data := secretValue(secret, gcpKeyServiceAccount)
	if data == "" {
		return nil, fmt.Errorf("GCP access token for %s: missing %s: the secret must hold a service account key file's JSON text under that key",
			host, gcpKeyServiceAccount)
	}
	var f struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(data), &f); err != nil {
		return nil, fmt.Errorf("GCP access token for %s: %s is not a service account key: %w",
			host, gcpKeyServiceAccount, err)
	}
	if f.Type != string(google.ServiceAccount) {
		return nil, fmt.Errorf("GCP access token for %s: %s is not a service account key (its type is %q, want %q)",
			host, gcpKeyServiceAccount, f.Type, google.ServiceAccount)
	}

	// The JWT token source sends its request without a context (it only
	// takes its HTTP client from ctx), so hand it a client whose
	// transport binds every request to ctx: cancelling ctx then aborts
	// the exchange instead of leaving it to hang.
	hc := &http.Client{Transport: ctxTransport{ctx: ctx, base: http.DefaultTransport}}
	octx := context.WithValue(ctx, oauth2.HTTPClient, hc)
	creds, err := google.CredentialsFromJSONWithTypeAndParams(octx, []byte(data), google.ServiceAccount,
		google.CredentialsParams{Scopes: []string{gcpScope}})
	if err != nil {
		return nil, fmt.Errorf("GCP access token for %s: %s: %w", host, gcpKeyServiceAccount, err)
	}
	tok, err := creds.TokenSource.Token()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// The library flattens errors to text; keep the
			// cancellation visible to errors.Is.
			return nil, fmt.Errorf("GCP access token for %s: %w (%v)", host, cerr, err)
		}
		return nil, fmt.Errorf("GCP access token for %s: %w", host, err)
	}
	if tok.AccessToken == "" {
		return nil, fmt.Errorf("GCP access token for %s: the token endpoint returned no access token", host)
	}
	return &authn.Basic{Username: gcpUsername, Password: tok.AccessToken}, nil
}

// ctxTransport makes each request it carries use ctx, for clients that
// send requests without one.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(req.WithContext(t.ctx))
}

// IsGCPHost reports whether host is a Google Artifact Registry
// (REGION-docker.pkg.dev) or Container Registry (gcr.io, *.gcr.io) host.
// Callers use it to avoid sending Google access tokens to any other host.
// Host names are compared case-insensitively, as DNS does.
func IsGCPHost(host string) bool {
	h := strings.ToLower(host)
	return strings.HasSuffix(h, "-docker.pkg.dev") || h == "gcr.io" || strings.HasSuffix(h, ".gcr.io")
}

// GCPEndpointOverridden reports whether the service-account key in secret
// names a token_uri other than Google's own token endpoints. Only then may
// a caller use GCP for a host that IsGCPHost rejects: the token comes from
// an emulation, not from Google. A token_uri on any Google domain
// (googleapis.com, google.com) yields real Google tokens, so it does not
// count; neither does a missing or unparseable key or token_uri.
func GCPEndpointOverridden(secret map[string]string) bool {
	var f struct {
		TokenURI string `json:"token_uri"`
	}
	if err := json.Unmarshal([]byte(secretValue(secret, gcpKeyServiceAccount)), &f); err != nil {
		return false
	}
	uri := strings.TrimSpace(f.TokenURI)
	switch uri {
	case "", "https://oauth2.googleapis.com/token", "https://accounts.google.com/o/oauth2/token":
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || u.Hostname() == "" {
		// When in doubt, say no: the caller then refuses rather than
		// risk sending a Google token to a foreign host.
		return false
	}
	h := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	for _, d := range []string{"googleapis.com", "google.com"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return false
		}
	}
	return true
}
