//go:build unix

package testenv

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMinIOStoresAndReports checks the MinIO harness on the real server:
// objects written with the signed requests come back byte for byte (a key
// that needs percent-encoding too), a folder uploads under a prefix and lists
// back, a wrong secret is refused, and the metrics answer without a token and
// show the bucket's requests.
func TestMinIOStoresAndReports(t *testing.T) {
	m := StartMinIO(t)
	m.MakeBucket(t, "models")

	body := bytes.Repeat([]byte("fish "), 1000)
	key := "odd names/a+b=c&d~e.txt"
	m.PutObject(t, "models", key, body)
	if got := m.GetObject(t, "models", key); !bytes.Equal(got, body) {
		t.Fatalf("object %q came back as %d bytes, want the %d written", key, len(got), len(body))
	}

	dir := t.TempDir()
	for name, text := range map[string]string{"config.pbtxt": "name: \"m\"", "1/model.py": "pass", "labels.txt": "a\nb"} {
		p := filepath.Join(dir, "m", filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m.UploadDir(t, dir, "models", "repo")
	want := []string{"repo/m/1/model.py", "repo/m/config.pbtxt", "repo/m/labels.txt"}
	if got := m.ListObjects(t, "models", "repo/"); !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
	if got := string(m.GetObject(t, "models", "repo/m/1/model.py")); got != "pass" {
		t.Errorf("repo/m/1/model.py = %q", got)
	}
	m.RemoveObject(t, "models", "repo/m/labels.txt")
	if got := m.ListObjects(t, "models", "repo/"); len(got) != 2 {
		t.Errorf("after a delete, listed %q", got)
	}

	wrong := *m
	wrong.SecretKey = "not-the-secret"
	if _, err := wrong.Do(context.Background(), http.MethodGet, "models", key, nil, nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a request signed with a wrong secret: %v, want 403 Forbidden", err)
	}

	for _, u := range []string{m.MetricsURL(), m.BucketMetricsURL()} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s without a token: %s", u, resp.Status)
		}
		if u == m.BucketMetricsURL() && !strings.Contains(string(b), `minio_bucket_requests_total{api="putobject",bucket="models"`) {
			t.Errorf("bucket metrics show no putobject requests for the bucket models:\n%s", tail(b, 2000))
		}
		if u == m.MetricsURL() && !strings.Contains(string(b), "minio_") {
			t.Errorf("cluster metrics hold no minio_ series:\n%s", tail(b, 2000))
		}
	}
}
