package registry

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// The one call of ECR's API that strata makes, GetAuthorizationToken, is signed here with
// AWS Signature Version 4 (docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html)
// rather than through the AWS SDK, whose ECR client added about 60 packages, and over a
// millisecond of package initialisation, to every start of strata-core. registry's tests
// check the signature against the SDK's own signer.

const (
	ecrTarget      = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
	ecrContentType = "application/x-amz-json-1.1"
	ecrService     = "ecr"
	// ecrAttempts is how many times a call that failed for a reason worth retrying (the
	// network, a 5xx, throttling) is made, as the SDK's standard retryer makes it.
	ecrAttempts = 3
)

// awsCredentials are static AWS credentials, with the session token of temporary ones.
type awsCredentials struct {
	accessKeyID, secretAccessKey, sessionToken string
}

// ecrAPIEndpoint is the ECR API's URL for a registry host in region: the override when set,
// else the FIPS endpoint for a FIPS registry host, else the region's partition's.
func ecrAPIEndpoint(override, host, region string) string {
	if override != "" {
		return override
	}
	domain := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		domain = "amazonaws.com.cn"
	}
	if strings.Contains(host, ".dkr.ecr-fips.") {
		return "https://ecr-fips." + region + "." + domain
	}
	return "https://api.ecr." + region + "." + domain
}

// ecrAuthorizationToken calls GetAuthorizationToken and returns the token of its first
// authorization data. Errors name the service's error type and message, never a credential.
func ecrAuthorizationToken(ctx context.Context, endpoint, region string, creds awsCredentials) (string, error) {
	var lastErr error
	for attempt := 0; attempt < ecrAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 200 * time.Millisecond):
			}
		}
		token, retry, err := ecrCall(ctx, endpoint, region, creds)
		if err == nil || !retry {
			return token, err
		}
		lastErr = err
	}
	return "", lastErr
}

// ecrCall makes one signed call; retry says whether a failure is worth another attempt.
func ecrCall(ctx context.Context, endpoint, region string, creds awsCredentials) (token string, retry bool, err error) {
	body := []byte("{}")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(endpoint, "/")+"/", bytes.NewReader(body))
	if err != nil {
		return "", false, err
	}
	req.Header.Set("Content-Type", ecrContentType)
	req.Header.Set("X-Amz-Target", ecrTarget)
	signV4(req, body, creds, region, ecrService, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", false, fmt.Errorf("%w", ctx.Err())
		}
		return "", true, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", true, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type     string `json:"__type"`
			Message  string `json:"message"`
			Message2 string `json:"Message"`
		}
		_ = json.Unmarshal(raw, &e)
		// A type may come as "namespace#Name".
		typ := e.Type[strings.LastIndex(e.Type, "#")+1:]
		msg := e.Message
		if msg == "" {
			msg = e.Message2
		}
		if typ == "" {
			typ = resp.Status
		}
		retry := resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || strings.Contains(typ, "Throttl")
		return "", retry, fmt.Errorf("https response error StatusCode: %d, api error %s: %s", resp.StatusCode, typ, msg)
	}
	var out struct {
		AuthorizationData []struct {
			AuthorizationToken *string `json:"authorizationToken"`
		} `json:"authorizationData"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", false, fmt.Errorf("the response is not JSON: %w", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return "", false, fmt.Errorf("the response holds no authorization data")
	}
	return *out.AuthorizationData[0].AuthorizationToken, false, nil
}

// signV4 signs req (whose body is body) with AWS Signature Version 4 for service in region
// at time now: it sets X-Amz-Date, X-Amz-Security-Token for temporary credentials, and the
// Authorization header, signing the Host and every header the request has.
func signV4(req *http.Request, body []byte, creds awsCredentials, region, service string, now time.Time) {
	now = now.UTC()
	amzDate := now.Format("20060102T150405Z")
	day := now.Format("20060102")
	req.Header.Set("X-Amz-Date", amzDate)
	if creds.sessionToken != "" {
		req.Header.Set("X-Amz-Security-Token", creds.sessionToken)
	}
	payload := sha256.Sum256(body)
	headers := map[string]string{"host": req.URL.Host}
	for k, v := range req.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	if req.ContentLength > 0 {
		headers["content-length"] = fmt.Sprint(req.ContentLength)
	}
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	var canonical strings.Builder
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	fmt.Fprintf(&canonical, "%s\n%s\n%s\n", req.Method, path, canonicalQuery(req.URL.Query()))
	for _, k := range names {
		fmt.Fprintf(&canonical, "%s:%s\n", k, strings.Join(strings.Fields(headers[k]), " "))
	}
	signed := strings.Join(names, ";")
	fmt.Fprintf(&canonical, "\n%s\n%s", signed, hex.EncodeToString(payload[:]))
	scope := day + "/" + region + "/" + service + "/aws4_request"
	sum := sha256.Sum256([]byte(canonical.String()))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := []byte("AWS4" + creds.secretAccessKey)
	for _, part := range []string{day, region, service, "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	signature := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+creds.accessKeyID+"/"+scope+", SignedHeaders="+signed+", Signature="+signature)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalQuery is SigV4's query string: parameters sorted, each escaped as RFC 3986 says.
func canonicalQuery(q url.Values) string {
	var parts []string
	for k, vs := range q {
		for _, v := range vs {
			parts = append(parts, awsEscape(k)+"="+awsEscape(v))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

func awsEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
