package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestSignV4MatchesTheSDK: strata's SigV4 signature of the GetAuthorizationToken call is the
// AWS SDK's, byte for byte, with and without a session token. The SDK is a test dependency
// only: it is not linked into strata.
func TestSignV4MatchesTheSDK(t *testing.T) {
	at := time.Date(2026, 11, 29, 9, 30, 15, 0, time.UTC)
	for _, token := range []string{"", "session-token/with+chars="} {
		creds := awsCredentials{accessKeyID: testAccessKeyID, secretAccessKey: testSecretAccessKey, sessionToken: token}
		body := []byte("{}")
		request := func() *http.Request {
			req, err := http.NewRequest(http.MethodPost, "https://api.ecr.eu-west-3.amazonaws.com/", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", ecrContentType)
			req.Header.Set("X-Amz-Target", ecrTarget)
			return req
		}
		ours := request()
		signV4(ours, body, creds, testRegion, ecrService, at)

		theirs := request()
		sum := sha256.Sum256(body)
		err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: creds.accessKeyID, SecretAccessKey: creds.secretAccessKey, SessionToken: token},
			theirs, hex.EncodeToString(sum[:]), ecrService, testRegion, at)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
			if got, want := ours.Header.Get(h), theirs.Header.Get(h); got != want {
				t.Errorf("session token %q: %s\n got %s\nwant %s", token, h, got, want)
			}
		}
	}
}

func TestECRAPIEndpoint(t *testing.T) {
	for _, c := range []struct{ override, host, region, want string }{
		{"", "123456789012.dkr.ecr.eu-west-3.amazonaws.com", "eu-west-3", "https://api.ecr.eu-west-3.amazonaws.com"},
		{"", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1", "https://api.ecr.cn-north-1.amazonaws.com.cn"},
		{"", "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "us-east-1", "https://ecr-fips.us-east-1.amazonaws.com"},
		{"http://127.0.0.1:9000", "123456789012.dkr.ecr.eu-west-3.amazonaws.com", "eu-west-3", "http://127.0.0.1:9000"},
	} {
		if got := ecrAPIEndpoint(c.override, c.host, c.region); got != c.want {
			t.Errorf("%s in %s: %s, want %s", c.host, c.region, got, c.want)
		}
	}
}

// TestECRRetriesServerErrors: a 5xx or throttling answer is tried again, up to three calls;
// a client error is not (TestECRErrors).
func TestECRRetriesServerErrors(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Content-Type", ecrContentType)
		switch calls {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"__type":"ServerException","message":"try later"}`)
		case 2:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
		default:
			io.WriteString(w, `{"authorizationData":[{"authorizationToken":"`+base64.StdEncoding.EncodeToString([]byte("AWS:pw"))+`"}]}`)
		}
	}))
	defer srv.Close()
	a, err := ECR(context.Background(), testECRHost, ecrSecret(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	assertBasic(t, a, "AWS", "pw")
	if calls != 3 {
		t.Errorf("%d calls, want 3", calls)
	}
}
