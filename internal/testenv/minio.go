//go:build unix

package testenv

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Timeouts of the MinIO harness: the first build compiles MinIO from the Go
// module proxy (about 3 minutes on 2 cores, seconds once built); a start takes
// about a second.
const (
	MinIOInstallTimeout = 20 * time.Minute
	MinIOStartTimeout   = 60 * time.Second
)

// MinIOMetricsPath is the path of MinIO's cluster metrics (Prometheus metrics
// v2, served without a token: StartMinIO sets MINIO_PROMETHEUS_AUTH_TYPE=public).
// MinIOBucketMetricsPath is that of its per-bucket metrics
// (minio_bucket_requests_total{bucket,api} and others).
const (
	MinIOMetricsPath       = "/minio/v2/metrics/cluster"
	MinIOBucketMetricsPath = "/minio/v2/metrics/bucket"
)

// MinIO is a real MinIO server (built by scripts/minio.sh from the Go module
// proxy; an external program, never imported: it is AGPL) with one drive in a
// temporary folder of the test's, listening on a free loopback port, for the
// tests that need S3: MLflow's artifact store and the Triton model repository.
// Its helpers (MakeBucket, PutObject, GetObject, UploadDir) speak the S3 API
// with requests signed here (AWS Signature Version 4), so that the project
// needs no S3 client library.
type MinIO struct {
	// Endpoint is the S3 API's base URL, "http://127.0.0.1:PORT" (path-style
	// addressing: Endpoint/BUCKET/KEY).
	Endpoint string
	// AccessKey and SecretKey are the root user's credentials
	// (MINIO_ROOT_USER, MINIO_ROOT_PASSWORD).
	AccessKey, SecretKey string
	// Region is the region requests are signed for; MinIO accepts any, this
	// is its default.
	Region string
	// DataDir is the drive; Log the file holding MinIO's output.
	DataDir, Log string

	client *http.Client
}

// MetricsURL is the full URL of the cluster metrics.
func (m *MinIO) MetricsURL() string { return m.Endpoint + MinIOMetricsPath }

// BucketMetricsURL is the full URL of the per-bucket metrics.
func (m *MinIO) BucketMetricsURL() string { return m.Endpoint + MinIOBucketMetricsPath }

// Addr is the S3 API's "127.0.0.1:PORT", the target a Prometheus scrape
// configuration names.
func (m *MinIO) Addr() string { return strings.TrimPrefix(m.Endpoint, "http://") }

// S3Env is the environment with which an S3 client process (boto3, the AWS
// SDKs, Triton) reaches this server as its root user: the credentials, the
// region, and no lookup of the cloud's instance metadata service (which an
// SDK otherwise tries, off this machine, for a missing region or
// credentials). boto3 also needs MLFLOW_S3_ENDPOINT_URL or AWS_ENDPOINT_URL
// set to Endpoint; Triton takes the endpoint in its s3:// URL instead
// (TritonRepositoryURL).
func (m *MinIO) S3Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + m.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + m.SecretKey,
		"AWS_DEFAULT_REGION=" + m.Region,
		"AWS_REGION=" + m.Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// TritonRepositoryURL is the --model-repository value with which Triton reads
// a model repository from bucket (under prefix, which may be empty) of this
// server: "s3://http://127.0.0.1:PORT/BUCKET/PREFIX", Triton's S3 path with
// an explicit endpoint (docs/mlops.md#triton-on-s3-what-was-checked).
func (m *MinIO) TritonRepositoryURL(bucket, prefix string) string {
	u := "s3://" + m.Endpoint + "/" + bucket
	if p := strings.Trim(prefix, "/"); p != "" {
		u += "/" + p
	}
	return u
}

// InstallMinIO builds MinIO (once, pinned; idempotent) with scripts/minio.sh
// install and returns the binary's path. A failure fails the test: CI runs it.
func InstallMinIO(t testing.TB) string {
	t.Helper()
	return runScript(t, MinIOInstallTimeout, "minio.sh", "install")
}

// StartMinIO builds (once) and starts MinIO with a fresh drive, waits until
// it is ready (/minio/health/ready), and stops it at cleanup, printing its
// log's tail when the test failed. The web console is off; metrics need no
// token. A picked port that something else took meanwhile makes it try new
// ones (three attempts); any other failure fails the test.
func StartMinIO(t *testing.T) *MinIO {
	t.Helper()
	RealServers(t, "starts the real MinIO")
	bin := InstallMinIO(t)
	dir := t.TempDir()
	m := &MinIO{
		AccessKey: "testenv-admin", SecretKey: "testenv-secret-key",
		Region:  "us-east-1",
		DataDir: filepath.Join(dir, "data"),
		Log:     filepath.Join(dir, "log"),
		client:  &http.Client{Timeout: 60 * time.Second},
	}
	var p *process
	err := withPortRetry(func(int) error {
		addr := FreeLoopbackAddr(t)
		m.Endpoint = "http://" + addr
		env := append(os.Environ(),
			"MINIO_ROOT_USER="+m.AccessKey,
			"MINIO_ROOT_PASSWORD="+m.SecretKey,
			"MINIO_PROMETHEUS_AUTH_TYPE=public",
			"MINIO_BROWSER=off",
			// No update check, no telemetry: the tests reach loopback only.
			"MINIO_UPDATE=off",
			"MINIO_CALLHOME_ENABLE=off",
		)
		start := time.Now()
		var err error
		p, err = startProcess("minio", bin, []string{"server", "--address", addr, "--quiet", m.DataDir}, env, dir, m.Log)
		if err != nil {
			return err
		}
		// /minio/health/ready answers 200 a moment before the server takes
		// S3 calls (a bucket made then gets 503 XMinioServerNotInitialized):
		// ready is when a signed ListBuckets succeeds too.
		ready := func() bool {
			if m.status("/minio/health/ready") != http.StatusOK {
				return false
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := m.Do(ctx, http.MethodGet, "", "", nil, nil)
			return err == nil
		}
		if err := p.waitUntil(MinIOStartTimeout, ready); err != nil {
			return err
		}
		t.Logf("minio ready in %v (%s)", time.Since(start).Round(time.Millisecond), m.Endpoint)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cleanupServer(t, "minio", func() string { return m.Log }, func() error { return p.stop(10 * time.Second) })
	return m
}

func (m *MinIO) status(path string) int {
	resp, err := m.client.Get(m.Endpoint + path)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// MakeBucket creates the bucket; a failure fails the test.
func (m *MinIO) MakeBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := m.Do(context.Background(), http.MethodPut, name, "", nil, nil); err != nil {
		t.Fatalf("minio: make bucket %s: %v", name, err)
	}
}

// PutObject writes body to bucket/key; a failure fails the test.
func (m *MinIO) PutObject(t testing.TB, bucket, key string, body []byte) {
	t.Helper()
	if _, err := m.Do(context.Background(), http.MethodPut, bucket, key, nil, body); err != nil {
		t.Fatalf("minio: put %s/%s: %v", bucket, key, err)
	}
}

// GetObject reads bucket/key; a failure (a missing object too) fails the test.
func (m *MinIO) GetObject(t testing.TB, bucket, key string) []byte {
	t.Helper()
	b, err := m.Do(context.Background(), http.MethodGet, bucket, key, nil, nil)
	if err != nil {
		t.Fatalf("minio: get %s/%s: %v", bucket, key, err)
	}
	return b
}

// RemoveObject deletes bucket/key (a missing one is no error); a failure
// fails the test.
func (m *MinIO) RemoveObject(t testing.TB, bucket, key string) {
	t.Helper()
	if _, err := m.Do(context.Background(), http.MethodDelete, bucket, key, nil, nil); err != nil {
		t.Fatalf("minio: delete %s/%s: %v", bucket, key, err)
	}
}

// ListObjects lists the keys under prefix in bucket, sorted (ListObjectsV2,
// every page); a failure fails the test.
func (m *MinIO) ListObjects(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	token := ""
	for {
		q := map[string]string{"list-type": "2", "prefix": prefix}
		if token != "" {
			q["continuation-token"] = token
		}
		b, err := m.Do(context.Background(), http.MethodGet, bucket, "", q, nil)
		if err != nil {
			t.Fatalf("minio: list %s/%s: %v", bucket, prefix, err)
		}
		var page struct {
			Contents []struct {
				Key string `xml:"Key"`
			} `xml:"Contents"`
			IsTruncated           bool   `xml:"IsTruncated"`
			NextContinuationToken string `xml:"NextContinuationToken"`
		}
		if err := xml.Unmarshal(b, &page); err != nil {
			t.Fatalf("minio: list %s/%s: %v", bucket, prefix, err)
		}
		for _, c := range page.Contents {
			keys = append(keys, c.Key)
		}
		if !page.IsTruncated {
			break
		}
		token = page.NextContinuationToken
	}
	sort.Strings(keys)
	return keys
}

// UploadDir copies every regular file under the local folder dir into bucket
// under prefix, keeping the relative paths ("dir/a/b" becomes "PREFIX/a/b"),
// and returns the keys written; a failure fails the test.
func (m *MinIO) UploadDir(t testing.TB, dir, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		key := path.Join(prefix, filepath.ToSlash(rel))
		if _, err := m.Do(context.Background(), http.MethodPut, bucket, key, nil, b); err != nil {
			return fmt.Errorf("put %s/%s: %w", bucket, key, err)
		}
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		t.Fatalf("minio: upload %s: %v", dir, err)
	}
	return keys
}

// Do sends one signed S3 request (path-style: bucket, then key, either may be
// empty; query parameters; a body for PUT) and returns the answer's body; a
// status other than 2xx is an error carrying S3's error document.
func (m *MinIO) Do(ctx context.Context, method, bucket, key string, query map[string]string, body []byte) ([]byte, error) {
	p := "/" + bucket
	if key != "" {
		p += "/" + key
	}
	req, err := signedRequest(ctx, method, m.Endpoint, p, query, body, m.AccessKey, m.SecretKey, m.Region, time.Now())
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, p, resp.Status, tail(out, 500))
	}
	return out, nil
}

// signedRequest builds an S3 request signed with AWS Signature Version 4 in
// the Authorization header, the payload's SHA-256 in x-amz-content-sha256.
// The canonical request is: the method; the path with each segment
// URI-encoded (every byte but A-Z a-z 0-9 - . _ ~); the query sorted by name,
// names and values encoded the same way; the signed headers (host,
// x-amz-content-sha256, x-amz-date) as lower-case name:value lines; their
// names; and the payload's hash. The signature is an HMAC-SHA256 of the
// string to sign under a key derived from the secret, the date, the region and
// the service.
func signedRequest(ctx context.Context, method, endpoint, rawPath string, query map[string]string, body []byte, accessKey, secretKey, region string, now time.Time) (*http.Request, error) {
	var segs []string
	for _, s := range strings.Split(rawPath, "/") {
		segs = append(segs, uriEncode(s))
	}
	canonPath := strings.Join(segs, "/")
	names := make([]string, 0, len(query))
	for k := range query {
		names = append(names, k)
	}
	sort.Strings(names)
	var q []string
	for _, k := range names {
		q = append(q, uriEncode(k)+"="+uriEncode(query[k]))
	}
	canonQuery := strings.Join(q, "&")
	u := endpoint + canonPath
	if canonQuery != "" {
		u += "?" + canonQuery
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	payload := sha256.Sum256(body)
	payloadHex := hex.EncodeToString(payload[:])
	amzDate := now.UTC().Format("20060102T150405Z")
	day := amzDate[:8]
	req.Header.Set("x-amz-date", amzDate)
	req.Header.Set("x-amz-content-sha256", payloadHex)
	const signed = "host;x-amz-content-sha256;x-amz-date"
	canon := strings.Join([]string{
		method, canonPath, canonQuery,
		"host:" + req.URL.Host + "\nx-amz-content-sha256:" + payloadHex + "\nx-amz-date:" + amzDate + "\n",
		signed, payloadHex,
	}, "\n")
	scope := day + "/" + region + "/s3/aws4_request"
	canonHash := sha256.Sum256([]byte(canon))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(canonHash[:])
	key := []byte("AWS4" + secretKey)
	for _, part := range []string{day, region, "s3", "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+accessKey+"/"+scope+", SignedHeaders="+signed+", Signature="+sig)
	return req, nil
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// uriEncode percent-encodes every byte of s but the unreserved characters
// (A-Z a-z 0-9 - . _ ~), in upper-case hex, as Signature Version 4 requires.
func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
