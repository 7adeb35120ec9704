package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/console"
	"github.com/pushwire/pushwire/internal/testkit"
)

// Compile-time check: the console is a hub tap.
var _ channels.Tap = (*console.Console)(nil)

type env struct {
	con *console.Console
	hub *channels.Hub
	ts  *httptest.Server
	now *testkit.Clock
}

func apps() []config.App {
	a := config.DefaultApp()
	b := config.App{ID: "tok-app", Key: "tok-key", Secret: "tok-secret", ConsoleToken: "console-token"}
	a.ApplyDefaults()
	b.ApplyDefaults()
	return []config.App{a, b}
}

func newEnv(t *testing.T, opts console.Options) *env {
	t.Helper()
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	opts.Now = clock.Now
	con := console.New(apps(), opts)
	hub := channels.New(apps(), channels.Options{Tap: con})
	con.SetHub(hub)
	mux := http.NewServeMux()
	mux.Handle(con.Path()+"/", con.Handler())
	mux.Handle(con.Path(), con.Handler())
	ts := httptest.NewServer(mux)
	t.Cleanup(func() { con.Close(); ts.Close() })
	return &env{con: con, hub: hub, ts: ts, now: clock}
}

// client is a browser stand-in: it keeps cookies and sends the headers the page sends.
func (e *env) client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

func (e *env) post(t *testing.T, c *http.Client, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/console/api/"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) get(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Get(e.ts.URL + "/console/" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSignIn(t *testing.T) {
	e := newEnv(t, console.Options{})
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"Secret", `{"app_id":"app-id","credential":"app-secret"}`, 200},
		{"WrongSecret", `{"app_id":"app-id","credential":"app-secrex"}`, 401},
		{"UnknownApp", `{"app_id":"nope","credential":"app-secret"}`, 401},
		{"Empty", `{"app_id":"app-id","credential":""}`, 401},
		{"Token", `{"app_id":"tok-app","credential":"console-token"}`, 200},
		{"SecretWhenTokenSet", `{"app_id":"tok-app","credential":"tok-secret"}`, 401},
		{"NotJSON", `app_id=app-id`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(t)
			code, body := e.post(t, c, "login", tc.body, nil)
			if code != tc.want {
				t.Fatalf("login %s: %d %s, want %d", tc.body, code, body, tc.want)
			}
			scode, _ := e.get(t, c, "api/session")
			if (scode == 200) != (tc.want == 200) {
				t.Errorf("session after login %d: %d", code, scode)
			}
		})
	}
}

func TestSessionRules(t *testing.T) {
	e := newEnv(t, console.Options{SessionTTL: time.Hour})
	c := e.client(t)
	if code, _ := e.get(t, c, "api/session"); code != 401 {
		t.Fatalf("session without sign-in: %d", code)
	}
	if code, _ := e.get(t, c, "api/stream"); code != 401 {
		t.Fatalf("stream without sign-in: %d", code)
	}
	if code, body := e.post(t, c, "login", `{"app_id":"app-id","credential":"app-secret"}`, map[string]string{"Origin": "https://evil.example"}); code != 403 {
		t.Fatalf("cross-origin login: %d %s", code, body)
	}
	if code, _ := e.post(t, c, "login", `{"app_id":"app-id","credential":"app-secret"}`, map[string]string{"Origin": e.ts.URL}); code != 200 {
		t.Fatalf("same-origin login: %d", code)
	}
	// A form post from another site can send neither JSON nor a same-origin Origin.
	if code, _ := e.post(t, c, "publish", `{"channel":"a","event":"b","data":"c"}`, map[string]string{"Content-Type": "text/plain"}); code != 415 {
		t.Errorf("text/plain publish: %d, want 415", code)
	}
	if code, _ := e.post(t, c, "publish", `{"channel":"a","event":"b","data":"c"}`, map[string]string{"Origin": "https://evil.example"}); code != 403 {
		t.Errorf("cross-origin publish: %d, want 403", code)
	}
	e.now.Add(2 * time.Hour)
	if code, _ := e.get(t, c, "api/session"); code != 401 {
		t.Errorf("session after its TTL: %d, want 401", code)
	}
}

func TestSignInLimit(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.client(t)
	limited := false
	for i := 0; i < 40 && !limited; i++ {
		code, _ := e.post(t, c, "login", `{"app_id":"app-id","credential":"guess"}`, nil)
		limited = code == http.StatusTooManyRequests
	}
	if !limited {
		t.Fatal("40 failed sign-ins in a minute were never limited")
	}
	if code, _ := e.post(t, c, "login", `{"app_id":"app-id","credential":"app-secret"}`, nil); code != http.StatusTooManyRequests {
		t.Errorf("right credential while limited: %d, want 429", code)
	}
	e.now.Add(time.Minute)
	if code, _ := e.post(t, c, "login", `{"app_id":"app-id","credential":"app-secret"}`, nil); code != 200 {
		t.Errorf("right credential a minute later: %d", code)
	}
}

func TestAuthenticateBasic(t *testing.T) {
	e := newEnv(t, console.Options{})
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{"app-id", "app-secret", true}, {"tok-app", "console-token", true}, {"tok-app", "tok-secret", false},
		{"app-id", "x", false}, {"", "", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/stats", nil)
		if tc.user != "" {
			r.SetBasicAuth(tc.user, tc.pass)
		}
		id, ok := e.con.Authenticate(r)
		if ok != tc.ok || (ok && id != tc.user) {
			t.Errorf("Basic %s/%s: %q %v, want %v", tc.user, tc.pass, id, ok, tc.ok)
		}
	}
}

// sseReader reads one stream's events.
type sseReader struct {
	sc *bufio.Scanner
}

func (r *sseReader) next(t *testing.T) (string, string) {
	t.Helper()
	var event, data string
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		case line == "" && event != "":
			return event, data
		}
	}
	t.Fatalf("stream ended: %v", r.sc.Err())
	return "", ""
}

// nextOf skips to the next event of one kind.
func (r *sseReader) nextOf(t *testing.T, kind string) string {
	t.Helper()
	for {
		if ev, data := r.next(t); ev == kind {
			return data
		}
	}
}

func (e *env) stream(t *testing.T, c *http.Client, query string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.ts.URL+"/console/api/stream"+query, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sseReader{sc: bufio.NewScanner(resp.Body)}
}

func signedIn(t *testing.T, e *env, app, cred string) *http.Client {
	c := e.client(t)
	if code, body := e.post(t, c, "login", `{"app_id":"`+app+`","credential":"`+cred+`"}`, nil); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	return c
}

func TestStreamShowsActivity(t *testing.T) {
	e := newEnv(t, console.Options{SnapshotInterval: time.Hour})
	if e.con.Watching("app-id") {
		t.Fatal("watching before any viewer")
	}
	c := signedIn(t, e, "app-id", "app-secret")
	s := e.stream(t, c, "?channel=orders")
	var snap struct {
		AppID  string `json:"app_id"`
		Counts struct {
			Connections int `json:"connections"`
		} `json:"counts"`
	}
	if err := json.Unmarshal([]byte(s.nextOf(t, "snapshot")), &snap); err != nil || snap.AppID != "app-id" {
		t.Fatalf("first snapshot %+v %v", snap, err)
	}
	testkit.WaitFor(t, 5*time.Second, "the viewer registered", func() bool { return e.con.Watching("app-id") })
	if e.con.Watching("tok-app") {
		t.Error("a viewer of app-id made tok-app watched")
	}

	sub := channelstest.New("1.1")
	conn, perr := e.hub.Connect("app-key", sub)
	if perr != nil {
		t.Fatal(perr)
	}
	if err := conn.Subscribe(channels.SubscribeRequest{Channel: "other"}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Subscribe(channels.SubscribeRequest{Channel: "orders"}); err != nil {
		t.Fatal(err)
	}
	var a struct {
		Kind, Channel, Event, Data string
		SocketID                   string `json:"socket_id"`
	}
	if err := json.Unmarshal([]byte(s.nextOf(t, "activity")), &a); err != nil || a.Kind != "subscribed" || a.Channel != "orders" || a.SocketID != "1.1" {
		t.Fatalf("first activity %+v %v (the filter must skip channel other)", a, err)
	}
	code, body := e.post(t, c, "publish", `{"channel":"orders","event":"order.created","data":"{\"id\":1}"}`, nil)
	if code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	if err := json.Unmarshal([]byte(s.nextOf(t, "activity")), &a); err != nil || a.Kind != "api_publish" || a.Event != "order.created" || a.Data != `{"id":1}` {
		t.Fatalf("publish activity %+v %v", a, err)
	}
	frames := sub.WaitFrames(t, 3, 5*time.Second)
	if want := `{"event":"order.created","channel":"orders","data":"{\"id\":1}"}`; !strings.Contains(strings.Join(frames, "\n"), want) {
		t.Errorf("subscriber frames %q lack %s", frames, want)
	}
	for _, bad := range []string{`{"channel":"bad channel!","event":"e","data":""}`, `{"channel":"","event":"e","data":""}`, `{"channel":"a","event":"","data":""}`} {
		if code, body := e.post(t, c, "publish", bad, nil); code != 400 {
			t.Errorf("publish %s: %d %s, want 400", bad, code, body)
		}
	}
}

// TestSlowViewerDrops: a viewer that reads nothing loses activities (counted) while
// publishing goes on unblocked, and the drop is reported once it reads again.
func TestSlowViewerDrops(t *testing.T) {
	e := newEnv(t, console.Options{ViewerBuffer: 4, SnapshotInterval: time.Hour})
	c := signedIn(t, e, "app-id", "app-secret")
	s := e.stream(t, c, "")
	s.nextOf(t, "snapshot")
	testkit.WaitFor(t, 5*time.Second, "the viewer registered", func() bool { return e.con.Watching("app-id") })
	// Far more than the queue, the socket buffers and the stream's batch can hold: Record
	// must drop, never wait. The publishes all return while nobody reads.
	payload := strings.Repeat("x", 1800)
	for i := 0; i < 5000; i++ {
		if err := e.hub.Publish("app-id", channels.Event{Name: "e", Channels: []string{"flood"}, Data: payload}); err != nil {
			t.Fatal(err)
		}
	}
	data := s.nextOf(t, "dropped")
	var d struct{ Total int }
	if err := json.Unmarshal([]byte(data), &d); err != nil || d.Total <= 0 {
		t.Fatalf("dropped %s %v", data, err)
	}
	t.Logf("dropped %d of 5000", d.Total)
}

func TestPageAndHeaders(t *testing.T) {
	e := newEnv(t, console.Options{})
	c := e.client(t)
	resp, err := c.Get(e.ts.URL + "/console")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "pushwire") || resp.Request.URL.Path != "/console/" {
		t.Fatalf("GET /console: %d at %s", resp.StatusCode, resp.Request.URL.Path)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for _, f := range []string{"app.js", "style.css"} {
		if code, body := e.get(t, c, f); code != 200 || len(body) < 100 {
			t.Errorf("%s: %d (%d bytes)", f, code, len(body))
		}
	}
	if code, _ := e.get(t, c, "api/nothing"); code != 404 {
		t.Errorf("unknown API: %d", code)
	}
}

// TestCloseEndsStreams: Close makes open streams end, so a graceful HTTP shutdown need not
// wait for them, and refuses new ones.
func TestCloseEndsStreams(t *testing.T) {
	e := newEnv(t, console.Options{SnapshotInterval: time.Hour})
	c := signedIn(t, e, "app-id", "app-secret")
	s := e.stream(t, c, "")
	s.nextOf(t, "snapshot")
	e.con.Close()
	for s.sc.Scan() {
	}
	testkit.WaitFor(t, 5*time.Second, "the viewer gone", func() bool { return e.con.Viewers() == 0 })
	if code, _ := e.get(t, c, "api/stream"); code != http.StatusServiceUnavailable {
		t.Errorf("stream after Close: %d, want 503", code)
	}
}
