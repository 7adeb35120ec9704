package console_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// browserWait bounds each wait on the page; a loaded machine starts Chromium slowly.
const browserWait = 60 * time.Second

// chromium returns Debian's chromium (make deps installs it), failing the test without it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: make deps installs Debian's chromium as root (apt-get install chromium)")
	return ""
}

// wsClient is a raw Pusher protocol 7 client: the "test client" whose connection the console
// must show and which must receive the console's test event.
type wsClient struct {
	ws  *websocket.Conn
	ctx context.Context
}

func dialApp(t *testing.T, addr string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*browserWait)
	t.Cleanup(cancel)
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/app/"+testkit.AppKey+"?protocol=7&client=js&version=8.4.0", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	c := &wsClient{ws: ws, ctx: ctx}
	c.expectEvent(t, "pusher:connection_established")
	return c
}

func (c *wsClient) expectEvent(t *testing.T, event string) map[string]any {
	t.Helper()
	for {
		_, b, err := c.ws.Read(c.ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", event, err)
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		if f["event"] == event {
			return f
		}
	}
}

// artefactDir is where the browser test leaves its screenshot: bin/test-artifacts in the
// repository (gitignored), or $PUSHWIRE_TEST_ARTIFACTS.
func artefactDir(t *testing.T) string {
	dir := os.Getenv("PUSHWIRE_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(testkit.RepoRoot(), "bin", "test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestConsoleInBrowser drives the console in headless Chromium against the real binary
// (console on the metrics listener, its default): a wrong credential is refused, the right
// one signs in, a test client's connection and subscription appear live, the form publishes
// an event the test client receives and the event log shows, the log filters by channel,
// and a screenshot is saved (bin/test-artifacts/console-browser.png).
func TestConsoleInBrowser(t *testing.T) {
	exe := chromium(t)
	srv := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--console"}})
	url := "http://" + srv.MetricsAddr + "/console/"

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	// The first Run starts the browser; it lives as long as browser, so no timeout here.
	if err := chromedp.Do(browser, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s in chromium: %v", url, err)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, browserWait)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// until waits for a JavaScript condition on the page to hold.
	until := func(what, js string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, browserWait)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			t.Fatalf("waiting for %s (%s): %v", what, js, err)
		}
	}

	// clear empties an input (as a user selecting its text and deleting it would).
	clear := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(() => { const e = document.querySelector('`+sel+`'); e.value = ''; e.dispatchEvent(new Event('input')); return true })()`)(ctx, tg)
			return err
		})
	}

	step("the sign-in form", chromedp.WaitVisible(chromedp.CSS("#login-form")))
	step("a wrong credential",
		chromedp.SendKeys(chromedp.CSS("#app-id"), testkit.AppID),
		chromedp.SendKeys(chromedp.CSS("#credential"), "not-the-secret"),
		chromedp.Click(chromedp.CSS("#login-form button")))
	until("the refusal", `document.querySelector('#login-error').textContent.includes('wrong credential')`)
	step("the right credential",
		clear("#credential"),
		chromedp.SendKeys(chromedp.CSS("#credential"), testkit.AppSecret),
		chromedp.Click(chromedp.CSS("#login-form button")),
		chromedp.WaitVisible(chromedp.CSS("#dashboard")))
	until("the live stream", `document.querySelector('#stream-status').textContent === 'live'`)

	// A test client connects and subscribes: the console shows it.
	c := dialApp(t, srv.Addr)
	const channel = "console-browser-check"
	if err := c.ws.Write(c.ctx, websocket.MessageText, []byte(`{"event":"pusher:subscribe","data":{"channel":"`+channel+`"}}`)); err != nil {
		t.Fatal(err)
	}
	c.expectEvent(t, "pusher_internal:subscription_succeeded")
	until("the connection counted", `document.querySelector('#stat-connections').textContent === '1'`)
	until("the channel listed", `!!document.querySelector('#channels tr[data-channel="`+channel+`"]')`)
	until("the subscription logged", `[...document.querySelectorAll('#log tr.k-subscribed')].some(r => r.textContent.includes('`+channel+`'))`)
	until("the connection logged", `document.querySelectorAll('#log tr.k-connected').length > 0`)

	// The form publishes; the test client receives exactly what an API publish sends.
	step("the publish form",
		chromedp.SendKeys(chromedp.CSS("#pub-channel"), channel),
		chromedp.SendKeys(chromedp.CSS("#pub-event"), "console.test"),
		chromedp.SendKeys(chromedp.CSS("#pub-data"), `{"from":"browser"}`),
		chromedp.Click(chromedp.CSS("#publish-form button")))
	until("the publish confirmed", `document.querySelector('#pub-result').textContent.startsWith('Published to `+channel+`')`)
	got := c.expectEvent(t, "console.test")
	if got["channel"] != channel || got["data"] != `{"from":"browser"}` {
		t.Errorf("test client got %v, want data {\"from\":\"browser\"} on %s", got, channel)
	}
	until("the publish logged", `[...document.querySelectorAll('#log tr.k-api_publish')].some(r => r.textContent.includes('console.test'))`)

	// A client's error frame is logged too, and the filter hides what does not match.
	if err := c.ws.Write(c.ctx, websocket.MessageText, []byte(`{"event":"client-x","channel":"`+channel+`","data":{}}`)); err != nil {
		t.Fatal(err)
	}
	until("the refused client event logged", `[...document.querySelectorAll('#log tr.k-error')].some(r => r.textContent.includes('Client events are not allowed'))`)
	step("a channel filter", chromedp.SendKeys(chromedp.CSS("#filter-channel"), "no-such-channel"))
	until("the log filtered", `document.querySelectorAll('#log tr').length === 0`)
	step("clearing the filter", clear("#filter-channel"),
		chromedp.SendKeys(chromedp.CSS("#filter-channel"), channel[:7]))
	until("the log shown again", `document.querySelectorAll('#log tr.k-api_publish').length > 0`)

	ctx, cancel := context.WithTimeout(browser, browserWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(artefactDir(t), "console-browser.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	// The test client leaves: the count follows.
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
	until("the disconnect counted", `document.querySelector('#stat-connections').textContent === '0'`)
	if strings.Contains(srv.Output(), testkit.AppSecret) {
		t.Error("the server logged the app secret")
	}
}
