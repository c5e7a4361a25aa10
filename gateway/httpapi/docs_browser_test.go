package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// browserNames are the names a Chromium-based browser goes by, most likely
// first; CHROMIUM, when set, is the path of the one to use.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// findBrowser returns the path of a headless-capable Chromium, or fails the
// test with how to install one: the page is tested for real, in a browser, or
// the test fails; it never skips.
func findBrowser(t *testing.T) string {
	t.Helper()
	const hint = "run scripts/install-test-deps.sh, or on Debian/Ubuntu: apt-get install -y --no-install-recommends chromium"
	if p := os.Getenv("CHROMIUM"); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("CHROMIUM=%s: %v; %s", p, err, hint)
		}
		return found
	}
	for _, name := range browserNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("no Chromium in PATH (looked for %s; CHROMIUM=/path/to/chromium names another): %s",
		strings.Join(browserNames, ", "), hint)
	return ""
}

// browserLog is what the page did, as the browser reports it.
type browserLog struct {
	mu       sync.Mutex
	requests []string // every URL the page asked for, in order
	problems []string // exceptions, console errors, failed or blocked loads
}

func (b *browserLog) add(list *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*list = append(*list, s)
}

func (b *browserLog) snapshot() (requests, problems []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.requests), slices.Clone(b.problems)
}

// listen records the page's requests and problems; fn runs on chromedp's
// reading goroutine, so it only appends.
func (b *browserLog) listen(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.add(&b.requests, ev.Request.Method+" "+ev.Request.URL)
	case *network.EventLoadingFailed:
		b.add(&b.problems, fmt.Sprintf("load failed (%s, blocked: %q): %s", ev.Type, ev.BlockedReason, ev.ErrorText))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		b.add(&b.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, text))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.add(&b.problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			b.add(&b.problems, fmt.Sprintf("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	}
}

// TestDocsPageInBrowser drives GET /docs in a real headless Chromium against
// the gateway on a loopback socket: it opens POST /predict, clicks "Try it
// out", picks a photo from the repository, clicks Execute and reads the
// prediction off the page. The page must load nothing from outside the
// gateway, and nothing may fail on it (an exception, a console error, a
// request the CSP blocked).
func TestDocsPageInBrowser(t *testing.T) {
	testenv.RealServers(t, "drives the /docs page in a headless Chromium")
	browser := findBrowser(t)
	photo, err := filepath.Abs("../../loadtest/k6/images/fish_640x480.jpg")
	if err != nil {
		t.Fatal(err)
	}
	photoBytes, err := os.ReadFile(photo)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.BodyLimit = 1 << 20
	s := newTestServer(t, cfg, nil)
	base := s.listen(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	var browserOut syncBuffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(browser),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(&browserOut),
	)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	t.Cleanup(func() {
		if t.Failed() {
			browserOut.mu.Lock()
			defer browserOut.mu.Unlock()
			t.Logf("browser output:\n%s", browserOut.buf.String())
		}
	})

	var seen browserLog
	start := time.Now()
	if err := chromedp.Listen(tab, seen.listen); err != nil {
		t.Fatalf("start %s: %v", browser, err)
	}
	t.Logf("%s started in %v", browser, time.Since(start).Round(time.Millisecond))

	const op = "#operations-default-predict"
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tab, actions...); err != nil {
			requests, problems := seen.snapshot()
			t.Fatalf("%s: %v\nrequests: %q\nproblems: %q", what, err, requests, problems)
		}
	}
	step("open /docs and wait for POST /predict",
		chromedp.Navigate(base+"/docs"),
		chromedp.WaitVisible(chromedp.CSS(op+" .opblock-summary-control")))
	step("expand POST /predict",
		chromedp.Click(chromedp.CSS(op+" .opblock-summary-control")),
		chromedp.WaitVisible(chromedp.CSS(op+" .try-out__btn")))
	step(`click "Try it out"`,
		chromedp.Click(chromedp.CSS(op+" .try-out__btn")),
		chromedp.WaitVisible(chromedp.CSS(op+" .body-param-content-type select")))
	// The multipart form is the way a person sends a photo (as with curl -F);
	// Swagger UI offers the document's first content type, the raw body, first.
	step("choose multipart/form-data",
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
			const s = document.querySelector(%q);
			s.value = "multipart/form-data";
			s.dispatchEvent(new Event("change", {bubbles: true}));
		})()`, op+" .body-param-content-type select")),
		chromedp.WaitVisible(chromedp.CSS(op+` tr[data-property-name="file"] input[type=file]`)))
	step("pick the photo and click Execute",
		chromedp.SetUploadFiles(chromedp.CSS(op+` tr[data-property-name="file"] input[type=file]`), []string{photo}),
		chromedp.Click(chromedp.CSS(op+" .execute")),
		chromedp.WaitVisible(chromedp.CSS(op+" .live-responses-table .response .response-col_description pre")))

	status, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(op+" .live-responses-table .response .response-col_status")))
	if err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(op+" .live-responses-table .response .response-col_description pre")))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the page shows %s after %v", strings.TrimSpace(status), time.Since(start).Round(time.Millisecond))
	if strings.TrimSpace(status) != "200" {
		t.Errorf("the page shows status %q, want 200; body %s", status, body)
	}
	var answer struct {
		Predictions []struct {
			Label string `json:"label"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		t.Fatalf("the page's response body %q: %v", body, err)
	}
	if len(answer.Predictions) == 0 || answer.Predictions[0].Label != "cod" {
		t.Errorf("the page shows predictions %+v, want the fake's top label cod first", answer.Predictions)
	}
	calls := s.fake.recorded()
	if len(calls) != 1 || len(calls[0].images) != 1 || !bytes.Equal(calls[0].images[0], photoBytes) {
		t.Errorf("the classifier got %d calls; want one, with the %d bytes of %s", len(calls), len(photoBytes), filepath.Base(photo))
	}

	requests, problems := seen.snapshot()
	gateway, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range requests {
		_, raw, _ := strings.Cut(r, " ")
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("request to %q: %v", raw, err)
			continue
		}
		// A data: URL is the page's own bytes (Swagger UI's icons), not a request.
		if u.Scheme != "data" && (u.Scheme != gateway.Scheme || u.Host != gateway.Host) {
			t.Errorf("the page asked for %s, outside the gateway (%s)", raw, base)
		}
	}
	for _, want := range []string{"GET " + base + "/docs", "GET " + base + "/openapi.json", "POST " + base + "/predict"} {
		if !slices.ContainsFunc(requests, func(r string) bool { return r == want || strings.HasPrefix(r, want+"?") }) {
			t.Errorf("no request %q among %q: are the network events seen?", want, requests)
		}
	}
	for _, p := range problems {
		t.Errorf("on the page: %s", p)
	}
}
